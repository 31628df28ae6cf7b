"""`raypath sweep`: one Ray Tune + Optuna + ASHA experiment per FM, tracked in MLflow; resumable."""

import argparse
import errno
import logging
import sys

from raypath.commands.flags import Flag, add_config_flags, config_from_args, encoders_flag
from raypath.sweep.config import SweepConfig

log = logging.getLogger(__name__)
FLAGS = (
    Flag("sweep-id", "sweep_id", help="names the Tune and MLflow experiments; reuse it to resume"),
    encoders_flag("features.fms", aliases=("fms",),
                  help="FMs to sweep (feature-store encoder names; repeatable or comma-separated)"),
    Flag("num-samples", "num_samples", int),
    Flag("pack-size", "pack_size", int),
    Flag("out", "output_dir", metavar="DIR", aliases=("output-dir",)),
    Flag("tracking-uri", "tracking.uri"),
    Flag("address", "ray_address", aliases=("ray-address",)),
    Flag("resume", "resume", choices=("auto", "never")),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, SweepConfig, FLAGS, example="train.epochs=5",
                     default_config="jobs/configs/sweep.yaml")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every trial finished, 1 when some failed after their retries (or none reported),
    2 on bad input (untrusted or mismatched state included), 128 + N when signal N stopped a phase
    (130 for SIGINT): the same command then continues it."""
    from raypath.errors import is_disk_full
    from raypath.sweep.driver import run_sweep  # imports Ray and torch only once chosen
    from raypath.sweep.phases import SweepStoppedError
    from raypath.tracking.store import ready_store

    config = config_from_args(SweepConfig, args, FLAGS)
    ready_store(config.tracking_uri())  # made or upgraded whole before Ray starts (a full disk: seconds)
    try:
        outcomes = run_sweep(config)
    except SweepStoppedError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        raise OSError(errno.ENOSPC, "no space left on device during the sweep (MLflow store or Tune state); "
                      "finished trials are kept: free space and run the same command again to continue",
                      str(config.output_dir)) from None
    sys.stdout.write("| fm | phase | configurations | packs | failed packs | wall s | in trainables s |\n"
                     "|---|---|---|---|---|---|---|\n")
    for o in outcomes:
        sys.stdout.write(f"| {o.fm} | {o.phase} | {o.trials} | {o.packs} | {o.errored_packs} | "
                         f"{o.wall_s:.1f} | {o.trainable_s:.1f} |\n")
    failed = sum(o.errored_packs for o in outcomes)
    if failed:
        log.warning("%d packs failed after %d retries; their runs are FAILED in MLflow and compare "
                    "ignores them", failed, config.max_failures)
    return 1 if failed else 0
