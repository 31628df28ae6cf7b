"""Task metrics with the conventions pinned down: lifelines' C-index wants −risk, AUC needs both
classes, and an undefined metric is NaN rather than an exception mid-sweep."""

from collections.abc import Callable

import numpy as np
from lifelines.utils import concordance_index
from scipy.stats import rankdata
from sklearn.metrics import balanced_accuracy_score, roc_auc_score


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC; `scores` (n,) for binary or (n, c) probabilities (macro one-vs-rest). NaN if undefined."""
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    if len(np.unique(labels)) < 2:
        return float("nan")
    if scores.ndim == 2:
        present = np.unique(labels)
        if len(present) < scores.shape[1]:
            return float("nan")
        return float(roc_auc_score(labels, scores, multi_class="ovr", average="macro"))
    return _rank_auc(labels == labels.max(), scores)


def _rank_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney form of the binary AUC (ties count half), equal to sklearn's roc_auc_score but
    without its input validation, which dominated per-epoch validation time in sweeps."""
    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(labels: np.ndarray, decisions: np.ndarray) -> float:
    """Mean per-class recall, so a majority-class guess scores 1/c, not the prevalence."""
    if len(labels) == 0:
        return float("nan")
    return float(balanced_accuracy_score(labels, decisions))


def c_index(time: np.ndarray, risk: np.ndarray, event: np.ndarray) -> float:
    """Harrell's C: higher risk should mean shorter time, hence lifelines gets −risk."""
    event = np.asarray(event, dtype=bool)
    if event.sum() == 0 or len(time) < 2:
        return float("nan")
    return float(concordance_index(np.asarray(time, float), -np.asarray(risk, float), event))


def bootstrap_ci(
    values: np.ndarray, *, statistic: Callable[[np.ndarray], float] = np.mean, n_boot: int = 2000,
    level: float = 0.95, seed: int = 0, min_values: int = 2,
) -> tuple[float, float, float]:
    """(estimate, low, high): percentile bootstrap over `values` (e.g. one metric per seed).

    NaNs are dropped first; with fewer than `min_values` (>= 2) finite values there is no interval
    (low and high are NaN), never a zero-width one that would pass for a precise estimate.
    """
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return float("nan"), float("nan"), float("nan")
    estimate = float(statistic(finite))
    if len(finite) < max(2, min_values):
        return estimate, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(finite), size=(n_boot, len(finite)))
    stats = np.array([statistic(finite[row]) for row in draws])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return estimate, float(low), float(high)
