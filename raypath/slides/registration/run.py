"""The registration stage: manifest in, registration.parquet out (used by the CLI and the demo)."""

import logging
from collections.abc import Callable

import pandas as pd

from raypath.cohort import load_manifest
from raypath.slides.reader import SlideError, open_slide
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.registration.estimate import ScanImage
from raypath.slides.registration.store import RegistrationError, register_manifest, write_registration

log = logging.getLogger(__name__)


def thumbnail_loader(config: RegisterConfig) -> Callable[[pd.Series], ScanImage]:
    """Read one manifest row's thumbnail at the configured resolution, honouring mpp overrides."""

    def load(row: pd.Series) -> ScanImage:
        override = None if pd.isna(row["mpp"]) else float(row["mpp"])
        try:
            with open_slide(row["path"], reader=config.reader, mpp_override=override) as slide:
                thumb = slide.thumbnail(mpp=config.thumbnail_mpp)
                return ScanImage(image=thumb.image, image_mpp=slide.mpp * thumb.downsample,
                                 level0_mpp=slide.mpp)
        except SlideError as exc:  # a manifest row that is not a usable slide: bad input, named
            raise RegistrationError(f"{config.manifest}: slide {row['slide_id']!r}: {exc}") from exc

    return load


def run_registration(config: RegisterConfig) -> pd.DataFrame:
    """Register every slide of the manifest and write the table atomically; returns the table."""
    if config.manifest is None or config.out is None:
        raise ValueError("register needs `manifest` and `out` (config keys or --manifest/--out)")
    manifest = load_manifest(config.manifest)
    table = register_manifest(manifest, thumbnail_loader(config), reference_scanner=config.reference_scanner,
                              max_rotation_deg=config.max_rotation_deg)
    write_registration(table, config.out)
    for row in table[table["score"] < config.weak_score].itertuples():
        log.warning("weak registration of %s onto %s (score %.2f)", row.slide_id, row.reference_slide_id,
                    row.score)
    log.info("registered %d slides of %d specimens -> %s", len(table), table["specimen_id"].nunique(),
             config.out)
    return table
