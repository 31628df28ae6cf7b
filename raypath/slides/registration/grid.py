"""A moving scan's tiles on its reference scan's grid: tile pairs that show the same tissue.

Each scan tiled on its own grid pairs tiles whose centres lie up to half a tile apart, so a pair
shares only part of its tissue. Here every reference tile's centre is mapped through the
registration into the moving scan, and the moving scan's tile is read there: a pair's centres
coincide up to the registration error. Tiles stay axis-aligned squares of each scan (pixels are
read, never resampled by a rotation), so the two tiles of a pair differ by the scans' relative
rotation (area overlap ~1 - 0.0084 per degree); the mapped grid is rotated in the moving scan,
so its tiles may overlap their neighbours or leave slivers between them; a reference tile whose
place on the moving scan is off the slide or lacks tissue there (torn, folded, cut differently)
has no moving tile.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raypath.slides.config import TilingConfig
from raypath.slides.reader import SlideReader, open_slide
from raypath.slides.registration.store import registration_transforms
from raypath.slides.registration.transform import Transform
from raypath.slides.tiling import TileGrid, plan_tiles, tile_slide, tissue_fractions
from raypath.slides.tissue import detect_tissue


def map_grid(
    reference: TileGrid, *, transform: Transform, own: TileGrid, mask: np.ndarray, mask_downsample: float,
    dimensions: tuple[int, int], min_tissue_fraction: float,
) -> TileGrid:
    """The moving scan's grid: `own` (its per-scan grid, for level, read size and extent) with its
    tiles centred where `transform` (moving -> reference level-0) places the reference tiles'
    centres, kept where they lie inside the slide with at least `min_tissue_fraction` tissue in
    the scan's own mask. Tiles keep the reference grid's order."""
    centres = transform.inverse().apply(reference.coords + reference.extent_l0 / 2.0)
    coords = np.round(centres - own.extent_l0 / 2.0).astype(np.int64).reshape(-1, 2)
    inside = np.all((coords >= 0) & (coords <= np.asarray(dimensions) - own.extent_l0), axis=1)
    fractions = tissue_fractions(mask, mask_downsample=mask_downsample, coords=coords, extent=own.extent_l0)
    keep = np.flatnonzero(inside & (fractions >= min_tissue_fraction))
    return TileGrid(coords=coords[keep], extent_l0=own.extent_l0, level=own.level, read_size=own.read_size,
                    tile_px=own.tile_px, target_mpp=own.target_mpp, tissue_fraction=fractions[keep],
                    mpp_tolerance=own.mpp_tolerance)


@dataclass(frozen=True)
class ReferenceScan:
    """The scan whose grid a moving scan is tiled on, and the moving scan's transform onto it."""

    path: str
    transform: Transform
    mpp: float = math.nan  # the manifest's mpp override of the reference; NaN = the file's


def scan_references(manifest: pd.DataFrame, registration: pd.DataFrame) -> dict[str, ReferenceScan | None]:
    """slide_id -> the ReferenceScan a moving scan is tiled on (path and mpp override from the manifest,
    transform from the registration table), None for a reference scan; slides the table does not
    cover (or whose reference is not in the manifest) are absent."""
    rows = manifest.set_index("slide_id")
    references: dict[str, ReferenceScan | None] = {}
    for slide_id, (reference, transform) in registration_transforms(registration).items():
        if reference == slide_id:
            references[slide_id] = None
        elif reference in rows.index:
            path, mpp = str(rows.at[reference, "path"]), float(rows.at[reference, "mpp"])
            references[slide_id] = ReferenceScan(path=path, transform=transform, mpp=mpp)
    return references


def on_reference_grid(
    reader: SlideReader, own: TileGrid, *, mask: np.ndarray, mask_downsample: float, reference: ReferenceScan,
    config: TilingConfig,
) -> TileGrid:
    """`map_grid` of the reference scan's own tiling (its thumbnail, tissue and grid, as extraction
    tiles it) onto the scan `reader` reads, whose per-scan grid is `own` and tissue mask `mask`."""
    override = None if math.isnan(reference.mpp) else reference.mpp
    with open_slide(reference.path, reader=config.reader, mpp_override=override) as other:
        grid = tile_slide(other, config)
    return map_grid(grid, transform=reference.transform, own=own, mask=mask, mask_downsample=mask_downsample,
                    dimensions=reader.dimensions, min_tissue_fraction=config.min_tissue_fraction)


def tile_registered(
    reader: SlideReader, config: TilingConfig, *, reference: ReferenceScan | None
) -> TileGrid:
    """`tile_slide`, on the reference's grid when `reference` is given (a moving scan, grid: reference)."""
    if reference is None:
        return tile_slide(reader, config)
    thumb = reader.thumbnail(mpp=config.tissue.thumbnail_mpp)
    mask = detect_tissue(thumb.image, mpp=thumb.mpp, config=config.tissue)
    own = plan_tiles(mask=mask, mask_downsample=thumb.downsample, dimensions=reader.dimensions,
                     level_downsamples=reader.level_downsamples, slide_mpp=reader.mpp, config=config)
    return on_reference_grid(reader, own, mask=mask, mask_downsample=thumb.downsample, reference=reference,
                             config=config)
