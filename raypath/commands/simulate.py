"""`raypath simulate --out DIR`: a feature-level multi-scanner cohort in the feature-store schema."""

import argparse
import logging
import time
from pathlib import Path

from raypath.commands import add_config_arguments, config_from_args
from raypath.config.simulate import SimulateConfig
from raypath.mil.simulate import simulate_cohort
from raypath.mil.simulate_io import write_cohort

HELP = "write a feature-level simulated cohort in the feature-store schema"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--specimens", type=int, help="number of specimens (= patients)")
    parser.add_argument("--tiles", type=int, help="tiles per bag")
    parser.add_argument("--dim", type=int, help="feature dimension")
    parser.add_argument("--confounding", type=float, help="label-scanner confounding in train/val (0..1)")
    parser.add_argument("--seed", type=int, help="random seed")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    flags = {"n_specimens": args.specimens, "tiles": args.tiles, "dim": args.dim,
             "confounding": args.confounding, "seed": args.seed}
    config = config_from_args(SimulateConfig, args, [f"{k}={v}" for k, v in flags.items() if v is not None])
    started = time.perf_counter()
    store = write_cohort(simulate_cohort(config), config=config, out=args.out)
    log.info("simulated cohort in %.1f s: features under %s (encoder %s)", time.perf_counter() - started,
             store.directory, config.encoder)
    return 0
