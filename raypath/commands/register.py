"""`raypath register --manifest M --out registration.parquet`: align each specimen's scans."""

import argparse
import logging
from pathlib import Path

import pandas as pd

HELP = "register the scans of each specimen to a reference scan (registration.parquet)"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, output and the few registration knobs."""
    parser.add_argument("--manifest", type=Path, required=True, help="cohort manifest (CSV or Parquet)")
    parser.add_argument("--out", type=Path, required=True, help="registration.parquet to write")
    parser.add_argument("--reference-scanner", default=None, help="scanner whose scans are the references")
    parser.add_argument("--thumbnail-mpp", type=float, default=4.0, help="microns per thumbnail pixel")
    parser.add_argument("--max-rotation-deg", type=float, default=15.0, help="rotation search range (+-)")
    parser.add_argument("--reader", choices=["auto", "cucim", "openslide"], default="auto")


def _loader(args: argparse.Namespace):
    from raypath.slides.reader import open_slide
    from raypath.slides.registration import ScanImage

    def load(row: pd.Series) -> ScanImage:
        override = None if pd.isna(row["mpp"]) else float(row["mpp"])
        with open_slide(row["path"], reader=args.reader, mpp_override=override) as slide:
            thumb = slide.thumbnail(mpp=args.thumbnail_mpp)
            return ScanImage(image=thumb.image, image_mpp=slide.mpp * thumb.downsample, level0_mpp=slide.mpp)

    return load


def run(args: argparse.Namespace) -> int:
    """Register every slide of the manifest and write the table atomically."""
    from raypath.cohort import load_manifest
    from raypath.slides.registration import register_manifest, write_registration

    manifest = load_manifest(args.manifest)
    table = register_manifest(
        manifest,
        _loader(args),
        reference_scanner=args.reference_scanner,
        max_rotation_deg=args.max_rotation_deg,
    )
    write_registration(table, args.out)
    weak = table[table["score"] < 0.5]
    for row in weak.itertuples():
        log.warning(
            "weak registration of %s onto %s (score %.2f)", row.slide_id, row.reference_slide_id, row.score
        )
    log.info(
        "registered %d slides of %d specimens -> %s", len(table), table["specimen_id"].nunique(), args.out
    )
    return 0
