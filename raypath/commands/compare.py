"""`raypath compare`: baseline vs best robust models per FM, read back from MLflow."""

import argparse
import json
import logging
import sys

from raypath.commands import add_config_arguments, config_from_args
from raypath.config import ConfigError
from raypath.config.compare import CompareConfig

HELP = "compare baseline and robust models from MLflow: table, Pareto plot, heatmaps"
log = logging.getLogger(__name__)
FLAGS = {
    "sweep_id": "sweep_id",
    "fms": "fms",
    "output_dir": "output_dir",
    "out": "out",
    "tracking_uri": "tracking.uri",
    "manifest": "heatmaps.manifest",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default="jobs/configs/compare.yaml")
    parser.add_argument("--sweep-id", help="the sweep to compare")
    parser.add_argument("--fms", type=lambda text: [f for f in text.split(",") if f], help="default: all")
    parser.add_argument("--output-dir", help="the sweep's output_dir (where its embedded MLflow lives)")
    parser.add_argument("--out", help="report directory")
    parser.add_argument("--tracking-uri", help="MLflow URI; default: SQLite in --output-dir")
    parser.add_argument("--manifest", help="manifest.csv with slide paths, to draw heatmaps on thumbnails")


def run(args: argparse.Namespace) -> int:
    """Print each FM's table; exit 2 when the config or the sweep's runs are unusable."""
    from raypath.evaluate.compare import compare_sweep
    from raypath.evaluate.report import to_markdown

    try:
        config = config_from_args(
            CompareConfig,
            args,
            [
                f"{key}={json.dumps(getattr(args, flag))}"
                for flag, key in FLAGS.items()
                if getattr(args, flag) is not None
            ],
        )
        results = compare_sweep(config)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    for result in results:
        sys.stdout.write(f"\n## {result.fm}\n\n{to_markdown(result.wide)}\n")
    log.info("report: %s", config.report_dir() / "report.html")
    return 0
