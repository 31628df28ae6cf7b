"""The `raypath` command: one subcommand per pipeline stage, each in `raypath.commands.<name>`.

Subcommand modules are imported only when chosen, so `raypath models` does not start Ray.
Each module exposes `HELP`, `add_arguments(parser)` and `run(args) -> int`.
"""

import argparse
import importlib
import logging
import sys

from raypath.logs import setup_logging

COMMANDS = {
    "synth": "write a synthetic multi-scanner cohort of pyramidal TIFF slides",
    "models": "list the foundation-model cards",
    "extract": "tile slides and write FM features to the feature store (Ray Data)",
    "simulate": "write a feature-level simulated cohort in the feature-store schema",
    "train": "train one robust MIL model (no Ray, no MLflow)",
    "sweep": "Ray Tune + Optuna sweep over robustness-loss weights, tracked in MLflow",
    "compare": "compare baseline and robust models from MLflow: table, Pareto plot, heatmaps",
    "register": "register the scans of each specimen to a reference scan (registration.parquet)",
    "evaluate-fm": "PathoROB robustness metrics of FM features (RI, APD, clustering score)",
    "demo": "the whole pipeline on a synthetic cohort on this machine",
}


def _module(name: str):
    return importlib.import_module(f"raypath.commands.{name.replace('-', '_')}")


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """Top-level parser; only the chosen subcommand's module is imported to add its flags."""
    parser = argparse.ArgumentParser(prog="raypath", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _module(name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(chosen).parse_args(argv)
    setup_logging(verbose=args.verbose)
    try:
        return int(_module(args.command).run(args) or 0)
    except KeyboardInterrupt:
        logging.getLogger("raypath").error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
