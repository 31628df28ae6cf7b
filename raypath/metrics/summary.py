"""All task and robustness metrics of one split from a per-slide predictions table.

The table has one row per slide: specimen_id, scanner, score (probability or risk; multiclass
adds prob_<c> columns), decision, and label or time/event (and `center` where the cohort has one).
Embeddings (n, h) feed the scanner probe, the mutual-information bound and the robustness index.
Keys are flat names ready for logging: ``auc``, ``score_spread``... A metric that is not defined on
this split is NaN and its key maps to the reason in the returned `undefined` dict; one that stands
on few samples or on part of them keeps its value and says so in `caveats`.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from raypath.metrics.information import mutual_information_bits
from raypath.metrics.limits import (
    DEFAULT_LIMITS,
    MetricLimits,
    classes_limit,
    cross_scanner_limit,
    few_caveat,
    knn_limit,
    paired_specimens,
    probe_limit,
)
from raypath.metrics.robustness import flip_rate, robustness_index, scanner_probe, score_spread
from raypath.metrics.task import auc, balanced_accuracy, c_index

PROBE_FOLDS = 5


@dataclass
class Summary:
    """Metric values by name, for each undefined one (NaN) the reason, and for each value that
    stands on little or on part of the data the caveat (`raypath.metrics.limits`)."""

    values: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    caveats: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: float, reason: str | None = None, caveat: str | None = None) -> None:
        self.values[name] = float("nan") if reason else float(value)
        if reason:
            self.undefined[name] = reason
        elif caveat:
            self.caveats[name] = caveat

    def merge(self, other: "Summary") -> "Summary":
        return Summary({**self.values, **other.values}, {**self.undefined, **other.undefined},
                       {**self.caveats, **other.caveats})


def score_matrix(frame: pd.DataFrame) -> np.ndarray:
    """(n,) scores, or (n, c) class probabilities for multiclass tables."""
    prob_columns = sorted(c for c in frame.columns if c.startswith("prob_"))
    return frame[prob_columns].to_numpy() if prob_columns else frame["score"].to_numpy()


def _accuracy(frame: pd.DataFrame, *, task: str, where: str = "") -> tuple[str, float, str | None]:
    """(name, value, reason) of the split's (or one scanner's) AUC / C-index."""
    scores = score_matrix(frame)
    if task == "survival":
        events = int(frame["event"].sum())
        reason = None if events and len(frame) >= 2 else f"{events} events in {len(frame)} slides{where}"
        return "c_index", (np.nan if reason else c_index(frame["time"], scores, frame["event"])), reason
    reason = classes_limit(frame["label"], where=where)
    return "auc", (np.nan if reason else auc(frame["label"].to_numpy(), scores)), reason


def _worst_scanner(out: Summary, per_scanner: dict[str, float], *, name: str) -> None:
    """The lowest defined per-scanner value; the scanners left out (and why) are its caveat."""
    finite = {s: v for s, v in per_scanner.items() if np.isfinite(v)}
    excluded = [s for s in per_scanner if s not in finite]
    caveat = None
    if finite and excluded:
        reasons = "; ".join(out.undefined.get(f"{name}_scanner_{s}", "undefined") for s in excluded)
        caveat = f"over scanners {sorted(finite)} only; excluded {excluded} ({reasons})"
    out.set(f"worst_scanner_{name}", min(finite.values()) if finite else np.nan,
            None if finite else f"no scanner has a defined {name}", caveat)


def _held_out(out: Summary, frame: pd.DataFrame, *, task: str, held_out: Sequence[str],
              limits: MetricLimits) -> None:
    """Accuracy on the held-out scanners' slides alone (pooled when several are held out)."""
    rows = frame[frame["scanner"].isin(list(held_out))]
    if not len(rows):
        name = "c_index" if task == "survival" else "auc"
        out.set(f"{name}_heldout", np.nan, f"no slides of {list(held_out)}")
        return
    name, value, reason = _accuracy(rows, task=task, where=f" on {list(held_out)}")
    caveat = few_caveat(rows["specimen_id"].nunique(), minimum=limits.min_specimens, what="specimens")
    if len(held_out) > 1:
        caveat = "; ".join(filter(None, [f"pooled over held-out scanners {list(held_out)}", caveat]))
    out.set(f"{name}_heldout", value, reason, caveat)


