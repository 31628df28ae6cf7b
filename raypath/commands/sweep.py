"""`raypath sweep`: one Ray Tune + Optuna + ASHA experiment per FM, tracked in MLflow; resumable."""

import argparse
import json
import logging
import sys

from raypath.commands import add_config_arguments, config_from_args
from raypath.config import ConfigError
from raypath.config.sweep import SweepConfig

HELP = "Ray Tune + Optuna sweep over robustness-loss weights, tracked in MLflow"
log = logging.getLogger(__name__)
# flag name -> config key; flags override the YAML, `--set` reaches everything else.
FLAGS = {
    "sweep_id": "sweep_id",
    "fms": "features.fms",
    "num_samples": "num_samples",
    "pack_size": "pack_size",
    "output_dir": "output_dir",
    "tracking_uri": "tracking.uri",
    "ray_address": "ray_address",
    "resume": "resume",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default="jobs/configs/sweep.yaml")
    parser.add_argument(
        "--sweep-id", help="names the Tune experiments and MLflow experiments; reuse to resume"
    )
    parser.add_argument(
        "--fms",
        type=lambda text: [f for f in text.split(",") if f],
        help="comma-separated FMs (feature-store encoder names)",
    )
    parser.add_argument("--num-samples", type=int, help="trained configurations per FM, baseline included")
    parser.add_argument("--pack-size", type=int, help="configurations trained together per Tune trial")
    parser.add_argument("--output-dir", help="Tune storage + embedded MLflow database")
    parser.add_argument(
        "--tracking-uri", help="MLflow URI (http://host:5000); default: SQLite in --output-dir"
    )
    parser.add_argument("--ray-address", help="Ray cluster address; default: local or the job's cluster")
    parser.add_argument("--resume", choices=["auto", "never"], help="restore an interrupted sweep (auto)")


def _overrides(args: argparse.Namespace) -> list[str]:
    return [
        f"{key}={json.dumps(getattr(args, flag))}"
        for flag, key in FLAGS.items()
        if getattr(args, flag) is not None
    ]


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every trial finished, 1 when some failed after their retries, 2 on bad input."""
    from raypath.train.sweep import run_sweep  # imports Ray and torch only once chosen

    try:
        config = config_from_args(SweepConfig, args, _overrides(args))
        outcomes = run_sweep(config)
    except (ConfigError, ValueError, FileNotFoundError, FileExistsError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(
        "| fm | phase | configurations | packs | failed packs | wall s | in trainables s |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    for o in outcomes:
        sys.stdout.write(
            f"| {o.fm} | {o.phase} | {o.trials} | {o.packs} | {o.errored_packs} | {o.wall_s:.1f} | "
            f"{o.trainable_s:.1f} |\n"
        )
    failed = sum(o.errored_packs for o in outcomes)
    if failed:
        log.warning(
            "%d packs failed after %d retries; their runs are FAILED in MLflow and compare ignores them",
            failed,
            config.max_failures,
        )
    return 1 if failed else 0
