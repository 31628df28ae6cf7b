"""Tissue masks from thumbnails: stained tissue is saturated, glass and background are grey or white."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from raypath.slides.config import TissueConfig
from raypath.units import MicronsPerPixel, Pixels, area_to_pixels, microns_to_pixels


def saturation(image: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1]; scanner brightness shifts move value, not saturation."""
    rgb = image[..., :3].astype(np.float32)
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)


def otsu_threshold(values: np.ndarray, *, bins: int = 256) -> float:
    """Threshold maximising between-class variance of values in [0, 1] (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    if hist.sum() == 0:
        return 1.0
    centers = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(hist)
    weight_high = weight_low[-1] - weight_low
    mass_low = np.cumsum(hist * centers)
    mean_low = mass_low / np.maximum(weight_low, 1)
    mean_high = (mass_low[-1] - mass_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def disk(radius: int) -> np.ndarray:
    """Boolean disk structuring element: isotropic closing, unlike a square that favours diagonals."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return xx**2 + yy**2 <= radius**2


def close_holes_and_gaps(mask: np.ndarray, *, radius_px: Pixels) -> np.ndarray:
    """Closing bridges gaps between tissue fragments; padding keeps it from eroding at the border."""
    if radius_px >= 1:
        padded = np.pad(mask, radius_px)
        closed = ndimage.binary_closing(padded, structure=disk(radius_px))
        mask = closed[radius_px:-radius_px, radius_px:-radius_px]
    return ndimage.binary_fill_holes(mask)


def remove_small_regions(mask: np.ndarray, *, min_area_px: float) -> np.ndarray:
    """Drop islands (dust, debris, pen dots) below `min_area_px`, 8-connected."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return mask
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    keep = areas >= min_area_px
    keep[0] = False
    return keep[labels]


def detect_tissue(image: np.ndarray, *, mpp: MicronsPerPixel, config: TissueConfig) -> np.ndarray:
    """Boolean tissue mask of an RGB thumbnail taken at `mpp` microns per pixel.

    Otsu on saturation adapts to stain intensity per slide; `min_saturation` keeps a blank slide
    (where Otsu splits glass noise in two) from turning into tissue; a 3x3 median first removes
    single-pixel colour noise that closing would otherwise grow into blobs. Morphology sizes are in microns
    so the same config works at any thumbnail resolution.
    """
    sat = ndimage.median_filter(saturation(image), size=3)  # speckle from noise/JPEG on glass
    threshold = max(otsu_threshold(sat.ravel()), config.min_saturation)
    mask = sat > threshold
    mask = close_holes_and_gaps(mask, radius_px=microns_to_pixels(config.closing_um, mpp=mpp))
    return remove_small_regions(mask, min_area_px=math.ceil(area_to_pixels(config.min_region_um2, mpp=mpp)))
