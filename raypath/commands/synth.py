"""`raypath synth --out DIR`: write a synthetic multi-scanner cohort of pyramidal SVS slides."""

import argparse
import logging

from raypath.commands.flags import Flag, add_config_flags, config_from_args
from raypath.config import absolute
from raypath.slides.synth.config import SynthConfig

log = logging.getLogger(__name__)
_INTS = ("seed", "specimens", "classes", "magnification", "jpeg_quality", "workers")
_FLOATS = ("positive_fraction", "test_fraction", "val_fraction", "confounding", "max_rotation_deg",
           "max_shift_um")
FLAGS = (
    *(Flag(name.replace("_", "-"), name, int) for name in _INTS),
    *(Flag(name.replace("_", "-"), name, float) for name in _FLOATS),
    Flag("scanners", "scanners", nargs="+"),
    Flag("field-um", "field_um", float, nargs=2, metavar=("W", "H"),
         help="scanned glass area in microns (e.g. 10000 10000 for 40k px at 0.25 mpp)"),
)


def _scanner_mpp(text: str) -> tuple[str, float]:
    scanner, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected SCANNER=MPP, got {text!r}")
    return scanner, float(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags for the common knobs; everything else via --config / --set."""
    parser.add_argument("--out", type=absolute, required=True, metavar="DIR",
                        help="output directory: slides/, manifest.csv, labels.csv")
    add_config_flags(parser, SynthConfig, FLAGS, example="tumour_contrast=0.5")
    parser.add_argument("--mpp", action="append", default=[], type=_scanner_mpp, metavar="SCANNER=MPP",
                        help="level-0 mpp of one scanner, repeatable")


def run(args: argparse.Namespace) -> int:
    """Write the cohort; the exit code is 0 on success."""
    from raypath.slides.synth import write_cohort

    config = config_from_args(SynthConfig, args, FLAGS,
                              values={f"mpp.{scanner}": mpp for scanner, mpp in args.mpp})
    scans = write_cohort(config, args.out)
    log.info("wrote %d slides; manifest %s", len(scans), args.out / "manifest.csv")
    return 0
