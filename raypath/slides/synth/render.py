"""Render one block of one scan: tissue seen through a scanner's geometry, optics, stain and sensor.

Geometry: the specimen's tissue (microns, tissue frame) lies on the glass rotated by
`rotation_deg` about the field centre c and shifted by `shift_um`; a glass point g is level-0
pixel g / mpp. A level-0 pixel p therefore shows tissue point t = R(-θ)(p·mpp - c - d) + c.
The tissue is rendered axis-aligned at the scan's own mpp, blurred there (blur is isotropic, so
it commutes with the rotation), then resampled bilinearly at the rotated pixel centres.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from raypath.slides.synth.scanners import ScannerProfile
from raypath.slides.synth.stain import HED_FROM_RGB, RGB_FROM_HED, TISSUE_STAINS
from raypath.slides.synth.tissue import SpecimenTissue, render_stains


@dataclass(frozen=True)
class ScanGeometry:
    """Where the tissue sits on one scan's glass and how finely it is sampled."""

    mpp: float
    field_um: tuple[float, float]
    rotation_deg: float
    shift_um: tuple[float, float]

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels: the same physical field at this scan's mpp."""
        return round(self.field_um[0] / self.mpp), round(self.field_um[1] / self.mpp)

    def pixel_to_tissue(self, px: np.ndarray, py: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tissue-frame microns of level-0 pixel coordinates (continuous; centres at +0.5)."""
        cx, cy = self.field_um[0] / 2, self.field_um[1] / 2
        gx = px * self.mpp - cx - self.shift_um[0]
        gy = py * self.mpp - cy - self.shift_um[1]
        cos, sin = np.cos(np.deg2rad(self.rotation_deg)), np.sin(np.deg2rad(self.rotation_deg))
        return cos * gx + sin * gy + cx, -sin * gx + cos * gy + cy


def _canonical_grid(geometry: ScanGeometry, tx: np.ndarray, ty: np.ndarray, margin: int):
    """Axis-aligned tissue grid at the scan's mpp covering the tissue points (+ margin pixels)."""
    m = geometry.mpp
    kx0 = int(np.floor(tx.min() / m - 0.5)) - margin
    ky0 = int(np.floor(ty.min() / m - 0.5)) - margin
    kx1 = int(np.ceil(tx.max() / m - 0.5)) + margin
    ky1 = int(np.ceil(ty.max() / m - 0.5)) + margin
    return kx0, ky0, (np.arange(kx0, kx1 + 1) + 0.5) * m, (np.arange(ky0, ky1 + 1) + 0.5) * m


def _sample_stains(
    tissue: SpecimenTissue, profile: ScannerProfile, geometry: ScanGeometry, px: np.ndarray, py: np.ndarray
) -> np.ndarray:
    """H and E concentrations (len(py), len(px), 2) at level-0 pixel centres, after the optics."""
    tx, ty = geometry.pixel_to_tissue(px[None, :], py[:, None])
    sigma = profile.blur_um / geometry.mpp
    kx0, ky0, xs, ys = _canonical_grid(geometry, tx, ty, margin=int(np.ceil(3 * sigma)) + 2)
    grid = render_stains(tissue, xs, ys)
    if not grid.any():  # glass: blurring and resampling zeros gives zeros, so skip both
        return np.zeros((*tx.shape, 2), dtype=np.float32)
    coords = np.stack([ty / geometry.mpp - 0.5 - ky0, tx / geometry.mpp - 0.5 - kx0])
    out = np.empty((*tx.shape, 2), dtype=np.float32)
    for channel in range(2):
        plane = ndimage.gaussian_filter(grid[..., channel], sigma) if sigma > 0 else grid[..., channel]
        out[..., channel] = ndimage.map_coordinates(plane, coords, order=1, mode="nearest")
    return out


def scanner_od_matrix(profile: ScannerProfile) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) with scanned OD = tissue stains @ A + b, before the tone curve.

    The HED shift is linear in optical density, so drawing with the tissue stains, deconvolving
    with Ruifrok's matrix (`rgb_to_hed`), scaling/biasing and re-convolving (`hed_to_rgb`)
    collapses into one affine map; `tests/slides/test_synth.py` checks it against the explicit
    chain away from the clipping limits.
    """
    scale = np.diag(profile.stain_scale)
    a = TISSUE_STAINS[:2] @ HED_FROM_RGB @ scale @ RGB_FROM_HED
    b = np.asarray(profile.stain_bias) @ RGB_FROM_HED
    return a.astype(np.float32), b.astype(np.float32)


def apply_scanner(stains: np.ndarray, profile: ScannerProfile, rng: np.random.Generator) -> np.ndarray:
    """H/E concentrations -> uint8 RGB through the scanner's HED shift, tone curve and sensor noise."""
    a, b = scanner_od_matrix(profile)
    optical_density = np.maximum(stains @ a + b, 0.0)
    rgb = (255.0 * profile.brightness) * np.power(np.float32(10.0), -profile.gamma * optical_density)
    if profile.noise_sigma > 0:
        rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(profile.noise_sigma)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def render_block(
    *,
    tissue: SpecimenTissue,
    profile: ScannerProfile,
    geometry: ScanGeometry,
    x0: int,
    y0: int,
    width: int,
    height: int,
    noise_seed: int,
) -> np.ndarray:
    """uint8 RGB (height, width, 3) of level-0 pixels [x0, x0+width) x [y0, y0+height)."""
    px = x0 + np.arange(width) + 0.5
    py = y0 + np.arange(height) + 0.5
    stains = _sample_stains(tissue, profile, geometry, px, py)
    return apply_scanner(stains, profile, np.random.default_rng([noise_seed, x0, y0]))
