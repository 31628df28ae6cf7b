"""The QC picture shows the tissue outline and exactly the tiles that were planned."""

import io

import numpy as np
from PIL import Image

from raypath.slides.qc import mask_contour, qc_image


def test_contour_is_the_mask_boundary():
    mask = np.zeros((7, 7), bool)
    mask[2:5, 2:5] = True
    edge = mask_contour(mask)
    assert edge.sum() == 8 and not edge[3, 3] and edge[2, 2]


def test_picture_draws_the_outline_and_every_tile_square():
    thumbnail = np.full((80, 100, 3), 240, np.uint8)
    mask = np.zeros((80, 100), bool)
    mask[10:70, 10:90] = True
    coords = np.array([[80, 80], [240, 80]])  # level-0; downsample 4 -> thumbnail squares at x=20, 60
    data = qc_image(thumbnail, mask, coords=coords, extent_l0=64, downsample=4.0, quality=95)
    picture = np.asarray(Image.open(io.BytesIO(data)))
    assert picture.shape == (80, 100, 3)
    green = lambda p: int(p[1]) > int(p[0]) + 40 and int(p[1]) > int(p[2]) + 20  # noqa: E731 (JPEG-blurred)
    blue = lambda p: int(p[2]) > int(p[0]) + 40 and int(p[2]) > int(p[1]) + 40  # noqa: E731
    assert green(picture[10, 50]) and not green(picture[40, 50])
    assert blue(picture[20, 28]) and blue(picture[20, 68]) and not blue(picture[40, 50])
