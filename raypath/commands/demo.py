"""`raypath demo`: the whole pipeline on a synthetic multi-scanner cohort on this machine."""

import argparse
import logging

from raypath.commands.flags import Flag, add_config_flags, config_from_args
from raypath.demo.config import DemoConfig

log = logging.getLogger(__name__)
FLAGS = (Flag("out", "out", metavar="DIR", help="output directory (default: demo/)"),)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config jobs/configs/demo.yaml`, `--out DIR`, and `--set stage.key=value` overrides."""
    add_config_flags(parser, DemoConfig, FLAGS, example="sweep.train.epochs=5")


def run(args: argparse.Namespace) -> int:
    """Validate every stage's config before any work, then run the stages in order; a sweep stopped
    early (e.g. SIGINT) ends the demo with the sweep's exit status, and rerunning continues it."""
    from raypath.demo.pipeline import plan_demo, run_demo
    from raypath.sweep.phases import SweepStoppedError

    config = config_from_args(DemoConfig, args, FLAGS)
    try:
        return run_demo(plan_demo(config, source=str(args.config or "<defaults>")))
    except SweepStoppedError as exc:
        log.error("%s", exc)
        return exc.exit_code
