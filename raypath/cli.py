"""The `raypath` command: one subcommand per pipeline stage, each in `raypath.commands.<name>`.

Subcommand modules are imported only when chosen, so `raypath models` does not start Ray. Each
module exposes `add_arguments(parser)` and `run(args) -> int`; the one-line help of every command
is here and nowhere else. Bad input (a config, table or path that does not validate) ends with one
line naming it and exit status 2; a fault of the machine (a full disk, a Ray node that does not start)
with one line and exit status 1; `--debug` adds the traceback.
"""

import argparse
import errno
import importlib
import logging
import sys

from raypath.errors import MachineError
from raypath.logs import setup_logging

COMMANDS = {
    "synth": "write a synthetic multi-scanner cohort of pyramidal TIFF slides",
    "models": "list the foundation-model cards",
    "register": "register the scans of each specimen to a reference scan (registration.parquet)",
    "extract": "tile slides and write FM features to the feature store (Ray Data)",
    "simulate": "write a feature-level simulated cohort in the feature-store schema",
    "train": "train one robust MIL model (one process, or data-parallel on Ray Train with --workers N)",
    "sweep": "Ray Tune + Optuna sweep over robustness-loss weights, tracked in MLflow",
    "compare": "compare baseline and robust models from MLflow: table, Pareto plot, heatmaps",
    "finetune": "LoRA on the FM + robust MIL head from tiles on Ray Train workers; registers the model",
    "predict": "apply a trained model to new slides: features reused or extracted, scores and attention",
    "evaluate-fm": "PathoROB robustness metrics of FM features (RI, APD, clustering score)",
    "demo": "the whole pipeline on a synthetic cohort on this machine",
}
EXIT_BAD_INPUT = 2
EXIT_MACHINE = 1
BAD_INPUT = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)
log = logging.getLogger("raypath")


def _module(name: str):
    return importlib.import_module(f"raypath.commands.{name.replace('-', '_')}")


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """Top-level parser; only the chosen subcommand's module is imported to add its flags."""
    return _parsers(chosen)[0]


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand, flags added (what `raypath <name> --help` prints)."""
    return _parsers(name)[1]


def _parsers(chosen: str | None) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser | None]:
    common = argparse.ArgumentParser(add_help=False)  # accepted before or after the command (jobs/*.py)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="debug logging")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of bad-input errors")
    parser = argparse.ArgumentParser(prog="raypath", description=__doc__.splitlines()[0], parents=[common])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    found = None
    for name, help_text in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text, parents=[common])
        if name == chosen:
            _module(name).add_arguments(sub)
            found = sub
    return parser, found


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(chosen).parse_args(argv)
    args.verbose, args.debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    setup_logging(verbose=args.verbose)
    for old, new in getattr(args, "deprecated_flags", ()):
        log.warning("%s is deprecated and will be removed; use %s", old, new)
    try:
        return int(_module(args.command).run(args) or 0)
    except BAD_INPUT as exc:  # ConfigError, CohortError, ProvenanceError, SlideError... are ValueErrors
        return _one_line(exc, debug=args.debug, code=EXIT_BAD_INPUT)
    except MachineError as exc:  # Ray did not start, ...: the message says what to change
        return _one_line(exc, debug=args.debug, code=EXIT_MACHINE)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        return _one_line(exc, debug=args.debug, code=EXIT_MACHINE)  # a full disk, with the file it hit
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130


def _one_line(exc: BaseException, *, debug: bool, code: int) -> int:
    if debug:
        log.exception("%s", exc)
    else:
        log.error("%s", exc)
    return code


if __name__ == "__main__":
    sys.exit(main())
