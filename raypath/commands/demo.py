"""`raypath demo`: the whole pipeline on a synthetic multi-scanner cohort on this machine."""

import argparse
import logging
from pathlib import Path

from raypath.commands import add_config_arguments, config_from_args
from raypath.config import ConfigError
from raypath.config.demo import DemoConfig

HELP = "the whole pipeline on a synthetic cohort on this machine"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config jobs/configs/demo.yaml`, `--out DIR`, and `--set section.key=value` overrides."""
    add_config_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: demo/)")


def run(args: argparse.Namespace) -> int:
    """Validate every stage's config, then run them; exit 2 on a config error."""
    from raypath.demo import plan_demo, run_demo

    try:
        config = config_from_args(DemoConfig, args, [f"out={args.out}"] if args.out else [])
        plan = plan_demo(config, source=str(args.config or "<defaults>"))
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    return run_demo(plan)
