"""`raypath register --manifest M --out registration.parquet`: align each specimen's scans."""

import argparse
from pathlib import Path

from raypath.commands.flags import Flag, add_config_flags, config_from_args
from raypath.slides.registration.config import RegisterConfig

FLAGS = (
    Flag("manifest", "manifest", Path),
    Flag("out", "out", Path),
    Flag("reference-scanner", "reference_scanner"),
    Flag("thumbnail-mpp", "thumbnail_mpp", float),
    Flag("max-rotation-deg", "max_rotation_deg", float),
    Flag("reader", "reader", choices=("auto", "cucim", "openslide")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, output and the few registration knobs; each flag overrides the config field."""
    add_config_flags(parser, RegisterConfig, FLAGS)


def run(args: argparse.Namespace) -> int:
    """Register every slide of the manifest and write the table atomically."""
    from raypath.slides.registration.run import run_registration

    run_registration(config_from_args(RegisterConfig, args, FLAGS))
    return 0
