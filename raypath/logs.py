"""One logging set-up for the CLI and jobs; library modules only call `logging.getLogger`."""

import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)


def setup_logging(*, verbose: bool = False) -> None:
    """Configure root logging once, to stderr, with timestamps; quiet noisy third parties."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        handlers=[CurrentStderrHandler()],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    quiet_third_parties(verbose=verbose)
    for noisy in ("urllib3", "alembic", "mlflow", "filelock", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a record is emitted, not as it was at set-up: a command
    run in-process (tests, notebooks) must not leave a handler on a stream that was closed since."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """StreamHandler.__init__ assigns a stream; this handler has none of its own."""


def is_terminal() -> bool:
    """Whether a person watches this process's output live (both streams on a terminal)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def quiet_third_parties(*, verbose: bool) -> None:
    """Ray's and MLflow's own switches, set before they are imported (and inherited by the Ray workers
    a command starts; an explicit setting in the environment wins): no colour codes and no Ray Data
    progress bars when the output is not a terminal (log files, CI, `ray job` logs), and unless
    `verbose`, no MLflow "Downloading artifacts" bars or INFO lines ("Validating input example"), no
    Tune configuration box (Tune's newer console engine prints it even at verbose=0; the engine it
    replaced prints nothing there, and sweeps report their own progress), no INFO lines of Ray, Ray
    Data and Tune ("Started a local Ray instance", execution plans, "Wrote the latest version") and
    no Tune "may be a performance bottleneck" notes under 30 s: Ray's warnings still show."""
    if not is_terminal():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        os.environ.setdefault("RAY_LOGGER_LEVEL", "warning")
        os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
        os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "30")


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



QUIET_BELOW_S = 2.0
"""A loop done sooner than this (and never reported on the way) logs nothing at its end."""


class ProgressBar(tqdm):
    """tqdm where a person watches (a terminal); elsewhere (log files, CI, `ray job logs`) no bar
    but a log line every `every_s` seconds and one at the end (of a loop that took `QUIET_BELOW_S` or
    more), so logs hold no carriage-return junk and a long stage is never silent. Use it like tqdm;
    `disable=True` means no progress at all."""

    def __init__(self, iterable: Any = None, *, desc: str = "", total: float | None = None,
                 every_s: float = 30.0, **kwargs: Any) -> None:
        self.quiet = bool(kwargs.pop("disable", False))  # asked for no progress at all (tiny jobs)
        super().__init__(iterable, desc=desc, total=total, disable=self.quiet or not is_terminal(), **kwargs)
        self.label, self.count, self.ticker, self.began = desc, 0, Ticker(every_s), time.monotonic()
        self.spoke = False  # whether a progress line was logged (then the end gets one too)
        if self.total is None and iterable is not None and hasattr(iterable, "__len__"):
            self.total = len(iterable)

    def __iter__(self) -> Iterator[Any]:
        if not self.disable:
            yield from super().__iter__()
            return
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: float | None = 1) -> bool | None:
        if self.disable and not self.quiet:
            self.count += n or 0
            if self.ticker.due():
                self.spoke = True
                log.info("%s: %s", self.label, self._done())
        return super().update(n)

    def close(self) -> None:
        elapsed = time.monotonic() - self.began
        if self.disable and self.count and (self.spoke or elapsed >= QUIET_BELOW_S) \
                and not getattr(self, "closed_once", False):
            self.closed_once = True
            log.info("%s: %s in %.1f s", self.label, self._done(), elapsed)
        super().close()

    def _done(self) -> str:
        return f"{self.count:g}/{self.total:g}" if self.total else f"{self.count:g}"
