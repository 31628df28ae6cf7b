"""The embedded MLflow store (`sqlite:///...`), made ready before MLflow touches it.

MLflow creates a SQLite store, and upgrades one that lacks tables, in place and table by table: a
full disk halfway leaves a database that every later run refuses (`table _alembic_tmp_experiments
already exists`). raypath instead creates or upgrades the store in a temporary sibling file and
renames it into place only when it is complete, under a lock on its directory; a store that an
earlier interruption left half-migrated is repaired on a copy, set aside when it holds no runs, or
named with the command that sets it aside. Other tracking URIs (servers) are used as they are.
"""

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from raypath.errors import MachineError, is_disk_full
from raypath.publish import move_aside, publish_file

log = logging.getLogger(__name__)
SQLITE = "sqlite:///"
LEFTOVER = "_alembic_tmp_"
"""Prefix of the table copies alembic makes while it migrates a SQLite table (dropped once done)."""
SIDE_FILES = ("-journal", "-wal", "-shm")


class StoreError(MachineError):
    """An MLflow database raypath cannot use or repair without losing runs."""


@dataclass(frozen=True)
class Schema:
    """What a SQLite MLflow database holds, read without MLflow."""

    revision: str | None
    tables: frozenset[str]
    runs: int

    @property
    def leftovers(self) -> list[str]:
        return sorted(t for t in self.tables if t.startswith(LEFTOVER))


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for any other store)."""
    return Path(uri.removeprefix(SQLITE).partition("?")[0]) if uri.startswith(SQLITE) else None


def ready_store(uri: str) -> str:
    """`uri`, once its SQLite database (if it is one) exists at MLflow's current schema."""
    path = sqlite_file(uri)
    if path is None:
        return uri
    head = _head_revision()
    if path.exists() and _current(_schema(path), head):
        return uri
    path.parent.mkdir(parents=True, exist_ok=True)
    with _directory_lock(path.parent):
        if not path.exists():
            _build(path, source=None)
        elif not _current(schema := _schema(path), head):
            _upgrade(path, schema)
    return uri


def _current(schema: Schema, head: str) -> bool:
    return schema.revision == head and not schema.leftovers


def _upgrade(path: Path, schema: Schema) -> None:
    """Bring an older or half-migrated store to the current schema on a copy; set an unusable one
    aside when it holds no runs (it was being created), else refuse, naming the command that does."""
    try:
        _build(path, source=path)
    except OSError:
        raise
    except Exception as exc:  # MLflow's migration failed on the copy: the store is not repairable here
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        if schema.leftovers:
            reason += f"; an interrupted migration left {', '.join(schema.leftovers)}"
        if schema.runs:
            raise StoreError(f"{path} cannot be brought to this MLflow's schema ({reason}); it holds "
                             f"{schema.runs} runs: restore it from a backup, or start a new store with "
                             f"`mv {path} {path}.broken`") from None
        aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in (*SIDE_FILES, ""):  # SQLite's side files go with it, the database last
            move_aside(Path(f"{path}{suffix}"), Path(f"{aside}{suffix}"))
        log.warning("%s was left half-migrated (%s) and holds no runs: set aside as %s, a new store "
                    "takes its place", path, reason, aside.name)
        _build(path, source=None)
    else:
        log.info("%s: MLflow schema brought to the current version%s", path,
                 f" (interrupted migration repaired: {schema.leftovers})" if schema.leftovers else "")


def _build(path: Path, *, source: Path | None) -> None:
    """Create (or copy `source` and upgrade) the database under a temporary name, then rename it."""
    built: list[Path] = []

    def build(temporary: Path) -> None:
        built.append(temporary)
        if source is not None:
            shutil.copyfile(source, temporary)
            _drop_leftovers(temporary)
        _migrate(temporary, artifact_root=path.parent / "mlartifacts")
        if source is not None:
            _keep_backup(path)

    try:
        if not publish_file(path, build, replace=source is not None):
            log.info("%s was created by another process meanwhile; using it", path)
    except Exception as exc:
        if is_disk_full(exc):
            raise OSError(errno.ENOSPC, "no space left on device to create or upgrade the MLflow store; "
                                        "nothing was written under its name: free space and run again",
                          str(path)) from None
        raise
    finally:
        for suffix in SIDE_FILES:  # SQLite's journal of the temporary database, if it outlived it
            for temporary in built:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{temporary}{suffix}")


def _migrate(database: Path, *, artifact_root: Path) -> None:
    """MLflow's own creation and migration on `database`: what `mlflow db upgrade` runs when every
    table exists, then the store's own start-up (creates missing tables, the default experiment)."""
    import sqlalchemy  # imported when needed: MLflow's store takes seconds to import
    from mlflow.store.db import utils
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = sqlalchemy.create_engine(f"{SQLITE}{database}")
    try:
        if utils._all_tables_exist(engine):
            utils._upgrade_db(engine)
    finally:
        engine.dispose()
    SqlAlchemyStore(f"{SQLITE}{database}", artifact_root.as_uri()).engine.dispose()


def _keep_backup(path: Path) -> None:
    """The store as it was before an upgrade, kept beside it (a second name for the same file)."""
    backup = path.with_name(f"{path.name}.before-upgrade-{time.strftime('%Y%m%d-%H%M%S')}")
    with contextlib.suppress(OSError):
        os.link(path, backup)
        log.info("%s as it was before the upgrade: %s", path, backup.name)


def _drop_leftovers(database: Path) -> None:
    """Drop alembic's table copies whose original table still exists: the original is intact (alembic
    drops it only after copying), the copy is the interrupted half."""
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in sorted(t for t in tables if t.startswith(LEFTOVER) and t[len(LEFTOVER):] in tables):
            connection.execute(f'DROP TABLE "{table}"')


def _schema(path: Path) -> Schema:
    """Opened for writing, so that SQLite first rolls back what an interrupted write left in its journal."""
    try:
        with contextlib.closing(sqlite3.connect(path)) as connection:
            tables = frozenset(row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type='table'"))
            revision = (connection.execute("SELECT version_num FROM alembic_version").fetchone()
                        if "alembic_version" in tables else None)
            runs = connection.execute("SELECT count(*) FROM runs").fetchone()[0] if "runs" in tables else 0
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable MLflow database ({exc})") from None
    return Schema(revision=revision[0] if revision else None, tables=tables, runs=runs)


def _head_revision() -> str:
    from mlflow.store.db.utils import _get_latest_schema_revision  # MLflow's own head, no public API

    return _get_latest_schema_revision()


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on the store's directory: raypath processes create or upgrade it one at a time."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
