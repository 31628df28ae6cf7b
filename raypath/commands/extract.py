"""`raypath extract`: tile a cohort and write foundation-model features to the feature store."""

import argparse

from raypath.commands.flags import Flag, add_config_flags, comma_list, config_from_args
from raypath.extract.config import ExtractConfig

EXIT_RECORDS_LOST = 1
FLAGS = (
    Flag("manifest", "manifest"),
    Flag("out", "output", metavar="DIR", help="feature-store root, local or s3:// (overrides `output`)"),
    Flag("address", "ray_address"),
    Flag("run-id", "run_id"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, ExtractConfig, FLAGS, example="batch_size=64")
    parser.add_argument("--encoder", action="extend", type=comma_list, default=[], metavar="NAME[,NAME]",
                        help="encoders to run (repeatable or comma-separated; replaces the config's "
                             "`encoders`)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every slide is done, 1 when some failed (the rest completes) or the run records
    could not be written (full disk: the summary and one error line are logged), 2 on bad input."""
    from raypath.extract.failures import RecordsError
    from raypath.extract.run import run_extraction  # imports Ray; only when this command runs

    values = {"encoders": [{"name": name} for name in args.encoder]} if args.encoder else {}
    config = config_from_args(ExtractConfig, args, FLAGS, values=values)
    try:
        return run_extraction(config).exit_code
    except RecordsError:  # run_extraction logged the summary and what could not be written
        return EXIT_RECORDS_LOST
