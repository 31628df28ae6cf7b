"""All task and robustness metrics of one split from a per-slide predictions table.

The table has one row per slide: specimen_id, scanner, score (probability or risk; multiclass
adds prob_<c> columns), decision, and label or time/event (and `center` where the cohort has one).
Embeddings (n, h) feed the scanner probe, the mutual-information bound and the robustness index.
Keys are flat names ready for logging: ``auc``, ``score_spread``... A metric that is not defined on
this split is NaN and its key maps to the reason in the returned `undefined` dict.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from raypath.metrics.information import mutual_information_bits
from raypath.metrics.limits import classes_limit, cross_scanner_limit, knn_limit, probe_limit
from raypath.metrics.robustness import flip_rate, robustness_index, scanner_probe, score_spread
from raypath.metrics.task import auc, balanced_accuracy, c_index

PROBE_FOLDS = 5


@dataclass
class Summary:
    """Metric values by name, and for each undefined one (NaN) the reason."""

    values: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)

    def set(self, name: str, value: float, reason: str | None = None) -> None:
        self.values[name] = float("nan") if reason else float(value)
        if reason:
            self.undefined[name] = reason

    def merge(self, other: "Summary") -> "Summary":
        return Summary({**self.values, **other.values}, {**self.undefined, **other.undefined})


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


def task_summary(frame: pd.DataFrame, *, task: str, held_out_scanner: str | None = None) -> Summary:
    """Accuracy on the split, per scanner (and the worst), and on the held-out scanner alone."""
    out = Summary()
    name, value, reason = _accuracy(frame, task=task)
    out.set(name, value, reason)
    if task != "survival":
        decisions = frame["decision"].to_numpy()
        out.set("balanced_accuracy", balanced_accuracy(frame["label"].to_numpy(), decisions), reason)
    per_scanner = {}
    for scanner, rows in frame.groupby("scanner", sort=True):
        _, value, reason = _accuracy(rows, task=task, where=f" on scanner {scanner}")
        out.set(f"{name}_scanner_{scanner}", value, reason)
        per_scanner[scanner] = value
    finite = [v for v in per_scanner.values() if np.isfinite(v)]
    out.set(f"worst_scanner_{name}", min(finite) if finite else np.nan,
            None if finite else f"no scanner has a defined {name}")
    if held_out_scanner is not None:
        key = f"{name}_scanner_{held_out_scanner}"
        out.set(f"{name}_heldout", out.values.get(key, np.nan),
                out.undefined.get(key) or (None if key in out.values else f"no slides of {held_out_scanner}"))
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


def robustness_summary(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, k: int = 10,
                       seed: int = 0) -> Summary:
    """Spread and flips across a specimen's scans; scanner (and centre) probe and information;
    robustness index on the biological classes."""
    out = Summary()
    specimens, scanners = frame["specimen_id"].to_numpy(), frame["scanner"].to_numpy()
    reason = cross_scanner_limit(specimens)
    out.set("score_spread", np.nan if reason else score_spread(score_matrix(frame), specimens), reason)
    out.set("flip_rate", np.nan if reason else flip_rate(frame["decision"].to_numpy(), specimens), reason)
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


def summarize(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, held_out_scanner: str | None = None,
              k: int = 10, seed: int = 0) -> Summary:
    """Task + robustness metrics of one split, with sample counts (what every number stands on)."""
    if len(frame) == 0:
        return Summary()
    counts = Summary({"n_slides": float(len(frame)), "n_specimens": float(frame["specimen_id"].nunique())})
    return counts.merge(task_summary(frame, task=task, held_out_scanner=held_out_scanner)).merge(
        robustness_summary(frame, embeddings, task=task, k=k, seed=seed))
