"""The QC picture shows the tissue outline and exactly the tiles that were planned."""

import io

import numpy as np
import pytest
from PIL import Image

from raypath.slides.qc import BAND, mask_contour, qc_image, scale_bar_um


def test_contour_is_the_mask_boundary():
    mask = np.zeros((7, 7), bool)
    mask[2:5, 2:5] = True
    edge = mask_contour(mask)
    assert edge.sum() == 8 and not edge[3, 3] and edge[2, 2]


def _picture(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def _green(p: np.ndarray) -> bool:  # JPEG-blurred
    return int(p[1]) > int(p[0]) + 40 and int(p[1]) > int(p[2]) + 20


def _blue(p: np.ndarray) -> bool:
    return int(p[2]) > int(p[0]) + 40 and int(p[2]) > int(p[1]) + 40


def test_picture_draws_the_outline_and_every_tile_square():
    thumbnail = np.full((400, 600, 3), 240, np.uint8)
    mask = np.zeros((400, 600), bool)
    mask[50:350, 50:550] = True
    coords = np.array([[400, 400], [1200, 400]])  # level-0; downsample 4 -> squares at x=100, 300
    picture = _picture(qc_image(thumbnail, mask, coords=coords, extent_l0=320, downsample=4.0, mpp=2.0,
                                slide_id="s1", quality=95))
    assert picture.shape == (400 + BAND, 600, 3)
    assert _green(picture[50, 300]) and not _green(picture[200, 300])
    assert _blue(picture[100, 140]) and _blue(picture[100, 340]) and not _blue(picture[140, 140])


@pytest.mark.parametrize(("shape", "expected"), [((75, 60), (512, 410)), ((3000, 1500), (1024, 512))])
def test_small_thumbnails_are_enlarged_and_large_ones_shrunk(shape, expected):
    thumbnail = np.full((*shape, 3), 240, np.uint8)
    mask = np.zeros(shape, bool)
    mask[10:-10, 10:-10] = True
    coords = np.array([[40, 40]])  # level-0, downsample 2: one square from (20, 20), 16 px wide
    picture = _picture(qc_image(thumbnail, mask, coords=coords, extent_l0=32, downsample=2.0, mpp=1.0,
                                slide_id="s1", quality=95))
    assert picture.shape[:2] == (expected[0] + BAND, expected[1])
    scale = expected[0] / shape[0]
    corner = round(20 * scale)
    column = corner + round(8 * scale)
    assert any(_blue(picture[row, column]) for row in (corner - 1, corner, corner + 1)), "the tile, scaled"


def test_the_band_holds_a_scale_bar_of_a_round_length_in_microns():
    """600 thumbnail px at 2 µm/px = 1200 µm wide: a 200 µm bar (the longest round length within a
    fifth), 100 px long, drawn in black on the band under the picture."""
    thumbnail = np.full((400, 600, 3), 240, np.uint8)
    picture = _picture(qc_image(thumbnail, np.zeros((400, 600), bool), coords=np.zeros((0, 2)), extent_l0=32,
                                downsample=4.0, mpp=2.0, slide_id="s1", quality=95))
    assert scale_bar_um(1200) == 200
    dark = (picture[400:, :, :] < 80).all(axis=-1)
    bar_row = dark[:, :120].sum(axis=1).argmax()
    assert dark[bar_row, 6:107].all() and not dark[bar_row, 108:111].any(), "the bar is 100 px long"
