"""Tiling as pure functions: tissue mask + slide geometry -> level-0 tile coordinates at a fixed mpp.

Keeping the plan free of I/O makes it exact to test on hand-made masks and cheap to recompute; only
`tile_slide`, `read_tiles` and `iter_tiles` touch a reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from raypath.slides.config import TilingConfig
from raypath.slides.reader import SlideReader
from raypath.slides.reader.base import READ_BATCH
from raypath.slides.reader.resize import resize_tiles as resize_tiles  # re-exported
from raypath.slides.tissue import detect_tissue


@dataclass(frozen=True)
class TileGrid:
    """Tiles of one slide: read `read_size` px squares at `level`, resized to `tile_px` when they differ."""

    coords: np.ndarray  # (n, 2) int64 level-0 x, y of each tile's top-left corner
    extent_l0: int  # tile side in level-0 pixels
    level: int
    read_size: int  # tile side in pixels at `level`
    tile_px: int
    target_mpp: float
    tissue_fraction: np.ndarray  # (n,) float32 share of the tile covered by the tissue mask
    mpp_tolerance: float = 0.0  # relative mpp slack the config allows; readers may decode that coarse

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def needs_resize(self) -> bool:
        return self.read_size != self.tile_px


def choose_level(
    level_downsamples: Sequence[float], *, slide_mpp: float, target_mpp: float, tolerance: float
) -> int:
    """Coarsest level whose mpp is at most target*(1+tolerance): fewest pixels decoded, never upsampled
    unless level 0 itself is coarser than the target."""
    limit = target_mpp * (1 + tolerance)
    fitting = [i for i, ds in enumerate(level_downsamples) if slide_mpp * ds <= limit]
    return max(fitting, key=lambda i: level_downsamples[i]) if fitting else 0


def read_size_at(level_mpp: float, *, tile_px: int, target_mpp: float, tolerance: float) -> int:
    """Pixels to read at a level of `level_mpp`: exactly `tile_px` when within tolerance (no resize)."""
    if abs(level_mpp / target_mpp - 1) <= tolerance:
        return tile_px
    return max(1, round(tile_px * target_mpp / level_mpp))


def grid_positions(length: int, *, extent: int, stride: float) -> np.ndarray:
    """Starts of tiles lying fully inside [0, length); empty when one tile does not fit."""
    if length < extent:
        return np.zeros(0, dtype=np.int64)
    count = math.floor((length - extent) / stride) + 1
    return np.round(np.arange(count) * stride).astype(np.int64)


def tissue_fractions(
    mask: np.ndarray, *, mask_downsample: float, coords: np.ndarray, extent: int
) -> np.ndarray:
    """Exact area share of each level-0 box covered by the mask, boxes at any sub-mask-pixel offset.

    The integral of a piecewise-constant mask is bilinear inside each cell, so bilinear interpolation
    of the summed-area table gives the exact coverage of fractional boxes.
    """
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.float64)
    table[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.float64), axis=1)
    x0, y0 = coords[:, 0] / mask_downsample, coords[:, 1] / mask_downsample
    x1, y1 = x0 + extent / mask_downsample, y0 + extent / mask_downsample
    def corner(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return _integral(table, y, x)

    area = corner(y1, x1) - corner(y0, x1) - corner(y1, x0) + corner(y0, x0)
    return (area / (extent / mask_downsample) ** 2).astype(np.float32)


def _integral(table: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mask area in [0, y) x [0, x) (mask-pixel units), bilinear in the summed-area table."""
    y = np.clip(y, 0, table.shape[0] - 1)
    x = np.clip(x, 0, table.shape[1] - 1)
    iy = np.minimum(np.floor(y).astype(np.int64), table.shape[0] - 2)
    ix = np.minimum(np.floor(x).astype(np.int64), table.shape[1] - 2)
    dy, dx = y - iy, x - ix
    top = table[iy, ix] * (1 - dx) + table[iy, ix + 1] * dx
    bottom = table[iy + 1, ix] * (1 - dx) + table[iy + 1, ix + 1] * dx
    return top * (1 - dy) + bottom * dy


