"""Fine registration: the thumbnail estimate corrected on tissue patches read at a few microns per pixel.

A thumbnail estimate is only as good as its working pixel (~15 um on a full-size slide). Here
square patches spread over the reference scan's tissue are read at `mpp` (<= 2 um/px), the moving
scan's patch at the same place is warped through the current estimate into the reference patch's
grid, and phase correlation of the two measures what is left of the misalignment at each patch.
Each measurement is a point correspondence (moving level-0 point <-> reference level-0 point); a
rigid fit with the known pixel-size ratio, trimmed of patches that disagree with the others (no
texture, tissue missing on one scan, a fold), gives the refined transform. The fit is repeated on
the same patches from the refined transform (`passes`), which removes the rotation left inside
each patch. The RMS distance of the kept correspondences from the fit is the residual recorded
per scan.
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

from raypath.slides.config import TissueConfig
from raypath.slides.reader import SlideReader
from raypath.slides.registration.estimate import phase_correlation
from raypath.slides.registration.patches import Patch, read_patch, warp_into, whole_factor
from raypath.slides.registration.regions import choose_regions
from raypath.slides.registration.transform import Transform
from raypath.slides.tissue import detect_tissue

MIN_PATCH_PX = 48
MASK_MPP = 16.0
"""Microns per pixel of the tissue mask the patches are placed on."""


@dataclass(frozen=True)
class RefineSettings:
    """Resolution, size and number of the patches, and when a patch disagrees with the fit."""

    mpp: float = 2.0
    patch_px: int = 256
    regions: int = 16
    min_regions: int = 4
    passes: int = 2
    margin_px: int = 24
    tolerance_px: float = 2.0


@dataclass(frozen=True)
class Refinement:
    """The refined transform, the RMS residual of the kept patches (microns, reference frame), how
    many patches were kept and how many were read. `transform` is None when too few agreed."""

    transform: Transform | None
    residual_um: float
    regions: int
    tried: int


def fit_rigid(moving: np.ndarray, reference: np.ndarray, *, scale: float) -> Transform:
    """Least-squares rotation and translation with reference = scale * R * moving + t (2-D Procrustes)."""
    a = (moving - moving.mean(axis=0)) * scale
    b = reference - reference.mean(axis=0)
    theta = np.arctan2(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]), np.sum(a * b))
    rotation = Transform(rotation_deg=float(np.rad2deg(theta)), scale=scale)
    tx, ty = reference.mean(axis=0) - rotation.apply(moving.mean(axis=0)[None])[0]
    return Transform(rotation_deg=rotation.rotation_deg, tx=float(tx), ty=float(ty), scale=scale)


def trimmed_fit(
    moving: np.ndarray, reference: np.ndarray, *, scale: float, tolerance: float, min_points: int
) -> tuple[Transform, np.ndarray] | None:
    """Rigid fit on the correspondences that agree: refit after dropping points farther than
    max(tolerance, 3 x the median distance) until the kept set is stable. None below `min_points`."""
    keep = np.ones(len(moving), dtype=bool)
    for _ in range(20):
        if keep.sum() < min_points:
            return None
        fitted = fit_rigid(moving[keep], reference[keep], scale=scale)
        distance = np.linalg.norm(fitted.apply(moving) - reference, axis=1)
        agreeing = distance <= max(tolerance, 3.0 * float(np.median(distance[keep])))
        if np.array_equal(agreeing, keep):
            return fitted, keep
        keep = agreeing
    return (fitted, keep) if keep.sum() >= min_points else None


def _windowed(density: np.ndarray) -> np.ndarray:
    """Mean removed, then a Hann window: patch borders cut through tissue and must not correlate."""
    window = np.outer(np.hanning(density.shape[0]), np.hanning(density.shape[1])).astype(np.float32)
    return (density - density.mean()) * window


def correspondences(
    pairs: list[tuple[Patch, Patch]], transform: Transform
) -> tuple[np.ndarray, np.ndarray]:
    """(moving points, reference points): each reference patch centre and the moving level-0 point
    that phase correlation places there, starting from `transform`."""
    moving, reference = [], []
    inverse = transform.inverse()
    for fixed, other in pairs:
        warped = warp_into(other, onto=fixed, transform=transform)
        shift, _ = phase_correlation(_windowed(fixed.density), _windowed(warped))
        centre = fixed.centre
        moving.append(inverse.apply((centre - shift * fixed.step)[None])[0])
        reference.append(centre)
    return np.asarray(moving), np.asarray(reference)


def read_pairs(
    reference: SlideReader, moving: SlideReader, *, centres: np.ndarray, transform: Transform,
    settings: RefineSettings,
) -> list[tuple[Patch, Patch]]:
    """Reference patches at `centres` and, around where `transform` puts each on the moving scan,
    moving patches large enough to cover it at any rotation plus `margin_px` on every side."""
    theta = np.deg2rad(transform.rotation_deg)
    cover = settings.patch_px * (abs(np.cos(theta)) + abs(np.sin(theta))) + 2 * settings.margin_px
    reference_um, moving_um = (whole_factor(r, settings.mpp) * r.mpp for r in (reference, moving))
    side = int(np.ceil(cover * reference_um / moving_um))
    inverse = transform.inverse()
    return [(read_patch(reference, centre=centre, side=settings.patch_px, mpp=settings.mpp),
             read_patch(moving, centre=inverse.apply(centre[None])[0], side=side, mpp=settings.mpp))
            for centre in centres]


def refine_transform(
    reference: SlideReader, moving: SlideReader, *, coarse: Transform, thumbnail: np.ndarray,
    thumbnail_mpp: float, settings: RefineSettings,
) -> Refinement:
    """Correct `coarse` (moving -> reference, level-0) on tissue patches; see the module doc.
    `thumbnail` is the reference's RGB thumbnail at `thumbnail_mpp`, where the tissue is found."""
    settings, centres = _regions(reference, moving, coarse=coarse, thumbnail=thumbnail,
                                 thumbnail_mpp=thumbnail_mpp, settings=settings)
    if len(centres) < settings.min_regions:
        return Refinement(transform=None, residual_um=float("nan"), regions=0, tried=len(centres))
    pairs = read_pairs(reference, moving, centres=centres, transform=coarse, settings=settings)
    tolerance = settings.tolerance_px * settings.mpp / reference.mpp
    current, kept = coarse, None
    for _ in range(settings.passes):
        points = correspondences(pairs, current)
        fit = trimmed_fit(*points, scale=coarse.scale, tolerance=tolerance, min_points=settings.min_regions)
        if fit is None:
            return Refinement(transform=None, residual_um=float("nan"), regions=0, tried=len(centres))
        current, kept = fit
    distance = np.linalg.norm(current.apply(points[0][kept]) - points[1][kept], axis=1)
    residual_um = float(np.sqrt(np.mean(distance**2)) * reference.mpp)
    return Refinement(transform=current, residual_um=residual_um, regions=int(kept.sum()), tried=len(centres))


