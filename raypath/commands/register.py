"""`raypath register --manifest M --out registration.parquet`: align each specimen's scans (a Ray job)."""

import argparse
from pathlib import Path

from raypath.commands.flags import Flag, add_config_flags, config_from_args
from raypath.slides.registration.config import RegisterConfig

EXIT_RECORDS_LOST = 1
FLAGS = (
    Flag("manifest", "manifest", Path),
    Flag("out", "out", Path),
    Flag("reference-scanner", "reference_scanner"),
    Flag("thumbnail-mpp", "thumbnail_mpp", float),
    Flag("max-rotation-deg", "max_rotation_deg", float),
    Flag("reader", "reader", choices=("auto", "jpeg", "cucim", "openslide")),
    Flag("address", "ray_address"),
    Flag("run-id", "run_id"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, output and the few registration knobs; each flag overrides the config field."""
    add_config_flags(parser, RegisterConfig, FLAGS, example="thumbnail_mpp=8")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every specimen is registered, 1 when some could not be (failures.csv names them;
    the rest is in the table) or the run records could not be written, 2 on bad input."""
    from raypath.extract.failures import RecordsError
    from raypath.register.run import run_registration  # imports Ray; only when this command runs

    try:
        return run_registration(config_from_args(RegisterConfig, args, FLAGS)).exit_code
    except RecordsError:
        return EXIT_RECORDS_LOST
