"""Stream a pyramidal, JPEG-tiled, Aperio-style TIFF (.svs) without holding a level in memory.

Layout that both OpenSlide (vendor 'aperio') and cuCIM accept: page 0 is level 0 with the Aperio
ImageDescription (written with `metadata=None`, else tifffile replaces it with its own JSON),
then each lower level as a further tiled page, downsampled 4x (OpenSlide ignores SubIFDs).
Level 0 is rendered stripe by stripe and streamed to tifffile tile by tile; while it streams, its
4x area-mean goes to a disk memmap, from which the next level is written the same way.
"""

import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile

log = logging.getLogger(__name__)

TILE = 256
LEVEL_FACTOR = 4
BlockRenderer = Callable[[int, int, int, int], np.ndarray]
"""(x0, y0, width, height) in level-0 pixels -> uint8 RGB (height, width, 3)."""


def aperio_description(
    *, dimensions: tuple[int, int], level: tuple[int, int] | None, mpp: float, quality: int
) -> str:
    """The ImageDescription OpenSlide's aperio driver parses (`|`-separated key = value pairs)."""
    w, h = dimensions
    head = f"Aperio Image Library v12.0.0 \r\n{w}x{h} [0,0 {w}x{h}] ({TILE}x{TILE})"
    if level is not None:
        return f"{head} -> {level[0]}x{level[1]} JPEG/RGB Q={quality}"
    app_mag = 40 if mpp < 0.35 else 20
    return f"{head} JPEG/RGB Q={quality}|AppMag = {app_mag}|MPP = {mpp:.4f}"


def level_dimensions(dimensions: tuple[int, int]) -> list[tuple[int, int]]:
    """Level sizes: divide by 4 while the next level still holds at least one full tile."""
    levels = [dimensions]
    while min(levels[-1]) // LEVEL_FACTOR >= TILE:
        levels.append((levels[-1][0] // LEVEL_FACTOR, levels[-1][1] // LEVEL_FACTOR))
    return levels


DOWNSAMPLE_COLUMNS = 4096
"""Target columns averaged at once: the float copy stays ~50 MB however wide the slide."""


def _downsample_into(stripe: np.ndarray, target: np.ndarray, row: int) -> None:
    """Area-mean 4x of a stripe (rows multiple of 4 except the last) into `target` from `row`,
    a band of columns at a time."""
    rows = min(stripe.shape[0] // LEVEL_FACTOR, target.shape[0] - row)
    if rows <= 0:
        return
    for col in range(0, target.shape[1], DOWNSAMPLE_COLUMNS):
        cols = min(DOWNSAMPLE_COLUMNS, target.shape[1] - col)
        band = stripe[: rows * LEVEL_FACTOR, col * LEVEL_FACTOR : (col + cols) * LEVEL_FACTOR]
        band = band.astype(np.float32).reshape(rows, LEVEL_FACTOR, cols, LEVEL_FACTOR, 3).mean(axis=(1, 3))
        target[row : row + rows, col : col + cols] = np.rint(band).astype(np.uint8)


def _stripe_tiles(stripe: np.ndarray) -> Iterator[np.ndarray]:
    for y in range(0, stripe.shape[0], TILE):
        for x in range(0, stripe.shape[1], TILE):
            yield stripe[y : y + TILE, x : x + TILE]


def _level0_tiles(
    render: BlockRenderer, dimensions: tuple[int, int], below: np.ndarray | None, stripe_px: int
) -> Iterator[np.ndarray]:
    width, height = dimensions
    for y0 in range(0, height, stripe_px):
        rows = min(stripe_px, height - y0)
        stripe = np.empty((rows, width, 3), dtype=np.uint8)  # filled block by block: no second copy
        for x0 in range(0, width, stripe_px):
            stripe[:, x0 : x0 + stripe_px] = render(x0, y0, min(stripe_px, width - x0), rows)
        if below is not None:
            _downsample_into(stripe, below, y0 // LEVEL_FACTOR)
        yield from _stripe_tiles(stripe)


def _level_tiles(level: np.ndarray, below: np.ndarray | None) -> Iterator[np.ndarray]:
    stripe_px = TILE * LEVEL_FACTOR
    for y0 in range(0, level.shape[0], stripe_px):
        stripe = np.asarray(level[y0 : y0 + stripe_px])
        if below is not None:
            _downsample_into(stripe, below, y0 // LEVEL_FACTOR)
        yield from _stripe_tiles(stripe)


def write_svs(
    path: Path,
    *,
    render: BlockRenderer,
    dimensions: tuple[int, int],
    mpp: float,
    quality: int,
    stripe_px: int = 1024,
) -> None:
    """Write the pyramid to `path` (the caller renames it into place); `stripe_px` % 1024 == 0."""
    levels = level_dimensions(dimensions)
    bigtiff = dimensions[0] * dimensions[1] * 3 > 2**31
    common = {
        "tile": (TILE, TILE),
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": quality},
        "metadata": None,
        "dtype": np.uint8,
    }
    with (
        tempfile.TemporaryDirectory(dir=path.parent, prefix=".pyramid-") as scratch,
        tifffile.TiffWriter(path, bigtiff=bigtiff) as tif,
    ):
        maps = [
            np.lib.format.open_memmap(
                Path(scratch) / f"level{i}.npy", mode="w+", dtype=np.uint8, shape=(h, w, 3)
            )
            for i, (w, h) in enumerate(levels[1:], 1)
        ]
        below = maps[0] if maps else None
        desc = aperio_description(dimensions=dimensions, level=None, mpp=mpp, quality=quality)
        tif.write(
            _level0_tiles(render, dimensions, below, stripe_px),
            shape=(dimensions[1], dimensions[0], 3),
            description=desc,
            **common,
        )
        for index, current in enumerate(maps, 1):
            below = maps[index] if index < len(maps) else None
            desc = aperio_description(dimensions=dimensions, level=levels[index], mpp=mpp, quality=quality)
            tif.write(_level_tiles(current, below), shape=current.shape, description=desc, **common)
            current.flush()
        maps.clear()  # release the memmaps before the scratch directory goes
    log.debug("wrote %s: levels %s", path, levels)
