"""Quality-control picture of one slide's tiling: the thumbnail, the tissue contour and the tile grid.

Tissue detection and tiling fail quietly (pen marks taken for tissue, faint tissue missed, a grid
off the tissue); a user who can glance at every slide catches that before features are trusted,
as TRIDENT and CLAM users do. Pure: arrays in, JPEG bytes out; extraction writes one per slide.
"""

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

CONTOUR = (0, 160, 60)  # green tissue outline
GRID = (30, 60, 220)  # blue tile squares
MAX_SIDE = 1024  # px: small enough for a report, large enough to judge the grid
MIN_SIDE = 512  # px: a small biopsy's thumbnail is enlarged so its tiles are more than a few pixels


def display_scale(size: tuple[int, int]) -> float:
    """Factor that brings the picture's long side within [MIN_SIDE, MAX_SIDE]."""
    longest = max(size)
    return MAX_SIDE / longest if longest > MAX_SIDE else MIN_SIDE / longest if longest < MIN_SIDE else 1.0


def mask_contour(mask: np.ndarray) -> np.ndarray:
    """Boolean edge pixels of a tissue mask (its boundary, one pixel wide)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def qc_image(thumbnail: np.ndarray, mask: np.ndarray, *, coords: np.ndarray, extent_l0: int,
             downsample: float, quality: int = 80) -> bytes:
    """JPEG of the thumbnail with the tissue contour and each tile's square drawn on it.

    `coords` are level-0 top-left corners, `downsample` level-0 px per thumbnail px.
    """
    image = np.array(thumbnail[..., :3], dtype=np.uint8)
    image[ndimage.binary_dilation(mask_contour(mask.astype(bool)))] = CONTOUR  # 3 px: survives JPEG
    picture = Image.fromarray(image)
    scale = display_scale(picture.size)
    if scale != 1:  # resized before the grid is drawn, so the grid lines stay one pixel sharp
        size = (round(picture.width * scale), round(picture.height * scale))
        picture = picture.resize(size, Image.BILINEAR if scale < 1 else Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    side = extent_l0 / downsample * scale
    for x, y in np.asarray(coords, dtype=float) / downsample * scale:
        draw.rectangle([x, y, x + side, y + side], outline=GRID)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality, subsampling=0)  # 4:4:4 keeps 1-px lines
    return buffer.getvalue()
