"""Publishing a file or a directory whole or not at all: the one way raypath writes a final name.

Every writer writes under a hidden temporary sibling (`raypath.paths.temporary_name`, which carries
its owner token so other runs can tell a live writer from a dead one), flushes it to disk, then
renames it over the final name. The previous version stays readable until the rename replaces it;
any error, or a crash, leaves at most the temporary, never half a file under the final name. On an
object store (`s3://`, ...) pyarrow's write-then-move plays the same part.
"""

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs

from raypath.paths import is_remote, temporary_name


def publish_file(path: Path, write: Callable[[Path], object], *, owner: str = "", mode: int = 0o644,
                 replace: bool = True) -> bool:
    """Call `write(temporary)` to fill a temporary sibling of `path` (created with `mode`), fsync it,
    rename it over `path` (or, not `replace`, link it there unless a file exists: another writer's
    stays) and fsync the directory; on any error remove the temporary and re-raise (a full disk as
    ENOSPC naming `path`). Returns whether this call's file is the one in place."""
    path = Path(path)
    temporary = path.with_name(temporary_name(path.name, owner=owner))

    def fill() -> None:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        write(temporary)
        _fsync(temporary)

    return _publish(path, fill=fill, place=lambda: _place_file(temporary, path, replace=replace),
                    remove=lambda: temporary.unlink(missing_ok=True))


def _publish(path: Path, *, fill: Callable[[], None], place: Callable[[], bool],
             remove: Callable[[], None]) -> bool:
    """The steps every publish takes: fill the temporary, put it in place, flush the directory; the
    temporary goes in the end whatever happened, and a full disk is named by the final path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fill()
        placed = place()
        _fsync(path.parent)
        return placed
    except BaseException as exc:
        if _is_full(exc):
            raise _named(path) from None
        raise
    finally:
        remove()


def _place_file(temporary: Path, path: Path, *, replace: bool) -> bool:
    if replace:
        os.replace(temporary, path)
        return True
    try:
        os.link(temporary, path)  # fails where a file exists, unlike a rename
    except FileExistsError:
        return False
    except OSError as exc:  # a file system without hard links: rename (the caller holds a lock)
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        os.replace(temporary, path)
    return True


def publish_directory(path: Path, write: Callable[[Path], object], *, replace: bool = True) -> bool:
    """Call `write(temporary)` to fill a temporary sibling directory of `path`, fsync it and rename it
    into place. An existing `path` is swapped out (exchanged, or renamed aside, then removed once the
    new one is in place) when `replace`, else kept: the content-addressed caches a concurrent writer
    built are equal.
    Returns whether this call's directory is the one in place."""
    path = Path(path)
    temporary = path.with_name(temporary_name(path.name))

    def fill() -> None:
        temporary.mkdir()
        write(temporary)
        for item in [*temporary.rglob("*"), temporary]:
            _fsync(item)

    return _publish(path, fill=fill, place=lambda: _place_directory(temporary, path, replace=replace),
                    remove=lambda: shutil.rmtree(temporary, ignore_errors=True))


def _place_directory(temporary: Path, path: Path, *, replace: bool) -> bool:
    """Rename `temporary` to `path`. An existing `path` is kept (not `replace`), or exchanged with
    `temporary` in one step where the kernel can (Linux `renameat2`), else moved aside first (a
    directory cannot be renamed over a non-empty one); the old version is removed after."""
    if replace and path.is_dir() and _exchange(temporary, path):
        return True  # `temporary` now holds the old version, which the caller removes
    aside = path.with_name(temporary_name(f"{path.name}.previous"))
    if replace:
        move_aside(path, aside)
    try:
        os.rename(temporary, path)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False  # another writer placed an equal one meanwhile
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    return True


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux >= 3.15 `renameat2(RENAME_EXCHANGE)`); False where the C
    library, the kernel or the file system cannot, and nothing was changed."""
    renameat2 = getattr(_LIBC, "renameat2", None)
    if renameat2 is None:
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(second))


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if ctypes.util.find_library("c") else None
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def move_aside(path: Path, aside: Path) -> None:
    """Rename `path` to `aside` (same directory) if it exists, so a new version can take its name."""
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, aside)


def publish_stream(filesystem: pafs.FileSystem, path: str, write: Callable[[BinaryIO], object], *,
                   owner: str = "") -> None:
    """`publish_file` on a pyarrow filesystem: `write(sink)` fills a temporary sibling of `path`. On an
    object store, where a move is a copy, pyarrow's write-then-move plays the rename's part."""
    if isinstance(filesystem, pafs.LocalFileSystem):
        publish_file(Path(path), lambda temporary: _write_with(temporary, write), owner=owner)
        return
    parent, name = path.rsplit("/", 1)
    filesystem.create_dir(parent, recursive=True)
    temporary = f"{parent}/{temporary_name(name, owner=owner)}"
    try:
        with filesystem.open_output_stream(temporary) as sink:
            write(sink)
        filesystem.move(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            filesystem.delete_file(temporary)
        raise


def write_bytes(path: str | Path, data: bytes, *, owner: str = "") -> None:
    """Publish small file content at a local path or an object-store URI."""
    if is_remote(path):
        filesystem, inner = pafs.FileSystem.from_uri(str(path))
        publish_stream(filesystem, inner, lambda sink: sink.write(data), owner=owner)
    else:
        publish_file(Path(path), lambda temporary: temporary.write_bytes(data), owner=owner)


def write_text(path: str | Path, text: str, *, owner: str = "") -> None:
    """`write_bytes` of UTF-8 text."""
    write_bytes(path, text.encode(), owner=owner)


def _write_with(temporary: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(temporary, "wb") as sink:
        write(sink)


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's content and metadata to disk (a no-op where unsupported)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _is_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _named(path: Path) -> OSError:
    """A full disk reported with the final name it was writing (the temporary's name says nothing)."""
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
