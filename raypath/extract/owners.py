"""Who is running on an output: one owner file per extraction run, kept alive by a heartbeat.

Every claim and every temporary file a run writes carries its owner token, so another run can
tell whether the writer is still there before touching them. An owner is *gone* when its file is
missing, when its heartbeat (the file's mtime, touched by a thread) is older than the lease, or,
on the same host, when its pid no longer names the process that registered (dead or reused).
"""

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from raypath.publish import write_text

log = logging.getLogger(__name__)

OWNERS_DIR = "owners"


def process_start(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot); '' where /proc cannot tell."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def new_token() -> str:
    """An owner token: hex only, so it can sit inside file names and be parsed back."""
    return uuid.uuid4().hex[:16]


@dataclass(frozen=True)
class Owner:
    """One extraction run as other runs see it."""

    token: str
    run_id: str
    host: str
    pid: int
    started: str

    @classmethod
    def this_process(cls, run_id: str) -> "Owner":
        pid = os.getpid()
        return cls(token=new_token(), run_id=run_id, host=socket.gethostname(), pid=pid,
                   started=process_start(pid))

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"


class OwnerRegistry:
    """The owner files under `<claims dir>/owners/`; answers whether a token's owner is gone."""

    def __init__(self, directory: Path, *, lease_s: float) -> None:
        self.directory = directory / OWNERS_DIR
        self.lease_s = lease_s

    def path(self, token: str) -> Path:
        return self.directory / f"{token}.json"

    def register(self, owner: Owner) -> None:
        """Write the owner file atomically: a reader never sees half of it."""
        write_text(self.path(owner.token), json.dumps(asdict(owner)), owner=owner.token)

    def unregister(self, token: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(token).unlink()

    def read(self, token: str) -> tuple[Owner, float] | None:
        """(owner, heartbeat time) or None when no such owner file exists."""
        try:
            path = self.path(token)
            heartbeat = path.stat().st_mtime
            return Owner(**json.loads(path.read_text())), heartbeat
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def is_gone(self, token: str) -> bool:
        """True when nothing can still be writing under this token (see the module doc)."""
        found = self.read(token)
        if found is None:
            return True
        owner, heartbeat = found
        if time.time() - heartbeat > self.lease_s:
            return True
        if owner.host == socket.gethostname():
            reused = bool(owner.started) and process_start(owner.pid) != owner.started
            return reused or not _alive(owner.pid)
        return False

    def tokens(self) -> list[str]:
        """Every registered token, live or not."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


class Heartbeat:
    """Touches the owner file every `every_s` seconds until stopped, so long runs stay owners."""

    def __init__(self, path: Path, *, every_s: float) -> None:
        self.path, self.every_s = path, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="raypath-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                log.error("owner file %s was removed: another run judged this one gone (heartbeat older "
                          "than its lease) and may be computing the same slides", self.path)
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
