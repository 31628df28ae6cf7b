"""Registered tile pairs: which tile of scan B shows the tissue of tile i of scan A."""

import numpy as np
from scipy.spatial import cKDTree

from raypath.slides.registration.transform import Transform


def tile_pairs(
    *,
    coords_a: np.ndarray,
    coords_b: np.ndarray,
    transform_a: Transform,
    transform_b: Transform,
    extent_l0: float | tuple[float, float],
    max_distance_fraction: float = 0.5,
) -> np.ndarray:
    """(m, 2) int64 index pairs (i into A, j into B) of tiles showing the same tissue.

    Tile centres (top-left level-0 coords + half the level-0 extent) of both scans are mapped into
    their reference scan's frame; a pair is kept when each is the other's nearest centre
    (mutual nearest neighbours, so every tile is used at most once) and they lie within
    `max_distance_fraction` of a tile side. `extent_l0` is one level-0 tile side for both scans
    or (side_a, side_b) when their mpp differ. Sorted by i.
    """
    side_a, side_b = (extent_l0, extent_l0) if np.isscalar(extent_l0) else extent_l0
    coords_a = np.asarray(coords_a, dtype=np.float64).reshape(-1, 2)
    coords_b = np.asarray(coords_b, dtype=np.float64).reshape(-1, 2)
    if len(coords_a) == 0 or len(coords_b) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    centres_a = transform_a.apply(coords_a + side_a / 2.0)
    centres_b = transform_b.apply(coords_b + side_b / 2.0)
    limit = max_distance_fraction * side_a * transform_a.scale
    distance_ab, nearest_b = cKDTree(centres_b).query(centres_a)
    _, nearest_a = cKDTree(centres_a).query(centres_b)
    index_a = np.arange(len(centres_a))
    keep = (nearest_a[nearest_b] == index_a) & (distance_ab <= limit)
    return np.stack([index_a[keep], nearest_b[keep]], axis=1).astype(np.int64)
