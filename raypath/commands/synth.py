"""`raypath synth --out DIR`: write a synthetic multi-scanner cohort of pyramidal SVS slides."""

import argparse
import logging
from pathlib import Path

from raypath.commands import add_config_arguments, config_from_args
from raypath.config.synth import SynthConfig

HELP = "write a synthetic multi-scanner cohort of pyramidal TIFF slides"
log = logging.getLogger(__name__)

# flag -> SynthConfig field; flags left unset keep the config file's (or default) value.
_FLAGS = {
    "seed": int,
    "specimens": int,
    "positive_fraction": float,
    "classes": int,
    "test_fraction": float,
    "val_fraction": float,
    "confounding": float,
    "magnification": int,
    "max_rotation_deg": float,
    "max_shift_um": float,
    "jpeg_quality": int,
    "workers": int,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for the common knobs; everything else via --config / --set."""
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    add_config_arguments(parser)
    for field, kind in _FLAGS.items():
        parser.add_argument(
            f"--{field.replace('_', '-')}",
            dest=field,
            type=kind,
            default=None,
            help=SynthConfig.model_fields[field].description,
        )
    parser.add_argument("--scanners", nargs="+", default=None, help="scanner profile names")
    parser.add_argument(
        "--field-um",
        dest="field_um",
        type=float,
        nargs=2,
        metavar=("W", "H"),
        default=None,
        help="scanned glass area in microns (e.g. 10000 10000 for 40k px at 0.25 mpp)",
    )
    parser.add_argument(
        "--mpp",
        action="append",
        default=[],
        metavar="SCANNER=MPP",
        help="level-0 mpp of one scanner, repeatable",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = [f"{field}={getattr(args, field)}" for field in _FLAGS if getattr(args, field) is not None]
    if args.scanners is not None:
        overrides.append(f"scanners=[{', '.join(args.scanners)}]")
    if args.field_um is not None:
        overrides.append(f"field_um=[{args.field_um[0]}, {args.field_um[1]}]")
    for item in args.mpp:
        scanner, _, value = item.partition("=")
        overrides.append(f"mpp.{scanner}={value}")
    return overrides


def run(args: argparse.Namespace) -> int:
    """Write the cohort; the exit code is 0 on success."""
    from raypath.slides.synth import write_cohort

    config = config_from_args(SynthConfig, args, extra=_overrides(args))
    scans = write_cohort(config, args.out)
    log.info("wrote %d slides; manifest %s", len(scans), args.out / "manifest.csv")
    return 0
