"""`raypath evaluate-fm`: PathoROB robustness index, APD and clustering score per FM."""

import argparse
import json
import logging
import sys

from raypath.commands import add_config_arguments, config_from_args
from raypath.config import ConfigError
from raypath.config.evaluate_fm import EvaluateFMConfig

HELP = "PathoROB robustness metrics of FM features (RI, APD, clustering score)"
log = logging.getLogger(__name__)
FLAGS = ("features", "encoders", "tiling_hash", "manifest", "labels", "out", "tracking_uri")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Paths as flags (they override the YAML); everything else via --config / --set."""
    add_config_arguments(parser)
    parser.add_argument("--features", help="feature-store root (local dir or s3:// URI)")
    parser.add_argument("--encoders", type=lambda text: [e for e in text.split(",") if e],
                        help="comma-separated FMs; default: every encoder in the store")
    parser.add_argument("--tiling-hash", help="evaluate only this tiling hash")
    parser.add_argument("--manifest", help="manifest.csv")
    parser.add_argument("--labels", help="labels.csv (column 'label' = biological class)")
    parser.add_argument("--out", help="report folder")
    parser.add_argument("--tracking-uri", help="MLflow URI; default sqlite under the report folder")
    parser.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _overrides(args: argparse.Namespace) -> list[str]:
    """CLI flags as `key=value` overrides (JSON values are valid YAML, so quoting is safe)."""
    extra = [f"{name}={json.dumps(getattr(args, name))}" for name in FLAGS if getattr(args, name) is not None]
    return [*extra, "tracking=false"] if args.no_tracking else extra


def run(args: argparse.Namespace) -> int:
    """Load the cohort, evaluate every FM, print the table; exit 2 on bad input."""
    from raypath.cohort import load_labels, load_manifest  # heavy imports only once chosen
    from raypath.evaluate.fm.pipeline import run_evaluation
    from raypath.evaluate.fm.report import markdown_table

    try:
        config = config_from_args(EvaluateFMConfig, args, _overrides(args))
        config.require_paths()
        manifest = load_manifest(config.manifest, check_files=False)
        labels = load_labels(config.labels, patients=set(manifest["patient_id"]))
        table = run_evaluation(config, manifest=manifest, labels=labels)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    sys.stdout.write(markdown_table(table))
    return 0
