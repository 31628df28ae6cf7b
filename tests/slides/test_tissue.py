"""Tissue detection: finds real H&E and synthetic tissue, ignores glass, dust and scanner noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from raypath.slides.config import TissueConfig
from raypath.slides.reader import open_slide
from raypath.slides.tissue import detect_tissue, otsu_threshold, saturation

GLASS = (242, 240, 244)
STAIN = (200, 120, 175)


def _canvas(height: int = 120, width: int = 160) -> np.ndarray:
    rng = np.random.default_rng(1)
    image = np.full((height, width, 3), GLASS, dtype=np.float32) + rng.normal(0, 3, (height, width, 3))
    return image


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def test_saturation_and_otsu() -> None:
    pixels = np.array([[[255, 255, 255], [200, 100, 100], [0, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(saturation(pixels), [[0.0, 0.5, 0.0]])
    values = np.concatenate([np.full(500, 0.05), np.full(300, 0.45)])
    assert 0.05 < otsu_threshold(values) <= 0.45


def test_finds_tissue_on_the_real_cmu_crop(cmu_svs: Path) -> None:
    with open_slide(cmu_svs) as slide:
        thumb = slide.thumbnail(mpp=8.0)
    mask = detect_tissue(thumb.image, mpp=thumb.mpp, config=TissueConfig())
    assert 0.2 < mask.mean() < 0.7
    assert not mask[:20, :20].any()  # top-left corner of the crop is glass
    assert mask[150:180, 60:90].all()  # the lower centre is dense tissue
    assert ndimage.label(mask)[1] <= 3


def test_synthetic_slide_mask_matches_painted_tissue(tiny_svs: Path) -> None:
    with open_slide(tiny_svs) as slide:
        thumb = slide.thumbnail(mpp=4.0)
    mask = detect_tissue(thumb.image, mpp=thumb.mpp, config=TissueConfig(min_region_um2=2000))
    truth = saturation(thumb.image) > 0.2
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9


def test_blank_glass_has_no_tissue() -> None:
    mask = detect_tissue(_finish(_canvas()), mpp=8.0, config=TissueConfig())
    assert not mask.any()


def test_small_islands_dropped_and_holes_filled() -> None:
    image = _canvas()
    image[20:100, 20:80] = STAIN
    image[50:60, 40:50] = GLASS  # a hole inside tissue
    image[10:13, 120:123] = STAIN  # 9 px of dust: 576 µm² at 8 mpp
    mask = detect_tissue(_finish(image), mpp=8.0, config=TissueConfig(min_region_um2=20000, closing_um=0))
    assert mask[50:60, 40:50].all()
    assert not mask[:, 85:].any()
    assert 80 * 60 - 4 <= mask.sum() <= 80 * 60  # the median may round off the four corners


@pytest.mark.parametrize(("closing_um", "regions"), [(0.0, 2), (32.0, 1)])
def test_closing_radius_is_in_microns(closing_um: float, regions: int) -> None:
    image = _canvas()
    image[20:100, 20:70] = STAIN
    image[20:100, 74:120] = STAIN  # 4 px = 32 µm gap at 8 mpp
    config = TissueConfig(closing_um=closing_um, min_region_um2=0)
    mask = detect_tissue(_finish(image), mpp=8.0, config=config)
    assert ndimage.label(mask)[1] == regions
