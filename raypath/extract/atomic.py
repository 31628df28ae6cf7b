"""Small files written whole or not at all, on a local disk or an object store.

A temporary sibling name (carrying the writer's owner token) is written, then renamed into place;
any error removes the temporary file before it propagates, so a reader never sees half a file; a full
disk is reported with the file it hit.
"""

import contextlib
import errno
import os
from pathlib import Path

import pyarrow.fs as pafs

from raypath.paths import is_remote, temporary_name


def write_bytes(path: str, data: bytes, *, owner: str = "") -> None:
    """Atomic small-file write (temporary name + rename)."""
    if is_remote(path):
        filesystem, inner = pafs.FileSystem.from_uri(path)
    else:
        filesystem, inner = pafs.LocalFileSystem(), str(Path(path).resolve())
    parent, name = inner.rsplit("/", 1)
    filesystem.create_dir(parent, recursive=True)
    temporary = f"{parent}/{temporary_name(name, owner=owner)}"
    try:
        with filesystem.open_output_stream(temporary) as sink:
            sink.write(data)
        filesystem.move(temporary, inner)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            filesystem.delete_file(temporary)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from None
        raise


def write_text(path: str, text: str, *, owner: str = "") -> None:
    """`write_bytes` of UTF-8 text."""
    write_bytes(path, text.encode(), owner=owner)
