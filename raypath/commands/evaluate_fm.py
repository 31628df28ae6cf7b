"""`raypath evaluate-fm`: PathoROB robustness index, APD and clustering score per FM."""

import argparse
import sys

from raypath.commands.flags import Flag, add_config_flags, config_from_args, encoders_flag
from raypath.evaluate_fm.config import EvaluateFMConfig

FLAGS = (
    Flag("features", "features"),
    encoders_flag("encoders", aliases=("encoders",),
                  help="FMs to evaluate (repeatable or comma-separated); default: every encoder in the "
                       "store"),
    Flag("tiling-hash", "tiling_hash"),
    Flag("manifest", "manifest"),
    Flag("labels", "labels"),
    Flag("out", "out", metavar="DIR"),
    Flag("tracking-uri", "tracking_uri"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Paths as flags (they override the YAML); everything else via --config / --set."""
    add_config_flags(parser, EvaluateFMConfig, FLAGS, example="tiles_per_slide=64")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def run(args: argparse.Namespace) -> int:
    """Load the cohort, evaluate every FM, print the table; exit 2 on bad input."""
    from raypath.cohort import load_labels, load_manifest  # heavy imports only once chosen
    from raypath.evaluate_fm.pipeline import run_evaluation
    from raypath.evaluate_fm.report import markdown_table

    config = config_from_args(EvaluateFMConfig, args, FLAGS,
                              values={"tracking": False} if args.no_tracking else None)
    config.require_paths()
    manifest = load_manifest(config.manifest, check_files=False)
    labels = load_labels(config.labels, patients=set(manifest["patient_id"]))
    sys.stdout.write(markdown_table(run_evaluation(config, manifest=manifest, labels=labels)))
    return 0
