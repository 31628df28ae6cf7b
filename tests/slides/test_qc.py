"""The QC picture shows the tissue outline and exactly the tiles that were planned."""

import io

import numpy as np
import pytest
from PIL import Image

from raypath.slides.qc import mask_contour, qc_image


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
    picture = _picture(qc_image(thumbnail, mask, coords=coords, extent_l0=320, downsample=4.0, quality=95))
    assert picture.shape == (400, 600, 3)
    assert _green(picture[50, 300]) and not _green(picture[200, 300])
    assert _blue(picture[100, 140]) and _blue(picture[100, 340]) and not _blue(picture[140, 140])


@pytest.mark.parametrize(("shape", "expected"), [((75, 60), (512, 410)), ((3000, 1500), (1024, 512))])
def test_small_thumbnails_are_enlarged_and_large_ones_shrunk(shape, expected):
    thumbnail = np.full((*shape, 3), 240, np.uint8)
    mask = np.zeros(shape, bool)
    mask[10:-10, 10:-10] = True
    coords = np.array([[40, 40]])  # level-0, downsample 2: one square from (20, 20), 16 px wide
    picture = _picture(qc_image(thumbnail, mask, coords=coords, extent_l0=32, downsample=2.0, quality=95))
    assert picture.shape[:2] == expected
    scale = expected[0] / shape[0]
    corner = round(20 * scale)
    column = corner + round(8 * scale)
    assert any(_blue(picture[row, column]) for row in (corner - 1, corner, corner + 1)), "the tile, scaled"
