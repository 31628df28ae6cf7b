"""Tune's own pickles are restored only when raypath can vouch for them: owner, mode, keyed digest.

`Tuner.restore` unpickles what Tune wrote into the experiment directory (tuner.pkl, the experiment
state with embedded cloudpickles, the search generator's state, trials' error.pkl): whoever can
write there can run code in the driver. That directory may be shared storage (NFS, s3://), so
before anything is restored the driver checks every file Tune loads, as ssh checks its keys:

- owned by this user and writable by nobody else (local storage), and
- equal to what this raypath wrote: an HMAC-SHA256 of each file, taken every time Tune saves its
  state (before the files leave the driver's staging directory), is kept in a ledger under
  `<output_dir>/.tune-seals/` with the key (`key`, mode 0600, created on first use).

A file that fails a check stops the command with exit 2 and the fix, before Ray starts.
"""

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray.tune import Callback

from raypath.paths import is_remote, join
from raypath.publish import publish_file

log = logging.getLogger(__name__)
SEALS_DIR = ".tune-seals"
KEY_NAME = "key"
RECENT = 32  # digests kept per file name: a save may still be uploading when the driver dies
TRIAL_PICKLES = ("error.pkl",)  # what Tune unpickles from a trial directory


class UntrustedStateError(ValueError):
    """An experiment directory raypath will not restore from; the message says why and how to fix it."""


def _filesystem(root: str) -> tuple[pafs.FileSystem, str]:
    if is_remote(root):
        return pafs.FileSystem.from_uri(root)
    return pafs.LocalFileSystem(), str(Path(root).resolve())


def _private(path: Path, *, what: str) -> None:
    """Owned by this user, and neither group nor others may write it (nor read it, for the key)."""
    info = path.lstat()
    if info.st_uid != os.getuid():
        raise UntrustedStateError(f"{what} {path} is owned by uid {info.st_uid}, not by you "
                                  f"(uid {os.getuid()})")
    mask = 0o077 if what == "state key" else 0o022
    if stat.S_IMODE(info.st_mode) & mask:
        raise UntrustedStateError(f"{what} {path} has mode {stat.S_IMODE(info.st_mode):o}; "
                                  f"fix with chmod go-{'rwx' if what == 'state key' else 'w'} {path}")


def state_key(seals: Path) -> bytes:
    """The sealing key under `seals` (created once, mode 0600); refused when others could read it."""
    seals.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private(seals, what="seal directory")
    path = seals / KEY_NAME
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _private(path, what="state key")
        return path.read_bytes()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def _digest(key: bytes, name: str, content: bytes) -> str:
    return hmac.new(key, name.encode() + b"\0" + content, hashlib.sha256).hexdigest()


