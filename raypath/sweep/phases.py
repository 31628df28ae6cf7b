"""Complete phases only: how a sweep stops early, says where, and how MLflow records it.

A phase is complete when every pack it planned ended (finished, stopped by the scheduler, or
failed after its retries). Anything else (SIGINT, SIGTERM, a lost driver) leaves it incomplete:
the command names the phase and how far it got, exits non-zero (128 + the signal), and the same
command continues it. Only complete phases feed the replicates, `raypath compare` and the registry:
each phase's parent run in MLflow carries whether it completed, and the experiment lists the
phases the sweep planned.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from raypath.tracking.queries import TrackingClient, experiment_tags, phase_runs

log = logging.getLogger(__name__)
TAG_PHASES = "raypath.phases"  # experiment tag: the phases this sweep runs, in order
TAG_COMPLETE = "raypath.complete"  # phase run tag: "true" once every planned pack ended
TAG_DONE, TAG_TOTAL = "raypath.configurations_done", "raypath.configurations"


class SweepStoppedError(RuntimeError):
    """The sweep ended before its results could be used; `exit_code` is the command's status."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class IncompleteSweepError(ValueError):
    """`raypath compare` on a sweep whose phases did not all complete."""


@dataclass
class StopRequest:
    """The first SIGINT/SIGTERM received while the sweep runs; `in_phase` while Tune runs a phase."""

    signal: int | None = None
    in_phase: bool = False

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def stopped(self, what: str, *, done: int | None = None, total: int | None = None) -> SweepStoppedError:
        """The error that ends the command: which phase stopped where, and how to continue."""
        where = f" after {done} of {total} configurations" if done is not None else " before it started"
        return SweepStoppedError(f"{what} stopped by {self.name}{where}; nothing was replicated, compared or "
                            "registered from it. Run the same command again to continue it.",
                            exit_code=128 + int(self.signal or 0))


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM end the running phase the way Tune ends one on SIGINT (state saved); a
    second signal stops at once. Needs TUNE_DISABLE_SIGINT_HANDLER=1, so Tune leaves SIGINT to us."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield request
        return

    def handler(signum: int, frame: Any) -> None:
        if request.signal is not None:
            raise KeyboardInterrupt
        request.signal = signum
        log.warning("%s: ending the sweep once Tune has saved its state (send it again to stop at once)",
                    signal.Signals(signum).name)
        tune_stop = signal.getsignal(signal.SIGUSR1)  # Tune's own graceful stop, installed by fit()
        if request.in_phase and callable(tune_stop):
            tune_stop(signum, frame)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def incomplete_phases(client: TrackingClient, experiment_id: str, *, fm: str) -> list[str]:
    """'fm phase (k of n configurations)' for each planned phase that did not complete."""
    planned = experiment_tags(client, experiment_id).get(TAG_PHASES)
    if planned is None:  # a sweep recorded before phases were tracked
        log.warning("%s: the sweep does not record its phases; cannot check that they completed", fm)
        return []
    runs, missing = phase_runs(client, experiment_id), []
    for phase in planned.split(","):
        run = runs.get(phase)
        if run is None:
            missing.append(f"{fm} {phase} (not started)")
        elif run.data.tags.get(TAG_COMPLETE) != "true":
            done, total = run.data.tags.get(TAG_DONE, "?"), run.data.tags.get(TAG_TOTAL, "?")
            missing.append(f"{fm} {phase} ({done} of {total} configurations)")
    return missing
