"""One logging set-up for the CLI and jobs; library modules only call `logging.getLogger`."""

import logging
import os
import sys
import time


def setup_logging(*, verbose: bool = False) -> None:
    """Configure root logging once, to stderr, with timestamps; quiet noisy third parties."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    quiet_third_parties(verbose=verbose)
    for noisy in ("urllib3", "alembic", "mlflow", "filelock", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_terminal() -> bool:
    """Whether a person watches this process's output live (both streams on a terminal)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def quiet_third_parties(*, verbose: bool) -> None:
    """Ray's and MLflow's own switches, set before they are imported (and inherited by the Ray workers
    a command starts; an explicit setting in the environment wins): no colour codes and no Ray Data
    progress bars when the output is not a terminal (log files, CI, `ray job` logs), and unless
    `verbose`, no MLflow "Downloading artifacts" bars or INFO lines ("Validating input example")."""
    if not is_terminal():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


class Ticker:
    """True at most once every `every_s` seconds: when a long loop should log where it is."""

    def __init__(self, every_s: float) -> None:
        self.every_s, self.last = every_s, time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True
