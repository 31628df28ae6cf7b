"""Where to measure fine registration: patches full of tissue, spread as far apart as the tissue allows.

Spread matters: a rotation error moves points in proportion to their distance from the centre, so
patches far apart pin the angle down; patches mostly on glass have nothing to correlate.
"""

from collections.abc import Callable

import numpy as np

from raypath.slides.tiling import grid_positions, tissue_fractions

MIN_TISSUE = 0.6
"""Share of a patch the tissue mask must cover."""


def farthest_points(points: np.ndarray, *, count: int, start: int) -> np.ndarray:
    """Indices of `count` points picked greedily, each the farthest from those already picked."""
    chosen = [start]
    distance = np.linalg.norm(points - points[start], axis=1)
    while len(chosen) < min(count, len(points)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return np.asarray(chosen, dtype=np.int64)


def choose_regions(
    mask: np.ndarray, *, downsample: float, extent_l0: float, count: int,
    inside: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """(k <= count, 2) level-0 centres of square patches of side `extent_l0` on a half-patch grid,
    each covered >= MIN_TISSUE by `mask` (a thumbnail of `downsample` level-0 px per pixel) and with
    all four corners accepted by `inside`; the first is the one nearest the tissue's centroid."""
    extent = max(1, int(np.ceil(extent_l0)))
    height, width = (np.array(mask.shape) * downsample).astype(np.int64)
    xs = grid_positions(int(width), extent=extent, stride=extent / 2)
    ys = grid_positions(int(height), extent=extent, stride=extent / 2)
    corners = np.stack([np.tile(xs, len(ys)), np.repeat(ys, len(xs))], axis=1).reshape(-1, 2)
    if len(corners) == 0:
        return np.zeros((0, 2))
    fractions = tissue_fractions(mask.astype(np.float32), mask_downsample=downsample, coords=corners,
                                 extent=extent)
    offsets = np.array([[0, 0], [extent, 0], [0, extent], [extent, extent]])
    valid = (fractions >= MIN_TISSUE) & np.all([inside(corners + o) for o in offsets], axis=0)
    centres = corners[valid] + extent / 2.0
    if len(centres) == 0:
        return np.zeros((0, 2))
    start = int(np.argmin(np.linalg.norm(centres - centres.mean(axis=0), axis=1)))
    return centres[farthest_points(centres, count=count, start=start)]
