"""`raypath simulate --out DIR`: a feature-level multi-scanner cohort in the feature-store schema."""

import argparse
import logging
import time

from raypath.commands.flags import Flag, add_config_flags, config_from_args
from raypath.config import absolute
from raypath.simulate.config import SimulateConfig

log = logging.getLogger(__name__)
FLAGS = (
    Flag("specimens", "n_specimens", int),
    Flag("tiles", "tiles", int),
    Flag("dim", "dim", int),
    Flag("confounding", "confounding", float),
    Flag("seed", "seed", int),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=absolute, required=True, metavar="DIR",
                        help="output directory (a feature store under <out>/features)")
    add_config_flags(parser, SimulateConfig, FLAGS, example="tiles=32")


def run(args: argparse.Namespace) -> int:
    """Stream the simulated scans into a feature store under --out (memory does not grow with it)."""
    from raypath.simulate.store import write_feature_cohort

    config = config_from_args(SimulateConfig, args, FLAGS)
    started = time.perf_counter()
    store = write_feature_cohort(config, out=args.out)
    log.info("simulated cohort in %.1f s: features under %s (encoder %s)", time.perf_counter() - started,
             store.directory, config.encoder)
    return 0
