"""Quality-control picture of one slide's tiling: the thumbnail, the tissue contour and the tile grid.

Tissue detection and tiling fail quietly (pen marks taken for tissue, faint tissue missed, a grid
off the tissue); a user who can glance at every slide catches that before features are trusted,
as TRIDENT and CLAM users do. A band under the picture names the slide and its tile count and holds
a scale bar in microns and the colour legend, so a picture still says what it shows when it is
copied out of its folder. Pure: arrays in, JPEG bytes out; extraction writes one per slide.
"""

import functools
import io
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

CONTOUR = (0, 160, 60)  # green tissue outline
GRID = (30, 60, 220)  # blue tile squares
MAX_SIDE = 1024  # px: small enough for a report, large enough to judge the grid
MIN_SIDE = 512  # px: a small biopsy's thumbnail is enlarged so its tiles are more than a few pixels
BAND = 44  # px: height of the caption band under the picture
ROUND_LENGTHS_UM = (10_000, 5000, 2000, 1000, 500, 200, 100, 50, 20, 10)


def display_scale(size: tuple[int, int]) -> float:
    """Factor that brings the picture's long side within [MIN_SIDE, MAX_SIDE]."""
    longest = max(size)
    return MAX_SIDE / longest if longest > MAX_SIDE else MIN_SIDE / longest if longest < MIN_SIDE else 1.0


def mask_contour(mask: np.ndarray) -> np.ndarray:
    """Boolean edge pixels of a tissue mask (its boundary, one pixel wide)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def scale_bar_um(width_um: float) -> float:
    """The longest round length (1-2-5 steps) that fits in a fifth of `width_um`."""
    return next((v for v in ROUND_LENGTHS_UM if v <= width_um / 5), ROUND_LENGTHS_UM[-1])


def length_label(um: float) -> str:
    return f"{um / 1000:g} mm" if um >= 1000 else f"{um:g} µm"


def _picture(thumbnail: np.ndarray, mask: np.ndarray, *, coords: np.ndarray, extent_l0: int,
             downsample: float) -> tuple[Image.Image, float]:
    """The thumbnail with contour and grid, brought to display size; (picture, display scale)."""
    picture = Image.fromarray(np.array(thumbnail[..., :3], dtype=np.uint8))
    outline = Image.fromarray(np.asarray(mask, dtype=bool))
    scale = display_scale(picture.size)
    if scale != 1:  # resized before anything is drawn, so lines keep their width at any scale
        size = (round(picture.width * scale), round(picture.height * scale))
        picture = picture.resize(size, Image.BILINEAR if scale < 1 else Image.NEAREST)
        outline = outline.resize(size, Image.NEAREST)
    image = np.array(picture)
    image[ndimage.binary_dilation(mask_contour(np.asarray(outline)))] = CONTOUR  # 3 px: survives JPEG
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    side = extent_l0 / downsample * scale
    for x, y in np.asarray(coords, dtype=float) / downsample * scale:
        draw.rectangle([x, y, x + side, y + side], outline=GRID)
    return picture, scale


@functools.cache
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (shipped with matplotlib: it has µ), else Pillow's own font."""
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return ImageFont.truetype(str(path), 13) if path.exists() else ImageFont.load_default(size=13)


def _band(width: int, *, caption: str, um_per_px: float) -> Image.Image:
    """Caption on the first line; scale bar, then the contour and tile legend, on the second."""
    band = Image.new("RGB", (width, BAND), (255, 255, 255))
    draw, font = ImageDraw.Draw(band), _font()
    draw.text((6, 3), caption, fill=(0, 0, 0), font=font)
    length = scale_bar_um(width * um_per_px)
    bar = round(length / um_per_px)
    draw.rectangle([6, 30, 6 + bar, 33], fill=(0, 0, 0))
    x = 12 + bar
    draw.text((x, 23), length_label(length), fill=(0, 0, 0), font=font)
    x += round(draw.textlength(length_label(length), font=font)) + 18
    draw.line([x, 31, x + 18, 31], fill=CONTOUR, width=3)
    draw.text((x + 24, 23), "tissue contour", fill=(0, 0, 0), font=font)
    x += 24 + round(draw.textlength("tissue contour", font=font)) + 18
    draw.rectangle([x, 25, x + 12, 37], outline=GRID)
    draw.text((x + 18, 23), "tiles kept", fill=(0, 0, 0), font=font)
    return band


def qc_image(thumbnail: np.ndarray, mask: np.ndarray, *, coords: np.ndarray, extent_l0: int,
             downsample: float, mpp: float, slide_id: str, quality: int = 80) -> bytes:
    """JPEG of the thumbnail with the tissue contour and each tile's square drawn on it, above a band
    with the slide id, tile count and size, a scale bar and the legend.

    `coords` are level-0 top-left corners, `downsample` level-0 px per thumbnail px, `mpp` microns per
    thumbnail px.
    """
    picture, scale = _picture(thumbnail, mask, coords=coords, extent_l0=extent_l0, downsample=downsample)
    tile_um = extent_l0 / downsample * mpp
    caption = f"{slide_id}: {len(coords)} tiles of {tile_um:.0f} µm"
    framed = Image.new("RGB", (picture.width, picture.height + BAND), (255, 255, 255))
    framed.paste(picture, (0, 0))
    framed.paste(_band(picture.width, caption=caption, um_per_px=mpp / scale), (0, picture.height))
    buffer = io.BytesIO()
    framed.save(buffer, format="JPEG", quality=quality, subsampling=0)  # 4:4:4 keeps 1-px lines
    return buffer.getvalue()
