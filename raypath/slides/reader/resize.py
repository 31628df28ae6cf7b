"""Tiles brought to the model's pixel size: the finishing step every reader shares."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_tile(tile: np.ndarray, tile_px: int) -> np.ndarray:
    """One square tile to `tile_px`: area mean for whole-number shrink factors (the common 40x -> 20x
    case, exact and ~15x faster than Lanczos), Lanczos otherwise (anti-aliased for any other factor)."""
    read_size = tile.shape[0]
    if read_size == tile_px:
        return tile
    image = Image.fromarray(tile)
    factor, remainder = divmod(read_size, tile_px)
    if remainder == 0:
        return np.asarray(image.reduce(factor))
    return np.asarray(image.resize((tile_px, tile_px), Image.Resampling.LANCZOS))


def resize_tiles(tiles: np.ndarray, tile_px: int) -> np.ndarray:
    """(n, s, s, 3) square tiles to (n, tile_px, tile_px, 3), each as `resize_tile` does."""
    if tiles.shape[1] == tile_px:
        return tiles
    out = np.empty((len(tiles), tile_px, tile_px, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        out[i] = resize_tile(tile, tile_px)
    return out
