"""`raypath register --manifest M --out registration.parquet`: align each specimen's scans."""

import argparse
from pathlib import Path

from raypath.commands import add_config_arguments, config_from_args
from raypath.config.register import RegisterConfig

HELP = "register the scans of each specimen to a reference scan (registration.parquet)"
_FLAGS = {"manifest": Path, "out": Path, "reference_scanner": str, "thumbnail_mpp": float,
          "max_rotation_deg": float, "reader": str}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Inputs, output and the few registration knobs; each flag overrides the config field."""
    add_config_arguments(parser)
    for field, kind in _FLAGS.items():
        parser.add_argument(f"--{field.replace('_', '-')}", dest=field, type=kind, default=None,
                            help=RegisterConfig.model_fields[field].description)


def run(args: argparse.Namespace) -> int:
    """Register every slide of the manifest and write the table atomically."""
    from raypath.slides.registration.run import run_registration

    flags = [f"{field}={getattr(args, field)}" for field in _FLAGS if getattr(args, field) is not None]
    run_registration(config_from_args(RegisterConfig, args, extra=flags))
    return 0
