"""Refuse a region before cuCIM decodes it when one of the TIFF JPEG tiles it touches is damaged.

cuCIM's CPU decoder only prints "ERROR ... while reading JPEG header" for a damaged tile and hands
back undefined pixels, and overruns its tile buffer (SIGSEGV) when a tile's frame header claims more
pixels than the TIFF tile holds. OpenSlide raises on both; checking each tile's structure once
(`check_tile_bytes`) gives cuCIM the same behaviour for the price of reading each tile's bytes once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from raypath.slides.reader.errors import SlideReadError
from raypath.slides.reader.jpeg_check import JpegHeader, jpeg_header

logger = logging.getLogger(__name__)

JPEG_COMPRESSION = 7
"""TIFF Compression of 'new-style' JPEG: the tiles cuCIM hands to libjpeg-turbo."""


@dataclass(frozen=True)
class LevelTiles:
    """Where one pyramid level's JPEG tiles lie in the file, and their grid."""

    offsets: np.ndarray
    counts: np.ndarray
    tile_size: tuple[int, int]
    image_size: tuple[int, int]
    jpeg_tables: bytes | None = None
    photometric: int = 2

    @property
    def columns(self) -> int:
        return -(-self.image_size[0] // self.tile_size[0])


def level_tiles(page: tifffile.TiffPage) -> LevelTiles | None:
    """JPEG-tiled pages only: other compressions and striped pages are not checked."""
    if not page.is_tiled or page.compression != JPEG_COMPRESSION:
        return None
    return LevelTiles(
        offsets=np.asarray(page.dataoffsets, dtype=np.int64),
        counts=np.asarray(page.databytecounts, dtype=np.int64),
        tile_size=(int(page.tilewidth), int(page.tilelength)),
        image_size=(int(page.imagewidth), int(page.imagelength)),
        jpeg_tables=page.jpegtables,
        photometric=int(page.photometric),
    )


def findlevel_tiles(path: Path, level_dimensions: tuple[tuple[int, int], ...]) -> list[LevelTiles | None]:
    """The tiled page of each cuCIM level, matched by size in file order. Not tifffile's series:
    its SVS parser takes page 1 for a thumbnail even where (as in our synthetic SVS) it is a level."""
    with tifffile.TiffFile(path) as tif:
        tiled = [page for page in tif.pages if isinstance(page, tifffile.TiffPage) and page.is_tiled]
        levels: list[LevelTiles | None] = []
        for width, height in level_dimensions:
            match = next((p for p in tiled if (p.imagewidth, p.imagelength) == (width, height)), None)
            if match is None:
                logger.debug("%s: no tiled page of %dx%d; its tiles go unchecked", path, width, height)
            levels.append(level_tiles(match) if match is not None else None)
    return levels


def check_tile_bytes(data: bytes, *, count: int, tile_size: tuple[int, int]) -> JpegHeader:
    """The header of one TIFF JPEG tile read from the file; ValueError saying what is wrong when the
    read came up short or the frame is not the TIFF tile's size (a crafted header overruns decoders)."""
    if len(data) < count:
        raise ValueError(f"the file ends {count - len(data)} bytes into the tile (truncated file)")
    header = jpeg_header(data)
    if header.size != tile_size:
        raise ValueError(f"JPEG frame is {header.width}x{header.height} px but the TIFF tile is "
                         f"{tile_size[0]}x{tile_size[1]}")
    return header


def touched_tiles(
    tiles: LevelTiles, location: tuple[int, int], *, downsample: float, size: tuple[int, int]
) -> Iterator[int]:
    """Indices of the tiles under the region at level-0 `location`. cuCIM divides a location by the
    downsample; covering both the floored and the ceiled pixel makes its exact rounding moot."""
    (tile_w, tile_h), (image_w, image_h) = tiles.tile_size, tiles.image_size
    x, y = location[0] / downsample, location[1] / downsample
    left, top = math.floor(x), math.floor(y)
    right, bottom = math.ceil(x) + size[0] - 1, math.ceil(y) + size[1] - 1
    if right < 0 or bottom < 0 or left >= image_w or top >= image_h:
        return
    columns = range(max(left, 0) // tile_w, min(right, image_w - 1) // tile_w + 1)
    for row in range(max(top, 0) // tile_h, min(bottom, image_h - 1) // tile_h + 1):
        yield from (row * tiles.columns + column for column in columns)


def describe_tile(tiles: LevelTiles, index: int) -> str:
    """'tile 5 (column 1, row 1, at level pixel 256,256)': findable in any TIFF viewer."""
    column, row = index % tiles.columns, index // tiles.columns
    return (f"tile {index} (column {column}, row {row}, "
            f"at level pixel {column * tiles.tile_size[0]},{row * tiles.tile_size[1]})")


class TileValidator:
    """Checks the JPEG tiles that regions touch; each tile is read and checked once per validator."""

    def __init__(
        self, path: str | Path, *, level_dimensions: tuple[tuple[int, int], ...],
        level_downsamples: tuple[float, ...],
    ) -> None:
        self.path = Path(path)
        self._levels = findlevel_tiles(self.path, level_dimensions)
        self._downsamples = level_downsamples
        self._file = self.path.open("rb")
        self._lock = threading.Lock()
        self._valid: set[tuple[int, int]] = set()

    @property
    def has_sparse_tiles(self) -> bool:
        """Tiles stored with no data mean "empty glass" in sparse TIFFs (e.g. Philips), not damage."""
        return any(tiles is not None and bool((tiles.counts == 0).any()) for tiles in self._levels)

    def check(self, locations: np.ndarray, *, level: int, size: tuple[int, int]) -> None:
        """Raise SlideReadError naming the region and its first damaged tile, for (n, 2) level-0 regions."""
        tiles = self._levels[level]
        if tiles is None:
            return
        for x, y in locations.tolist():
            for index in touched_tiles(tiles, (x, y), downsample=self._downsamples[level], size=size):
                if (level, index) in self._valid:
                    continue
                try:
                    self._check_tile(tiles, index)
                except ValueError as exc:
                    raise SlideReadError(
                        f"{self.path}: cannot decode region at {(x, y)} level {level} size {size}: "
                        f"{describe_tile(tiles, index)} is not a valid JPEG tile: {exc}"
                    ) from exc
                self._valid.add((level, index))

    def _check_tile(self, tiles: LevelTiles, index: int) -> None:
        """Raise ValueError saying what is wrong with one tile's bytes."""
        offset, count = int(tiles.offsets[index]), int(tiles.counts[index])
        if count == 0:  # only reachable when a reader is used on a sparse file despite the refusal
            raise ValueError("the tile has no data (byte count 0)")
        with self._lock:
            self._file.seek(offset)
            data = self._file.read(count)
        check_tile_bytes(data, count=count, tile_size=tiles.tile_size)

    def close(self) -> None:
        self._file.close()
