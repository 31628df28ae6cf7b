"""Decode a TIFF level's JPEG tiles at a DCT scale factor: each tile checked before decoding, cached,
decoded on a few threads (libjpeg-turbo through simplejpeg releases the GIL) or on a GPU.

Safety as for cuCIM (`tile_check`): a tile whose structure is incomplete or whose frame is not the
TIFF tile size is refused before any decoder sees it, and simplejpeg's strict mode turns libjpeg's
"corrupt data" warnings into errors. Tiles stored with no data (sparse TIFFs) are empty glass.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import simplejpeg

from raypath.slides.reader.errors import SlideReadError
from raypath.slides.reader.jpeg_stream import StreamBuilder
from raypath.slides.reader.tile_check import LevelTiles, check_tile_bytes, describe_tile

logger = logging.getLogger(__name__)

CACHE_BYTES = 96 << 20
"""Decoded tiles kept per reader: two rows of 256-px tiles of a 100k-px-wide level at full size, so
the JPEG rows that neighbouring rows of output tiles share are decoded once."""

T, R = TypeVar("T"), TypeVar("R")
Tile = np.ndarray | None
"""A decoded (h, w, 3) uint8 tile, or None for a tile with no data (empty glass)."""


class DeviceDecoder(Protocol):
    """Decodes complete JPEG streams of one tile size on an accelerator, scaled by 1/factor."""

    def decode(self, streams: list[bytes], *, factor: int) -> list[np.ndarray]: ...


def decode_on_cpu(stream: bytes, *, tile_size: tuple[int, int], factor: int) -> np.ndarray:
    """libjpeg-turbo's scaled decoding: `factor` in 1, 2, 4, 8 divides the tile size."""
    width, height = tile_size[0] // factor, tile_size[1] // factor
    tile = simplejpeg.decode_jpeg(stream, colorspace="RGB", min_width=width, min_height=height, strict=True)
    if tile.shape != (height, width, 3):
        raise ValueError(f"decoded to {tile.shape[1]}x{tile.shape[0]} px instead of {width}x{height}")
    return tile


class TileDecoder:
    """Tiles of one slide's JPEG levels by (level, factor, index); every tile is checked before decoding."""

    def __init__(
        self, path: Path, levels: list[LevelTiles], *, num_workers: int, device: DeviceDecoder | None = None,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.path = path
        self.levels = levels
        self.builders = [StreamBuilder(level.jpeg_tables, level.photometric) for level in levels]
        self.device = device
        self._fd = os.open(path, os.O_RDONLY)
        self._cache: OrderedDict[tuple[int, int, int], Tile] = OrderedDict()
        self._cache_bytes, self._cached = cache_bytes, 0
        self._pending: dict[tuple[int, int, int], Future[Tile]] = {}
        self._pool = ThreadPoolExecutor(num_workers, thread_name_prefix="jpeg") if num_workers > 1 else None
        self.num_workers = num_workers

    def tiles(self, level: int, factor: int, indices: Iterable[int]) -> dict[int, Tile]:
        """Decoded tiles for `indices`, from the cache or a prefetch where present; raises SlideReadError
        naming the first tile that is not a valid JPEG tile."""
        found: dict[int, Tile] = {}
        missing = []
        for index in dict.fromkeys(int(i) for i in indices):
            key = (level, factor, index)
            if key in self._cache:
                self._cache.move_to_end(key)
                found[index] = self._cache[key]
            elif key in self._pending:
                found[index] = self._pending.pop(key).result()
                self._remember(key, found[index])
            else:
                missing.append(index)
        for index, tile in zip(missing, self._decode(level, factor, missing), strict=True):
            found[index] = tile
            self._remember((level, factor, index), tile)
        return found

    def prefetch(self, level: int, factor: int, indices: Iterable[int]) -> None:
        """Start decoding tiles the next call will want while the caller assembles the current batch
        (CPU threads only); errors surface when `tiles` asks for them."""
        if self._pool is None or self.device is not None:
            return
        for index in dict.fromkeys(int(i) for i in indices):
            key = (level, factor, index)
            if key not in self._cache and key not in self._pending:
                self._pending[key] = self._pool.submit(self._decode_one, level, factor, index)

    def _decode(self, level: int, factor: int, indices: list[int]) -> list[Tile]:
        if self.device is not None and indices:
            try:
                return self._decode_on_device(level, factor, indices)
            except SlideReadError:
                raise
            except Exception as exc:  # a GPU that fails must not fail the slide: CPU decodes the same
                logger.warning("%s: device decoding failed (%s: %s); decoding on the CPU from now on",
                               self.path, type(exc).__name__, exc)
                self.device = None
        if self._pool is None or len(indices) < 2:
            return [self._decode_one(level, factor, index) for index in indices]
        return list(self._pool.map(lambda index: self._decode_one(level, factor, index), indices))

    def _decode_one(self, level: int, factor: int, index: int) -> Tile:
        stream = self.stream(level, index)
        if stream is None:
            return None
        try:
            return decode_on_cpu(stream, tile_size=self.levels[level].tile_size, factor=factor)
        except ValueError as exc:
            raise self._error(level, index, exc) from exc

    def _decode_on_device(self, level: int, factor: int, indices: list[int]) -> list[Tile]:
        """One batch on the device; tiles are checked on the host first, as for the CPU."""
        device = self.device
        if device is None:
            raise RuntimeError("no device decoder")
        streams = {index: self.stream(level, index) for index in indices}
        present = [index for index, stream in streams.items() if stream is not None]
        decoded = device.decode([streams[index] for index in present], factor=factor)
        tile_w, tile_h = self.levels[level].tile_size
        shape = (tile_h // factor, tile_w // factor, 3)
        if len(decoded) != len(present) or any(tile.shape != shape for tile in decoded):
            raise RuntimeError("the device decoder returned tiles of the wrong number or shape")
        by_index: dict[int, Tile] = dict(zip(present, decoded, strict=True))
        return [by_index.get(index) for index in indices]

    def map(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`function` over `items` on the decode threads (for GIL-releasing work such as PIL resizes)."""
        return list(map(function, items) if self._pool is None else self._pool.map(function, items))

    def stream(self, level: int, index: int) -> bytes | None:
        """The tile as a complete, checked JPEG stream; None for a tile with no data."""
        tiles = self.levels[level]
        offset, count = int(tiles.offsets[index]), int(tiles.counts[index])
        if count == 0:
            return None
        data = os.pread(self._fd, count, offset)
        try:
            header = check_tile_bytes(data, count=count, tile_size=tiles.tile_size)
            return self.builders[level].stream(data, header)
        except ValueError as exc:
            raise self._error(level, index, exc) from exc

    def _error(self, level: int, index: int, exc: Exception) -> SlideReadError:
        return SlideReadError(f"{self.path}: cannot decode level {level} "
                              f"{describe_tile(self.levels[level], index)}: not a valid JPEG tile: {exc}")

    def _remember(self, key: tuple[int, int, int], tile: Tile) -> None:
        self._cache[key] = tile
        self._cached += 0 if tile is None else tile.nbytes
        while self._cached > self._cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= 0 if old is None else old.nbytes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._cache.clear()
        os.close(self._fd)