@dataclass
class StateSeal:
    """Seals and checks the state files of one Tune experiment (`<storage>/<experiment>`)."""

    seals: str  # local directory holding the key and the ledgers
    storage: str  # Tune storage root: local path or URI
    experiment: str
    staging: str | None = None  # where Tune stages each save (reported by the searcher)

    @property
    def path(self) -> str:
        return join(self.storage, self.experiment)

    @property
    def ledger_path(self) -> Path:
        return Path(self.seals) / f"{self.experiment}.json"

    def _ledger(self) -> dict[str, Any] | None:
        if not self.ledger_path.exists():
            return None
        _private(self.ledger_path, what="seal ledger")
        return json.loads(self.ledger_path.read_text())

    def _write(self, ledger: dict[str, Any]) -> None:
        publish_file(self.ledger_path, lambda temporary: temporary.write_text(json.dumps(ledger)), mode=0o600)

    def plan(self) -> str | None:
        """The plan digest the experiment was started for (None: no ledger)."""
        ledger = self._ledger()
        return None if ledger is None else ledger.get("plan")

    def start(self, plan: str) -> None:
        """A new experiment: an empty ledger for `plan` (called before Tune writes anything)."""
        state_key(Path(self.seals))
        self._write({"plan": plan, "files": {}})

    def discard(self) -> None:
        """Forget the experiment (its directory is being removed)."""
        self.ledger_path.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the experiment directory and forget it (results that must not be used)."""
        fs, base = _filesystem(self.path)
        if fs.get_file_info(base).type == pafs.FileType.Directory:
            fs.delete_dir(base)
        self.discard()

    def note_staging(self, directory: str) -> None:
        self.staging = directory

    def seal(self, root: str, names: list[str] | None = None) -> None:
        """Record the digests of the state files under `root` (all of them, or `names`)."""
        fs, base = _filesystem(root)
        names = names if names is not None else state_files(fs, base)
        key, ledger = state_key(Path(self.seals)), self._ledger() or {"plan": None, "files": {}}
        for name in names:
            with fs.open_input_stream(f"{base}/{name}") as handle:
                digest = _digest(key, name, handle.readall())
            recent = [d for d in ledger["files"].get(name, []) if d != digest]
            ledger["files"][name] = [*recent, digest][-RECENT:]
        self._write(ledger)

    def seal_staged(self) -> None:
        if self.staging is not None and Path(self.staging).is_dir():
            self.seal(self.staging)

    def verify(self) -> None:
        """Refuse (UntrustedStateError, with the fix) unless every state file passes the checks."""
        ledger, fix = self._ledger(), f"or remove {self.path} to run that phase again from scratch"
        if ledger is None:
            raise UntrustedStateError(
                f"refusing to restore {self.path}: there is no seal for it under {self.seals} (it was not "
                f"written by this output directory's sweep driver, or by a raypath older than state "
                f"sealing); use a new sweep_id, {fix}")
        fs, base = _filesystem(self.path)
        key = state_key(Path(self.seals))
        for name in state_files(fs, base):
            if not is_remote(self.path):
                try:
                    _private(Path(base) / name, what="Tune state file")
                    _private(Path(base, name).parent, what="Tune state directory")
                except UntrustedStateError as exc:
                    raise UntrustedStateError(f"refusing to restore {self.path}: {exc} (Tune unpickles it: "
                                              f"whoever can write it can run code here); {fix}") from None
            with fs.open_input_stream(f"{base}/{name}") as handle:
                digest = _digest(key, name, handle.readall())
            if digest not in ledger["files"].get(name, []):
                raise UntrustedStateError(
                    f"refusing to restore {self.path}: {name} is not what this raypath wrote there (its "
                    f"keyed digest is not in {self.ledger_path}); it may have been replaced. Put back a "
                    f"trusted copy, {fix}")


@contextlib.contextmanager
def owner_only_writes() -> Iterator[None]:
    """Files the driver writes meanwhile are writable by their owner only (umask += 022), so the
    checks above never refuse what this raypath wrote itself under a permissive umask."""
    previous = os.umask(0o022)
    os.umask(previous | 0o022)
    try:
        yield
    finally:
        os.umask(previous)


def state_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """What Tune may unpickle on restore: every visible top-level file, and trials' error.pkl."""
    entries = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    visible = [e for e in entries if not e.base_name.startswith(".")]
    names = [e.base_name for e in visible if e.type == pafs.FileType.File]
    trials = [e.base_name for e in visible if e.type == pafs.FileType.Directory]
    candidates = [f"{trial}/{name}" for trial in trials for name in TRIAL_PICKLES]
    found = fs.get_file_info([f"{base}/{c}" for c in candidates]) if candidates else []
    pickles = [c for c, info in zip(candidates, found, strict=True) if info.type == pafs.FileType.File]
    return sorted(names) + pickles


class SealCallback(Callback):
    """Seals Tune's state files each time Tune saves them, before they leave the driver.

    Tune calls `get_state` of every callback last in each save, after the experiment state and the
    searcher's state are written; returning None keeps Tune from writing a callback-state pickle.
    """

    def __init__(self, seal: StateSeal) -> None:
        self.seal = seal

    def get_state(self) -> dict | None:
        self.seal.seal_staged()
        return None

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.seal.seal_staged()  # Tune has just written the trial's error.pkl

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.seal.seal_staged()