def task_summary(frame: pd.DataFrame, *, task: str, held_out: Sequence[str] = (),
                 limits: MetricLimits = DEFAULT_LIMITS) -> Summary:
    """Accuracy on the split, per scanner (and the worst), and on the held-out scanners alone."""
    out = Summary()
    name, value, reason = _accuracy(frame, task=task)
    few = few_caveat(frame["specimen_id"].nunique(), minimum=limits.min_specimens, what="specimens")
    out.set(name, value, reason, few)
    if task != "survival":
        decisions = frame["decision"].to_numpy()
        out.set("balanced_accuracy", balanced_accuracy(frame["label"].to_numpy(), decisions), reason, few)
    per_scanner = {}
    for scanner, rows in frame.groupby("scanner", sort=True):
        _, value, reason = _accuracy(rows, task=task, where=f" on scanner {scanner}")
        out.set(f"{name}_scanner_{scanner}", value, reason)
        per_scanner[scanner] = value
    _worst_scanner(out, per_scanner, name=name)
    if held_out:
        _held_out(out, frame, task=task, held_out=held_out, limits=limits)
    return out


def epoch_summary(frame: pd.DataFrame, *, task: str) -> Summary:
    """The cheap per-epoch validation metrics a search optimises: accuracy, spread, flip rate."""
    out = Summary({"n_specimens": float(frame["specimen_id"].nunique())})
    name, value, reason = _accuracy(frame, task=task)
    out.set(name, value, reason)
    specimens = frame["specimen_id"].to_numpy()
    reason = cross_scanner_limit(specimens)
    out.set("score_spread", np.nan if reason else score_spread(score_matrix(frame), specimens), reason)
    out.set("flip_rate", np.nan if reason else flip_rate(frame["decision"].to_numpy(), specimens), reason)
    return out


def _paired_caveat(specimens: np.ndarray, *, limits: MetricLimits) -> str | None:
    """Cross-scanner metrics stand on the specimens scanned at least twice: say how many, and of how many."""
    paired, total = paired_specimens(specimens), len(set(specimens))
    notes = [few_caveat(paired, minimum=limits.min_paired_specimens, what="specimens with >= 2 scans")]
    if paired < total:
        notes.append(f"over the {paired} of {total} specimens with >= 2 scans")
    return "; ".join(filter(None, notes)) or None


def robustness_summary(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, k: int = 10,
                       seed: int = 0, limits: MetricLimits = DEFAULT_LIMITS) -> Summary:
    """Spread and flips across a specimen's scans; scanner (and centre) probe and information;
    robustness index on the biological classes."""
    out = Summary()
    specimens, scanners = frame["specimen_id"].to_numpy(), frame["scanner"].to_numpy()
    reason = cross_scanner_limit(specimens)
    caveat = None if reason else _paired_caveat(specimens, limits=limits)
    spread = np.nan if reason else score_spread(score_matrix(frame), specimens)
    out.set("score_spread", spread, reason, caveat)
    out.set("flip_rate", np.nan if reason else flip_rate(frame["decision"].to_numpy(), specimens), reason,
            caveat)
    for target, groups in (("scanner", scanners), ("center", frame.get("center"))):
        if groups is None or pd.Series(groups).isna().all():
            continue
        reason = probe_limit(groups, folds=PROBE_FOLDS)
        probe, chance = ((np.nan, np.nan) if reason
                         else scanner_probe(embeddings, groups, folds=PROBE_FOLDS, seed=seed))
        out.set(f"{target}_probe_bacc", probe, reason)
        out.set(f"{target}_probe_chance", chance, reason)
        mi = np.nan if reason else mutual_information_bits(embeddings, groups, folds=PROBE_FOLDS, seed=seed)
        out.set(f"{target}_mi_bits", mi, reason)
    if task != "survival":
        reason = knn_limit(frame["label"], scanners, groups=specimens, k=k)
        value = np.nan if reason else robustness_index(embeddings, frame["label"].to_numpy(), scanners, k=k,
                                                       groups=specimens)
        out.set("robustness_index", value, reason)
    return out


def summarize(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, held_out: Sequence[str] = (),
              k: int = 10, seed: int = 0, limits: MetricLimits = DEFAULT_LIMITS) -> Summary:
    """Task + robustness metrics of one split, with sample counts (what every number stands on)."""
    if len(frame) == 0:
        return Summary()
    counts = Summary({"n_slides": float(len(frame)), "n_specimens": float(frame["specimen_id"].nunique())})
    return counts.merge(task_summary(frame, task=task, held_out=held_out, limits=limits)).merge(
        robustness_summary(frame, embeddings, task=task, k=k, seed=seed, limits=limits))
