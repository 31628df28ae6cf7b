"""All task and robustness metrics of one split from a per-slide predictions table.

The table has one row per slide: specimen_id, scanner, score (probability or risk; multiclass
adds prob_<c> columns), decision, and label or time/event. Embeddings (n, h) feed the scanner
probe and the robustness index. Keys are flat names ready for logging: ``auc``, ``score_spread``...
"""

import numpy as np
import pandas as pd

from raypath.metrics.robustness import (
    flip_rate,
    per_scanner,
    robustness_index,
    scanner_probe,
    score_spread,
    worst_scanner,
)
from raypath.metrics.task import auc, balanced_accuracy, c_index


def score_matrix(frame: pd.DataFrame) -> np.ndarray:
    """(n,) scores, or (n, c) class probabilities for multiclass tables."""
    prob_columns = sorted(c for c in frame.columns if c.startswith("prob_"))
    return frame[prob_columns].to_numpy() if prob_columns else frame["score"].to_numpy()


def task_summary(frame: pd.DataFrame, *, task: str, held_out_scanner: str | None = None) -> dict[str, float]:
    """Accuracy per split, per scanner (worst) and on the held-out scanner alone."""
    scores = score_matrix(frame)
    scanners = frame["scanner"].to_numpy()
    if task == "survival":
        name, fn = "c_index", c_index
        arrays = {"time": frame["time"].to_numpy(), "risk": scores, "event": frame["event"].to_numpy()}
        out = {"c_index": c_index(**arrays)}
    else:
        name, fn = "auc", auc
        arrays = {"labels": frame["label"].to_numpy(), "scores": scores}
        decisions = frame["decision"].to_numpy()
        out = {"auc": auc(**arrays), "balanced_accuracy": balanced_accuracy(arrays["labels"], decisions)}
    by_scanner = per_scanner(fn, scanners, **arrays)
    out[f"worst_scanner_{name}"] = worst_scanner(by_scanner)
    out.update({f"{name}_scanner_{s}": v for s, v in by_scanner.items()})
    if held_out_scanner is not None:
        out[f"{name}_heldout"] = by_scanner.get(held_out_scanner, float("nan"))
    return out


def robustness_summary(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, k: int = 10,
                       seed: int = 0) -> dict[str, float]:
    """Spread and flips across scans of a specimen, scanner probe, robustness index (on labels)."""
    specimens = frame["specimen_id"].to_numpy()
    scanners = frame["scanner"].to_numpy()
    probe, chance = scanner_probe(embeddings, scanners, seed=seed)
    out = {"score_spread": score_spread(score_matrix(frame), specimens),
           "flip_rate": flip_rate(frame["decision"].to_numpy(), specimens),
           "scanner_probe_bacc": probe, "scanner_probe_chance": chance}
    labels = frame["label"] if "label" in frame else pd.Series(dtype=float)
    if len(frame) > 1 and labels.notna().all() and (labels >= 0).all():  # RI needs biological classes
        classes = labels.to_numpy()
        out["robustness_index"] = robustness_index(embeddings, classes, scanners, k=min(k, len(frame) - 1),
                                                   groups=specimens)
    return out


def summarize(frame: pd.DataFrame, embeddings: np.ndarray, *, task: str, held_out_scanner: str | None = None,
              k: int = 10, seed: int = 0) -> dict[str, float]:
    """Task + robustness metrics of one split."""
    if len(frame) == 0:
        return {}
    return {**task_summary(frame, task=task, held_out_scanner=held_out_scanner),
            **robustness_summary(frame, embeddings, task=task, k=k, seed=seed)}
