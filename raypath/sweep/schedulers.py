"""Early stopping that does not depend on which trial reports first: successive halving by batch.

ASHA decides when a result arrives, against the rung values recorded so far, so with concurrent
trials its decisions (and everything Optuna learns from them) follow the order in which trials
happen to report. Here a pack of batch b reaching a rung is compared only with the packs of
batches up to b - IN_FLIGHT: `raypath.sweep.packing` asks batch b once those are complete, so their
rung values are final by then, and the decision is the same whatever the timing. It is taken at
once: no trial waits at a rung or trains past it. The cutoff is ASHA's: the (1 - 1/η) quantile of
the reference values. The first IN_FLIGHT batches are never stopped (they have no reference).

Each arm has its own ladder: a tuned-control pack is compared only with control packs, a robust
pack only with robust ones. Without that, robust packs that fit the training scanners better cut
the control's packs at the first rung, the search ends with no finished baseline and the
comparison loses its control.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

IN_FLIGHT = 2  # search batches running at once: batch b is asked once batch b - 2 is complete


def is_control_pack(trial: Trial) -> bool:
    """A pack whose members all train with every robustness weight at zero."""
    members = trial.config.get("pack") or []
    return bool(members) and all(m.get("baseline") for m in members)


def milestones(*, grace_period: int, reduction_factor: float, max_t: int) -> list[float]:
    """ASHA's rungs: grace, grace·η, grace·η², ... below max_t."""
    rungs, rung = [], float(grace_period)
    while rung < max_t:
        rungs.append(rung)
        rung *= reduction_factor
    return rungs


class RungBook:
    """Every search pack's signed objective at each rung it reached: (arm, rung, pack) -> (batch, value).

    Kept as data: the searcher writes it into its JSON state, so a restored search decides as an
    uninterrupted one would.
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[str, float, int], tuple[int, float]] = {}

    def has(self, arm: str, rung: float, pack: int) -> bool:
        return (arm, rung, pack) in self.entries

    def record(self, arm: str, rung: float, pack: int, *, batch: int, value: float) -> None:
        self.entries[(arm, rung, pack)] = (batch, value)

    def cutoff(self, arm: str, rung: float, *, batch: int, reduction_factor: float) -> float | None:
        """ASHA's cutoff over the packs of batches up to `batch` - IN_FLIGHT at this rung; None
        without any."""
        reference = [v for (a, r, _), (b, v) in self.entries.items()
                     if a == arm and r == rung and b + IN_FLIGHT <= batch]
        return float(np.nanpercentile(reference, (1 - 1 / reduction_factor) * 100)) if reference else None

    def to_json(self) -> list[list]:
        return [[arm, rung, pack, batch, value]
                for (arm, rung, pack), (batch, value) in sorted(self.entries.items())]

    def load(self, rows: Sequence[Sequence[Any]]) -> None:
        """Replace the entries in place (the scheduler holds this same object)."""
        self.entries = {(str(a), float(r), int(p)): (int(b), float(v)) for a, r, p, b, v in rows}


class BatchHalving(FIFOScheduler):
    """Stop a search pack at a rung when it is below the cutoff of earlier batches in its arm."""

    _supports_buffered_results = False  # every epoch's result is seen before the pack trains on

    def __init__(self, *, book: RungBook, metric: str, mode: str, rungs: Sequence[float],
                 reduction_factor: float, time_attr: str = "epoch") -> None:
        super().__init__()
        self.book, self.rung_metric, self.time_attr = book, metric, time_attr
        self.sign = 1.0 if mode == "max" else -1.0
        self.rungs, self.reduction_factor = sorted(rungs, reverse=True), reduction_factor

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        epoch, value = result.get(self.time_attr), result.get(self.rung_metric)
        if epoch is None or value is None or "pack_index" not in trial.config:
            return TrialScheduler.CONTINUE
        arm = "control" if is_control_pack(trial) else "robust"
        pack, batch = int(trial.config["pack_index"]), int(trial.config["batch"])
        for rung in self.rungs:
            if epoch < rung:
                continue
            if self.book.has(arm, rung, pack):  # decided when it first got here (a rerun reports again)
                return TrialScheduler.CONTINUE
            cutoff = self.book.cutoff(arm, rung, batch=batch, reduction_factor=self.reduction_factor)
            signed = self.sign * float(value)
            self.book.record(arm, rung, pack, batch=batch, value=signed)
            return TrialScheduler.STOP if cutoff is not None and signed < cutoff else TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"BatchHalving: rungs {sorted(self.rungs)}, {len(self.book.entries)} rung values"
