"""Whole-slide thumbnails at a fixed mpp, read in strips so non-pyramidal slides fit in memory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from raypath.slides.reader.base import SlideReader

MAX_STRIP_PIXELS = 1 << 24
"""Upper bound on pixels decoded per read: bounds memory on a 100k-px non-pyramidal level."""


@dataclass(frozen=True)
class Thumbnail:
    """A downsampled RGB view of the slide; pixel (r, c) covers level-0 [c*ds, (c+1)*ds) x [r*ds, ...)."""

    image: np.ndarray
    downsample: float
    mpp: float


def best_level_for_downsample(level_downsamples: tuple[float, ...], downsample: float) -> int:
    """Coarsest level not coarser than `downsample` (1e-6 slack for float-rounded downsamples)."""
    fitting = [i for i, ds in enumerate(level_downsamples) if ds <= downsample * (1 + 1e-6)]
    return max(fitting, key=lambda i: level_downsamples[i]) if fitting else 0


def render_thumbnail(reader: SlideReader, *, mpp: float) -> Thumbnail:
    """Read the best level in row strips and box-filter each strip down to the thumbnail grid.

    The thumbnail size is ceil(level-0 size / downsample), so the grid maps exactly onto level 0;
    the sliver beyond the slide edge reads as white glass.
    """
    downsample = max(mpp / reader.mpp, 1.0)
    width0, height0 = reader.dimensions
    thumb_w, thumb_h = math.ceil(width0 / downsample), math.ceil(height0 / downsample)
    level = best_level_for_downsample(reader.level_downsamples, downsample)
    factor = downsample / reader.level_downsamples[level]
    read_w = math.ceil(thumb_w * factor)
    rows_per_strip = max(1, int(MAX_STRIP_PIXELS // (read_w * factor)))
    strips = []
    for row0 in range(0, thumb_h, rows_per_strip):
        rows = min(rows_per_strip, thumb_h - row0)
        region = reader.read_region(
            location=(0, round(row0 * downsample)), level=level, size=(read_w, max(1, round(rows * factor)))
        )
        strips.append(np.asarray(Image.fromarray(region).resize((thumb_w, rows), Image.Resampling.BOX)))
    return Thumbnail(image=np.concatenate(strips, axis=0), downsample=downsample, mpp=downsample * reader.mpp)
