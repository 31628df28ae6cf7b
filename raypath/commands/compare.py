"""`raypath compare`: baseline vs best robust models per FM, read back from MLflow."""

import argparse
import logging
import sys

from raypath.commands.flags import Flag, add_config_flags, config_from_args, encoders_flag
from raypath.compare.config import CompareConfig

log = logging.getLogger(__name__)
FLAGS = (
    Flag("sweep-id", "sweep_id", help="the sweep to compare"),
    encoders_flag("fms", aliases=("fms",),
                  help="FMs to compare (repeatable or comma-separated); default: every FM the sweep "
                       "recorded"),
    Flag("sweep-dir", "output_dir", metavar="DIR", aliases=("output-dir",)),
    Flag("out", "out", metavar="DIR"),
    Flag("tracking-uri", "tracking.uri"),
    Flag("manifest", "heatmaps.manifest"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, CompareConfig, FLAGS, example="top_k=2",
                     default_config="jobs/configs/compare.yaml")


def run(args: argparse.Namespace) -> int:
    """Print each FM's table; exit 2 when the config or the sweep's runs are unusable."""
    from raypath.compare.report import to_markdown
    from raypath.compare.run import compare_sweep

    config = config_from_args(CompareConfig, args, FLAGS)
    results = compare_sweep(config)
    for result in results:
        sys.stdout.write(f"\n## {result.fm}\n\n{to_markdown(result.wide)}\n")
    log.info("report: %s", config.report_dir() / "report.html")
    return 0
