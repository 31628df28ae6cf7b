"""Register one specimen: each scan onto the specimen's reference scan, coarse then fine.

The unit of work of `raypath register` (one Ray task per specimen). Coarse: rotation and shift
from thumbnails (`estimate_transform`, working images of at most `max_side` px). Fine: the coarse
transform corrected on tissue patches at `refine.mpp` (`refine_transform`). A scan is flagged weak
when its thumbnails correlate poorly, the fine stage found too few agreeing patches, or its
residual exceeds `refine.weak_residual_um`; weak scans keep their best transform.
"""

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from raypath.slides.reader import SlideError, SlideReader, open_slide
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.registration.estimate import ScanImage, estimate_transform
from raypath.slides.registration.refine import RefineSettings, refine_transform
from raypath.slides.registration.transform import Transform

log = logging.getLogger(__name__)


class SpecimenError(RuntimeError):
    """A scan of the specimen could not be opened or read: the specimen is not registered."""

    def __init__(self, *, slide_id: str, stage: str, reason: str) -> None:
        super().__init__(f"slide {slide_id!r} ({stage}): {reason}")
        self.slide_id, self.stage, self.reason = slide_id, stage, reason


@dataclass(frozen=True)
class Scan:
    """One manifest row of the specimen: where the slide is and its mpp override (NaN = none)."""

    slide_id: str
    path: str
    mpp: float = math.nan


def thumbnail_mpp(reader: SlideReader, config: RegisterConfig) -> float:
    """`thumbnail_mpp`, or half the working pixel when that is coarser: thumbnails are compared at
    most `max_side` px wide (~15 um/px on a full-size slide), and a finer thumbnail only costs reading
    a finer pyramid level (the full 4x level of a 40x scan at 4 um/px)."""
    extent_um = max(reader.dimensions) * reader.mpp
    return max(config.thumbnail_mpp, extent_um / config.max_side / 2.0)


@contextlib.contextmanager
def _opened(scan: Scan, config: RegisterConfig) -> Iterator[tuple[SlideReader, ScanImage]]:
    override = None if math.isnan(scan.mpp) else scan.mpp
    stage = "open"
    try:
        with open_slide(scan.path, reader=config.reader, mpp_override=override) as reader:
            stage = "thumbnail"
            thumb = reader.thumbnail(mpp=thumbnail_mpp(reader, config))
            image = ScanImage(image=thumb.image, image_mpp=thumb.mpp, level0_mpp=reader.mpp)
            stage = "register"
            yield reader, image
    except SlideError as exc:
        raise SpecimenError(slide_id=scan.slide_id, stage=stage, reason=str(exc)) from exc


def _settings(config: RegisterConfig) -> RefineSettings:
    r = config.refine
    return RefineSettings(mpp=r.mpp, patch_px=r.patch_px, regions=r.regions, min_regions=r.min_regions,
                          passes=r.passes)


def register_scan(
    reference: tuple[SlideReader, ScanImage], moving: tuple[SlideReader, ScanImage], config: RegisterConfig
) -> dict[str, Any]:
    """Transform and quality of one moving scan: rotation_deg, tx, ty, scale, score, residual_um,
    regions, weak."""
    finest = 0.5 if config.refine.enabled else 0.1
    transform, score = _coarse(reference[1], moving[1], config, finest_step_deg=finest)
    residual, regions, refined = math.nan, 0, False
    if config.refine.enabled:
        result = refine_transform(reference[0], moving[0], coarse=transform, thumbnail=reference[1].image,
                                  thumbnail_mpp=reference[1].image_mpp, settings=_settings(config))
        if result.transform is not None:
            transform, residual, regions, refined = result.transform, result.residual_um, result.regions, True
        else:  # too little tissue to refine on: the thumbnail's best, its angle searched finely
            transform, score = _coarse(reference[1], moving[1], config, finest_step_deg=0.1)
    weak = score < config.weak_score or (config.refine.enabled and not refined) or \
        residual > config.refine.weak_residual_um
    return {**_transform_columns(transform), "score": score, "residual_um": residual, "regions": regions,
            "weak": bool(weak)}


def _coarse(reference: ScanImage, moving: ScanImage, config: RegisterConfig, *,
            finest_step_deg: float) -> tuple[Transform, float]:
    """The thumbnail estimate; a fine stage that follows corrects the angle, so 0.5 degree steps do."""
    return estimate_transform(reference=reference, moving=moving, max_rotation_deg=config.max_rotation_deg,
                              max_side=config.max_side, finest_step_deg=finest_step_deg)


def _transform_columns(transform: Transform) -> dict[str, float]:
    return {"rotation_deg": transform.rotation_deg, "tx": transform.tx, "ty": transform.ty,
            "scale": transform.scale}


def register_specimen(
    specimen_id: str, *, reference: Scan, moving: list[Scan], config: RegisterConfig
) -> list[dict[str, Any]]:
    """One row per scan (the reference first, with the identity) in registration.parquet's columns.
    Raises SpecimenError naming the scan that could not be opened or read."""
    common: Mapping[str, str] = {"specimen_id": specimen_id, "reference_slide_id": reference.slide_id}
    rows = [{"slide_id": reference.slide_id, **common, **_transform_columns(Transform()), "score": 1.0,
             "residual_um": 0.0, "regions": 0, "weak": False}]
    if not moving:  # a specimen scanned once: nothing to read (extraction checks the slide itself)
        return rows
    with _opened(reference, config) as fixed:
        for scan in moving:
            with _opened(scan, config) as other:
                row = {"slide_id": scan.slide_id, **common, **register_scan(fixed, other, config)}
            log.debug("%s -> %s: %s", scan.slide_id, reference.slide_id, row)
            rows.append(row)
    return rows
