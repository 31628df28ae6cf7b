"""One extraction run among others on the same output: its owner file, its claims, the cleanup of
what gone runs left behind, and the wait for slides another live run is computing.

With a claims directory (by default `<output>/_claims` for a local or NFS output), runs started
together split the slides between them and a run started later waits for the slides an earlier one
holds, then takes what that run did not finish. An object-store output has no claims directory
unless `claims_dir` names a shared local one: runs on it are not coordinated, and a temporary file
counts as abandoned once it is older than the lease.
"""

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from raypath.extract import rows
from raypath.extract.claims import ClaimBook, StoreKey
from raypath.extract.owners import Heartbeat, Owner, OwnerRegistry
from raypath.extract.plan import Plan, restrict
from raypath.paths import is_remote, join, temporary_owner
from raypath.store import FeatureStore, Temporary

log = logging.getLogger(__name__)

CLAIMS_DIR = "_claims"
POLL_S = 1.0
REPORT_EVERY_S = 60.0


def default_claims_dir(output: str, claims_dir: str | None) -> Path | None:
    """The claims directory of an output: given, `<output>/_claims` when local, else none."""
    if claims_dir:
        return Path(claims_dir).expanduser()
    return None if is_remote(output) else Path(output) / CLAIMS_DIR


def key(store: FeatureStore) -> StoreKey:
    return store.encoder, store.tiling_hash


class Coordination:
    """Use as a context manager: registers the owner and its heartbeat, releases everything after."""

    def __init__(self, *, claims_dir: Path | None, run_id: str, lease_s: float) -> None:
        self.owner = Owner.this_process(run_id)
        self.lease_s = lease_s
        self.registry = OwnerRegistry(claims_dir, lease_s=lease_s) if claims_dir else None
        self.book = ClaimBook(claims_dir, token=self.token, owners=self.registry) if claims_dir else None
        self._heartbeat: Heartbeat | None = None

    @property
    def token(self) -> str:
        return self.owner.token

    def __enter__(self) -> "Coordination":
        if self.registry is not None:
            self.registry.register(self.owner)
            self._heartbeat = Heartbeat(self.registry.path(self.token), every_s=self.lease_s / 6)
            self._heartbeat.start()
        else:
            log.warning("no claims directory for this output: runs on it are not coordinated; set "
                        "claims_dir to a directory every run can lock to run several at once")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.book is not None:
            self.book.release_all()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self.registry is not None:
            self.registry.unregister(self.token)
        if self.book is not None:
            self.book.prune()

    def is_gone(self, token: str, mtime_s: float) -> bool:
        """Whether the writer behind `token` can no longer be writing (never true of this run)."""
        if token == self.token:
            return False
        if self.registry is None:
            return time.time() - mtime_s > self.lease_s
        return self.registry.is_gone(token)

    def abandoned(self, temporary: Temporary) -> bool:
        return self.is_gone(temporary.owner, temporary.mtime_s)

    def clear_stale(self, *, stores: Mapping[str, FeatureStore], output: str) -> None:
        """Claims and temporary files of gone runs; a live run's are never touched."""
        claims = self.book.sweep() if self.book is not None else 0
        if self.registry is not None:
            for token in self.registry.tokens():
                if token != self.token and self.registry.is_gone(token):
                    self.registry.unregister(token)
        files = sum(store.clear_temporaries(is_gone=self.abandoned) for store in stores.values())
        if not is_remote(output):
            files += clear_record_temporaries(Path(output), is_gone=self.abandoned)
        if claims or files:
            log.info("removed %d claims and %d temporary files left by runs that are gone", claims, files)

    def claim(self, plan: Plan, *, stores: Mapping[str, FeatureStore]
              ) -> tuple[Plan, dict[StoreKey, dict], list[str]]:
        """(the part of `plan` this run now holds, {store key: {slide id: holder token}} held elsewhere,
        the slides of `plan` another run finished since it was made).

        The store is looked at again once the claims are held: a run that planned while another was
        finishing (e.g. while it built its encoders) would otherwise compute those slides again, their
        claims being free by then. A claim is released only after its file is renamed into place, so
        a slide whose claim this run now holds and which has no file yet is computed by no one else."""
        if self.book is None:
            return plan, {}, []
        wanted = [(key(store), task["slide_id"]) for task in plan.tasks for name, store in stores.items()
                  if task[rows.need_column(name)]]
        others = self.book.claim(wanted)
        written = {key(store): set(store.slide_ids()) for store in stores.values()}
        done = [pair for pair in wanted if pair not in others and pair[1] in written[pair[0]]]
        self.book.release(done)
        by_store: dict[StoreKey, dict] = {}
        for (store_key, slide_id), holder in others.items():
            by_store.setdefault(store_key, {})[slide_id] = holder
        names = {name: key(store) for name, store in stores.items()}
        mine = restrict(plan, encoders=names, keep=lambda slide_id, name: slide_id not in by_store.get(
            names[name], {}) and slide_id not in written[names[name]])
        busy = {task["slide_id"] for task in mine.tasks} | {s for slides in by_store.values() for s in slides}
        finished = sorted({slide_id for _, slide_id in done} - busy)
        if finished:
            log.info("%d slides were finished by another run since this one planned them: %s",
                     len(finished), finished[:10])
        return mine, by_store, finished

    def release(self, slide_id: str, *, stores: Mapping[str, FeatureStore]) -> None:
        """The slide has its outcome: let other runs see it free."""
        if self.book is not None:
            self.book.release([(key(store), slide_id) for store in stores.values()])

    @contextlib.contextmanager
    def records_lock(self) -> Iterator[None]:
        """Held while failures.csv is computed from the store and written, so the last run to
        write it wrote what the store held then."""
        if self.book is None:
            yield
            return
        with self.book.locked():
            yield

    def wait(self, deferred: Mapping[StoreKey, Mapping[str, str]], *,
             stores: Mapping[str, FeatureStore]) -> None:
        """Block until every slide held elsewhere is finished, released, or its holder is gone."""
        if self.book is None or self.registry is None:  # nothing is ever held elsewhere without claims
            return
        by_key = {key(store): store for store in stores.values()}
        waiting = {(k, s): holder for k, slides in deferred.items() for s, holder in slides.items()}
        reported = time.monotonic()
        log.info("waiting for %d slides other runs are computing: %s", len(waiting), self._holders(waiting))
        while waiting:
            time.sleep(POLL_S)
            waiting = {(k, s): holder for (k, s), holder in waiting.items()
                       if not by_key[k].has(s) and self.book.holder(k, s) == holder
                       and not self.registry.is_gone(holder)}
            if waiting and time.monotonic() - reported > REPORT_EVERY_S:
                reported = time.monotonic()
                log.info("still waiting for %d slides: %s", len(waiting), self._holders(waiting))

    def _holders(self, waiting: Mapping[tuple[StoreKey, str], str]) -> str:
        tokens = sorted(set(waiting.values()))
        described = []
        for token in tokens:
            found = self.registry.read(token) if self.registry is not None else None
            described.append(found[0].describe() if found else token)
        return ", ".join(described)


def clear_record_temporaries(output: Path, *, is_gone: Callable[[Temporary], bool]) -> int:
    """Temporary run-record files (failures.csv, _runs/<id>/*) whose writer is gone."""
    candidates = [*output.glob(".*"), *output.glob(join("_runs", "*", ".*"))] if output.is_dir() else []
    removed = 0
    for path in candidates:
        owner = temporary_owner(path.name)
        if owner is None or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            if is_gone(Temporary(path=str(path), owner=owner, mtime_s=path.stat().st_mtime)):
                path.unlink()
                removed += 1
    return removed
