"""`raypath finetune`: LoRA on the FM + a robust MIL head, trained from tiles on Ray Train workers."""

import argparse
import logging
import sys
from pathlib import Path

from raypath.commands.flags import Flag, add_config_flags, config_from_args, yes_no
from raypath.finetune.config import FinetuneConfig

log = logging.getLogger(__name__)
FLAGS = (
    Flag("manifest", "manifest", Path),
    Flag("labels", "labels", Path),
    Flag("splits", "splits", Path),
    Flag("registration", "registration", Path),
    Flag("out", "output_dir", Path, metavar="DIR", aliases=("output-dir",)),
    Flag("name", "name"),
    Flag("encoder", "encoder"),
    Flag("checkpoint", "checkpoint"),
    Flag("epochs", "epochs", int),
    Flag("workers", "distributed.workers", int),
    Flag("strategy", "distributed.strategy", choices=("ddp", "fsdp")),
    Flag("use-gpu", "distributed.use_gpu", yes_no, metavar="true|false"),
    Flag("tiles", "tiles.source", choices=("slides", "cache")),
    Flag("tracking-uri", "tracking.uri"),
    Flag("address", "ray_address"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, FinetuneConfig, FLAGS, example="lora.rank=8",
                     default_config="jobs/configs/finetune.yaml")
    parser.add_argument("--restart", action="store_true",
                        help="discard an earlier run of the same name instead of resuming it")


def run(args: argparse.Namespace) -> int:
    from raypath.finetune.run import run_finetune  # imports Ray, torch and PEFT only once chosen

    config = config_from_args(FinetuneConfig, args, FLAGS)
    summary = run_finetune(config, resume=not args.restart)
    metrics = summary.evaluation.metrics
    sys.stdout.write(f"model: {summary.model_uri} (run {summary.run_id})\n")
    for row in summary.history:
        val = " ".join(f"{k}={row[k]:.4f}" for k in ("val/loss", "val/auc", "val/c_index") if k in row)
        sys.stdout.write(f"epoch {row['epoch']}: loss {row['train/loss']:.4f}, {val + ', ' if val else ''}"
                         f"{row['train/tiles_per_s']:.0f} tiles/s\n")
    stopped = len(summary.history) < config.epochs
    sys.stdout.write(f"best epoch {summary.best_epoch} of {len(summary.history)}"
                     f"{' (stopped early)' if stopped else ''}\n")
    for split in ("val", "test"):
        shown = {k.split("/", 1)[1]: v for k, v in metrics.items() if k.startswith(f"{split}/")}
        if "n_slides" in shown:
            sys.stdout.write(f"{split} ({int(shown['n_slides'])} slides): " + " ".join(
                f"{k}={shown[k]:.3f}" for k in ("auc", "score_spread", "flip_rate") if k in shown) + "\n")
    for name, reason in sorted(summary.evaluation.undefined.items()):
        sys.stdout.write(f"{name} undefined: {reason}\n")
    return 0