def even_subsample(count: int, limit: int | None) -> np.ndarray:
    """`limit` indices spread evenly over `count`, deterministic so reruns extract the same tiles."""
    if limit is None or count <= limit:
        return np.arange(count)
    return (np.arange(limit) * count) // limit


def plan_tiles(
    *,
    mask: np.ndarray,
    mask_downsample: float,
    dimensions: tuple[int, int],
    level_downsamples: Sequence[float],
    slide_mpp: float,
    config: TilingConfig,
) -> TileGrid:
    """Row-major grid of tiles fully inside the slide with tissue fraction >= config.min_tissue_fraction."""
    level = choose_level(
        level_downsamples, slide_mpp=slide_mpp, target_mpp=config.target_mpp, tolerance=config.mpp_tolerance
    )
    downsample = float(level_downsamples[level])
    read_size = read_size_at(
        slide_mpp * downsample, tile_px=config.tile_px, target_mpp=config.target_mpp,
        tolerance=config.mpp_tolerance,
    )
    extent = round(read_size * downsample)
    stride = extent * (config.stride_px or config.tile_px) / config.tile_px
    xs = grid_positions(dimensions[0], extent=extent, stride=stride)
    ys = grid_positions(dimensions[1], extent=extent, stride=stride)
    coords = np.stack([np.tile(xs, len(ys)), np.repeat(ys, len(xs))], axis=1).reshape(-1, 2)
    fractions = tissue_fractions(mask, mask_downsample=mask_downsample, coords=coords, extent=extent)
    keep = np.flatnonzero(fractions >= config.min_tissue_fraction)
    keep = keep[even_subsample(len(keep), config.max_tiles_per_slide)]
    return TileGrid(
        coords=coords[keep], extent_l0=extent, level=level, read_size=read_size, tile_px=config.tile_px,
        target_mpp=config.target_mpp, tissue_fraction=fractions[keep], mpp_tolerance=config.mpp_tolerance,
    )


def tile_slide(reader: SlideReader, config: TilingConfig) -> TileGrid:
    """Thumbnail -> tissue mask -> tile plan; the only I/O is the thumbnail read."""
    thumb = reader.thumbnail(mpp=config.tissue.thumbnail_mpp)
    mask = detect_tissue(thumb.image, mpp=thumb.mpp, config=config.tissue)
    return plan_tiles(
        mask=mask, mask_downsample=thumb.downsample, dimensions=reader.dimensions,
        level_downsamples=reader.level_downsamples, slide_mpp=reader.mpp, config=config,
    )


def read_tiles(reader: SlideReader, grid: TileGrid, indices: np.ndarray | None = None) -> np.ndarray:
    """Tiles as uint8 (b, tile_px, tile_px, 3), read at the grid's level and resized only if off-target."""
    coords = grid.coords if indices is None else grid.coords[np.asarray(indices)]
    out = np.empty((len(coords), grid.tile_px, grid.tile_px, 3), dtype=np.uint8)
    start = 0
    for batch in reader.iter_tiles(locations=coords, level=grid.level, size=grid.read_size,
                                   tile_px=grid.tile_px, batch_size=READ_BATCH, slack=grid.mpp_tolerance):
        out[start : start + len(batch)] = batch
        start += len(batch)
    return out


def iter_tiles(
    reader: SlideReader, grid: TileGrid, *, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(indices, tiles) batches over the whole grid; a 40x slide never sits in memory at once.
    How a batch is decoded and brought to `tile_px` is the reader's business (`SlideReader.iter_tiles`)."""
    batches = reader.iter_tiles(locations=grid.coords, level=grid.level, size=grid.read_size,
                                tile_px=grid.tile_px, batch_size=batch_size, slack=grid.mpp_tolerance)
    start = 0
    for batch in batches:
        yield np.arange(start, start + len(batch)), batch
        start += len(batch)