def _regions(
    reference: SlideReader, moving: SlideReader, *, coarse: Transform, thumbnail: np.ndarray,
    thumbnail_mpp: float, settings: RefineSettings,
) -> tuple[RefineSettings, np.ndarray]:
    """Patch centres on the reference's tissue, halving the patch side (down to MIN_PATCH_PX) while
    the tissue holds fewer than `min_regions` patches (small biopsies, small test slides)."""
    factor = max(1, int(MASK_MPP / thumbnail_mpp))  # patches span hundreds of microns: a coarse mask does
    small = np.asarray(Image.fromarray(thumbnail).reduce(factor)) if factor > 1 else thumbnail
    mask = detect_tissue(small, mpp=thumbnail_mpp * factor, config=TissueConfig())
    while True:
        centres = choose_regions(mask, downsample=thumbnail_mpp * factor / reference.mpp,
                                 extent_l0=settings.patch_px * settings.mpp / reference.mpp,
                                 count=settings.regions, inside=_inside(moving, coarse))
        if len(centres) >= settings.min_regions or settings.patch_px // 2 < MIN_PATCH_PX:
            return settings, centres
        settings = dataclasses.replace(settings, patch_px=settings.patch_px // 2)


def _inside(moving: SlideReader, coarse: Transform):
    """Whether a reference level-0 point maps inside the moving scan (where a patch can be read)."""
    inverse = coarse.inverse()
    width, height = moving.dimensions

    def check(points: np.ndarray) -> np.ndarray:
        mapped = inverse.apply(points)
        return (mapped[:, 0] >= 0) & (mapped[:, 1] >= 0) & (mapped[:, 0] < width) & (mapped[:, 1] < height)

    return check
