"""How the node-local cache lays out each bag's rows, so that a sampled bag is one contiguous read.

Why: `max_tiles` sampling draws a few hundred of a bag's thousands of rows. In the store's order
those rows lie kilobytes apart, so a cohort larger than memory pays a disk read per row, and the
kernel's read-around fetches nearly the whole bag. The cache therefore writes each bag's rows in a
random order drawn once (seeded by the cache's recorded seed and the slide id); a uniformly placed
window of consecutive rows is then a uniformly random subset of the bag, read as one range
(`raypath.mil.sampling` draws those windows). `positions` maps every store tile to the row that
holds it, so evaluation and prediction still see the same tiles in the same order as the store.

`RowPrefetch` tells the kernel which byte ranges a batch is about to touch (`POSIX_FADV_WILLNEED`)
and the memory map has read-around switched off (`MADV_RANDOM`): the disk reads what is sampled,
not its neighbourhood.
"""

import hashlib
import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAGE = 4096
HEADER_BYTES = PAGE  # the .npy header is padded to one page: rows of 2^k bytes never straddle pages


def tile_order(slide_id: str, n_tiles: int, *, seed: int) -> np.ndarray:
    """The store's tile index of each cached row of one bag: a permutation fixed by (seed, slide id),
    independent of which other slides the cohort holds."""
    digest = int.from_bytes(hashlib.sha256(slide_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest]).permutation(n_tiles)


def inverse(order: np.ndarray) -> np.ndarray:
    """positions[t] = the row holding store tile t (int32: bags hold fewer than 2^31 tiles)."""
    positions = np.empty(len(order), dtype=np.int32)
    positions[order] = np.arange(len(order), dtype=np.int32)
    return positions


def write_npy_header(sink, *, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """A version 1.0 .npy header padded to `HEADER_BYTES`, so row r starts at a page offset."""
    header = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
    preamble = np.lib.format.magic(1, 0) + (HEADER_BYTES - 10).to_bytes(2, "little")
    sink.write(preamble + header.ljust(HEADER_BYTES - 10 - 1).encode("latin1") + b"\n")


def map_rows(path: Path) -> np.ndarray:
    """A read-only memory map of a 2-D .npy file with read-around off: only pages that are touched
    (or prefetched) are read from disk."""
    with open(path, "rb") as source:
        if np.lib.format.read_magic(source) != (1, 0):
            raise ValueError(f"{path}: expected a version 1.0 .npy file")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(source)
        offset = source.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path}: expected a C-ordered 2-D array")
        if shape[0] * shape[1] == 0:
            return np.zeros(shape, dtype=dtype)
        mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise"):
        mapped.madvise(mmap.MADV_RANDOM)
    return np.frombuffer(mapped, dtype=dtype, count=shape[0] * shape[1], offset=offset).reshape(shape)


def runs(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length) of each run of consecutive values in sorted unique `rows`."""
    if rows.size == 0:
        return rows, rows
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.r_[0, breaks]]
    lengths = np.diff(np.r_[0, breaks, rows.size])
    return starts, lengths


class RowPrefetch:
    """Asks the kernel to read the byte ranges of the rows a batch is about to gather, one request
    per run of consecutive rows: a window of a shuffled bag is one request. Picklable (reopens)."""

    def __init__(self, path: Path, *, offset: int, row_bytes: int) -> None:
        self.path, self.offset, self.row_bytes = Path(path), offset, row_bytes
        self._fd: int | None = None

    def __call__(self, rows: np.ndarray) -> None:
        if not hasattr(os, "posix_fadvise"):
            return
        fd = self._descriptor()
        starts, lengths = runs(np.unique(rows))
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            os.posix_fadvise(fd, self.offset + start * self.row_bytes, length * self.row_bytes,
                             os.POSIX_FADV_WILLNEED)

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __getstate__(self) -> dict:
        return {"path": self.path, "offset": self.offset, "row_bytes": self.row_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], offset=state["offset"], row_bytes=state["row_bytes"])

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


@dataclass(frozen=True)
class RowLayout:
    """Each bag's rows shuffled once (`seed`): `positions[offsets[s] + t]` is the row within slide s
    that holds the store's tile t; `prefetch` (optional) announces the rows a batch will read."""

    positions: np.ndarray  # (T,) int32
    seed: int
    prefetch: RowPrefetch | None = None


def store_rows(offsets: np.ndarray, layout: RowLayout | None) -> np.ndarray:
    """The global row holding each store tile, bag by bag in the store's order (identity without a
    layout): `features[store_rows(...)]` is the store's row order."""
    total = int(offsets[-1])
    if layout is None:
        return np.arange(total)
    starts = np.repeat(np.asarray(offsets[:-1]), np.diff(offsets))
    return starts + np.asarray(layout.positions, dtype=np.int64)
