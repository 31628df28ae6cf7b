"""Run a benchmark child under a memory limit (a cgroup v1 memory group) and count its disk reads.

Why a cgroup: a memory limit smaller than the feature cache is the out-of-core case, and only a
cgroup limits the page cache a process may hold (an rlimit does not). The child joins the group
before it executes, so every page it reads is charged to it. Disk reads come from the child's own
`/proc/<pid>/io` (`read_bytes`: bytes fetched from the block device, page-cache hits excluded).
"""

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("memory_limit")
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


def cgroup_available() -> str | None:
    """None if a memory cgroup can be made here, else why not."""
    if not (CGROUP_MEMORY / "cgroup.procs").exists():
        return f"no cgroup v1 memory controller at {CGROUP_MEMORY}"
    if not os.access(CGROUP_MEMORY, os.W_OK):
        return f"{CGROUP_MEMORY} is not writable (needs root)"
    return None


@contextlib.contextmanager
def memory_group(limit_bytes: int) -> Iterator[Path]:
    """A fresh memory cgroup with `limit_bytes` (memory + page cache), removed afterwards."""
    group = CGROUP_MEMORY / f"raypath-bench-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit_bytes))
        yield group
    finally:
        with contextlib.suppress(OSError):
            (group / "memory.force_empty").write_text("0")
        with contextlib.suppress(OSError):
            group.rmdir()


def joiner(group: Path | None):
    """A `preexec_fn` that moves the child into `group` before it executes (None: no group)."""
    if group is None:
        return None
    procs = group / "cgroup.procs"

    def join() -> None:
        procs.write_text(str(os.getpid()))

    return join


def group_stats(group: Path) -> dict[str, int]:
    """Peak usage, OOM-kill count and the limit of a memory group."""
    stats = {"max_usage_bytes": int((group / "memory.max_usage_in_bytes").read_text()),
             "limit_bytes": int((group / "memory.limit_in_bytes").read_text())}
    for line in (group / "memory.oom_control").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill":
            stats["oom_kills"] = int(value)
    return stats


def read_bytes(pid: int | str = "self") -> int:
    """Bytes this process has had read from the block device so far."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise OSError(f"/proc/{pid}/io has no read_bytes")


def drop_file_cache(path: Path) -> None:
    """Evict `path`'s pages from the page cache (its own pages only: other work keeps its cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm_file_cache(path: Path, *, block: int = 16 << 20) -> None:
    """Read `path` once so its pages are in the page cache (the in-memory case)."""
    with open(path, "rb", buffering=0) as source:
        while source.read(block):
            pass


def io_wait_s(pid: int | str = "self") -> float:
    """Seconds the process has waited for block I/O (delay accounting; 0 while it is switched off:
    `sysctl kernel.task_delayacct=1`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[39]) / os.sysconf("SC_CLK_TCK")  # field 42 of stat: delayacct_blkio_ticks


def core_wait_s(pid: int | str = "self") -> float:
    """Seconds the process's main thread has been runnable but waiting for a core (the scheduler's
    run-queue delay, /proc/<pid>/schedstat; needs no delay accounting). On a shared machine this is
    the part of wall time that other work causes; wall minus it is what the thread would have taken
    with a core of its own: its CPU time plus time blocked (disk reads, page faults)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
