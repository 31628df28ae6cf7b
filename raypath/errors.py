"""Faults of the machine rather than of the input: they end a command with one line and exit status 1
(bad input ends with exit status 2 through the ValueError family; see `raypath.cli`)."""

import errno


class MachineError(RuntimeError):
    """The machine, not the input, stopped the command; the message says what to change."""


class RayStartError(MachineError):
    """The local Ray instance did not come up (in time, or at all)."""


FULL_DISK_TEXTS = ("No space left on device", "database or disk is full")


def is_disk_full(error: BaseException | None) -> bool:
    """Whether an error, or one behind it, is a full disk: ENOSPC, SQLite's SQLITE_FULL, or a remote
    worker's failure (Ray Train, Ray tasks) whose text says so."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "errno", None) == errno.ENOSPC or any(t in str(current) for t in FULL_DISK_TEXTS):
            return True
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None),
                    *getattr(current, "worker_failures", {}).values()]
    return False
