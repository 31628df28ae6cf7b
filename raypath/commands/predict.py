"""`raypath predict`: a trained model (registry, alias, run or directory) applied to new slides."""

import argparse
import logging
from pathlib import Path

from raypath.commands.flags import Flag, add_config_flags, comma_list, config_from_args
from raypath.predict.config import PredictConfig

log = logging.getLogger(__name__)
FLAGS = (
    Flag("model", "model"),
    Flag("manifest", "manifest", Path),
    Flag("out", "out", Path),
    Flag("features", "features"),
    Flag("checkpoint", "checkpoint"),
    Flag("tracking-uri", "tracking_uri"),
    Flag("heatmaps", "heatmaps", comma_list, help="comma-separated slide ids to draw attention heatmaps for"),
    Flag("heatmap-top", "heatmap_top", int),
    Flag("address", "ray_address"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, PredictConfig, FLAGS, example="heatmap_top=3")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every slide was predicted, 1 when some had no features, 2 on bad input."""
    from raypath.predict.run import run_prediction

    summary = run_prediction(config_from_args(PredictConfig, args, FLAGS))
    log.info("%d slides -> %s (and .csv)", summary.slides, summary.predictions)
    return 1 if summary.missing else 0
