"""Per-slide claims, so runs that overlap on one output never compute a slide twice.

A run claims each (store, slide) it is about to compute with a small file naming its owner token,
`<claims dir>/<encoder>/<tiling hash>/<slide>.claim`. Every change to claims happens under one
`flock` on `<claims dir>/.lock` (kernel-released when a process dies; NFS clients lock through the
server), so a claim is either free, ours, or another owner's, and a claim whose owner is gone
(`OwnerRegistry.is_gone`) is taken over. Claims are released as soon as a slide has its outcome.
"""

import contextlib
import fcntl
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from raypath.extract.owners import OwnerRegistry
from raypath.paths import temporary_owner
from raypath.publish import write_text

log = logging.getLogger(__name__)

SUFFIX = ".claim"
StoreKey = tuple[str, str]
"""(encoder, tiling hash): the store a claim belongs to."""


class ClaimBook:
    """The claims of one claims directory, seen by the owner `token`."""

    def __init__(self, directory: Path, *, token: str, owners: OwnerRegistry) -> None:
        self.directory, self.token, self.owners = directory, token, owners
        self._thread_lock = threading.Lock()
        self.held: set[tuple[StoreKey, str]] = set()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The claims directory's exclusive lock (threads of this process serialise first)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.directory / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def path(self, store: StoreKey, slide_id: str) -> Path:
        return self.directory.joinpath(*store) / f"{slide_id}{SUFFIX}"

    def holder(self, store: StoreKey, slide_id: str) -> str | None:
        """The token holding a claim, or None when the slide is free."""
        try:
            return self.path(store, slide_id).read_text().strip() or None
        except FileNotFoundError:
            return None

    def claim(self, wanted: Iterable[tuple[StoreKey, str]]) -> dict[tuple[StoreKey, str], str]:
        """Claim every (store, slide) that is free, ours, or held by a gone owner; returns the rest,
        each with the live owner's token. One lock for the whole batch."""
        others: dict[tuple[StoreKey, str], str] = {}
        gone: dict[str, bool] = {}
        with self.locked():
            for store, slide_id in wanted:
                holder = self.holder(store, slide_id)
                if holder not in (None, self.token):
                    if holder not in gone:
                        gone[holder] = self.owners.is_gone(holder)
                    if not gone[holder]:
                        others[(store, slide_id)] = holder
                        continue
                    log.info("taking over %s of %s: its owner %s is gone", slide_id, "/".join(store), holder)
                self._write(store, slide_id)
                self.held.add((store, slide_id))
        return others

    def _write(self, store: StoreKey, slide_id: str) -> None:
        write_text(self.path(store, slide_id), self.token, owner=self.token)

    def release(self, pairs: Iterable[tuple[StoreKey, str]]) -> None:
        """Drop our claims on `pairs` (claims another owner took over are left to it)."""
        mine = [pair for pair in pairs if pair in self.held]
        if not mine:
            return
        with self.locked():
            for store, slide_id in mine:
                if self.holder(store, slide_id) == self.token:
                    self.path(store, slide_id).unlink()
                self.held.discard((store, slide_id))

    def release_all(self) -> None:
        self.release(list(self.held))

    def sweep(self) -> int:
        """Remove claims, and claim or owner files left half-written, of gone owners; returns how many."""
        removed = 0
        gone: dict[str, bool] = {}
        with self.locked():
            for path in [p for p in self.directory.rglob("*") if p.is_file()]:
                token = path.read_text().strip() if path.name.endswith(SUFFIX) else temporary_owner(path.name)
                if token is None or token == self.token:
                    continue
                if token not in gone:
                    gone[token] = not token or self.owners.is_gone(token)
                if gone[token]:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    removed += 1
        return removed

    def prune(self) -> None:
        """Remove empty claim directories (another run may be filling one: that one stays)."""
        for directory in sorted((p for p in self.directory.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
