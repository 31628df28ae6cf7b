"""`raypath extract`: tile a cohort and write foundation-model features to the feature store."""

import argparse
import logging

from raypath.commands import add_config_arguments, config_from_args
from raypath.config import ConfigError
from raypath.config.extract import ExtractConfig

HELP = "tile slides and write FM features to the feature store (Ray Data)"
EXIT_BAD_INPUT = 2

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--manifest", help="manifest.csv (overrides the config's `manifest`)")
    parser.add_argument("--out", help="feature-store root, local or s3:// (overrides `output`)")
    parser.add_argument("--encoder", action="append", default=[], metavar="NAME",
                        help="encoder to run (repeatable; replaces the config's `encoders`)")
    parser.add_argument("--address", help="Ray cluster address (overrides `ray_address`)")
    parser.add_argument("--run-id", help="name of this run's record dir under <out>/_runs/")


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """CLI flags as `key=value` overrides, applied after --set so explicit flags win."""
    flags = {"manifest": args.manifest, "output": args.out, "ray_address": args.address,
             "run_id": args.run_id}
    overrides = [f"{key}={value}" for key, value in flags.items() if value]
    if args.encoder:
        overrides.append(f"encoders=[{', '.join(args.encoder)}]")
    return overrides


def run(args: argparse.Namespace) -> int:
    from raypath.extract.run import run_extraction  # imports Ray; only when this command runs

    try:
        config = config_from_args(ExtractConfig, args, _flag_overrides(args))
        summary = run_extraction(config)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return EXIT_BAD_INPUT
    return summary.exit_code
