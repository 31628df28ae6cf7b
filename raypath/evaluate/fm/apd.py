"""Average performance drop: how much a linear probe suffers when class and center correlate.

A probe trained where class and center are independent (split 0) must read biology; as the
training splits make each class come mostly from "its" center (s = 1..S, built by subsampling
slides, total per class fixed), a probe on features that encode the center learns the shortcut and
loses accuracy on test data where the correlation is absent. APD = mean_{s≥1}(acc_s / acc_0) − 1:
0 means immune to the shortcut, negative means it was taken. Reported in-domain (held-out patients
from the training centers) and out-of-domain (held-out patients from a held-out center). Test
patients never contribute training slides, so rescans of one tissue cannot leak.
"""

import logging
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from raypath.evaluate.fm.splits import Partition, correlated_cell_counts, partition, subsample_units

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DropResult:
    """Balanced accuracies per split (mean over repeats) and the drops they imply."""

    accuracy_id: np.ndarray  # (S + 1,)
    accuracy_ood: np.ndarray  # (S + 1,); NaN without a center to hold out
    apd_id: float
    apd_ood: float


def _drop(accuracies: np.ndarray) -> float:
    """mean_{s≥1}(acc_s / acc_0) − 1."""
    if not np.isfinite(accuracies).all() or accuracies[0] <= 0:
        return float("nan")
    return float(np.mean(accuracies[1:] / accuracies[0]) - 1.0)


def _probe(*, c: float, seed: int) -> Pipeline:
    """Standardised features into an L2-regularised logistic regression (PathoROB's linear probe)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))


def _score(model: Pipeline, features: np.ndarray, classes: np.ndarray, rows: np.ndarray) -> float:
    if rows.size == 0 or np.unique(classes[rows]).size < 2:
        return float("nan")
    return float(balanced_accuracy_score(classes[rows], model.predict(features[rows])))


def _one_repeat(features: np.ndarray, classes: np.ndarray, part: Partition, *, n_splits: int,
                max_strength: float, c: float, seed: int) -> np.ndarray:
    """(S + 1, 2) accuracies (in-domain, out-of-domain) for one partition."""
    results = np.full((n_splits + 1, 2), np.nan)
    counts = correlated_cell_counts(part.cell_sizes, preferred_center=part.preferred_center,
                                    n_splits=n_splits, max_strength=max_strength)
    for split in range(n_splits + 1):
        train = subsample_units(part, counts=counts[split])
        if np.unique(classes[train]).size < 2:
            continue
        model = _probe(c=c, seed=seed).fit(features[train], classes[train])
        results[split] = (_score(model, features, classes, part.test_id),
                          _score(model, features, classes, part.test_ood))
    return results


def _nanmean(runs: list[np.ndarray], *, shape: tuple[int, int]) -> np.ndarray:
    """Mean over repeats ignoring NaN; NaN (without numpy's empty-slice warning) where all are."""
    if not runs:
        return np.full(shape, np.nan)
    stacked = np.stack(runs)
    counts = np.isfinite(stacked).sum(axis=0)
    total = np.nansum(stacked, axis=0)
    return np.divide(total, counts, out=np.full(shape, np.nan), where=counts > 0)


def average_performance_drop(
    features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray, units: np.ndarray,
    patients: np.ndarray, n_splits: int = 5, max_strength: float = 0.9, test_fraction: float = 0.3,
    repeats: int = 3, c: float = 1.0, seed: int = 0,
) -> DropResult:
    """APD in- and out-of-domain, averaged over ``repeats`` patient partitions.

    ``units`` are the sampling units (slide ids: tiles of one slide are drawn together) and
    ``patients`` the leakage groups. Each repeat holds out a different center for the
    out-of-domain test when there are at least three centers.
    """
    rng = np.random.default_rng(seed)
    runs = []
    with threadpool_limits(limits=1):  # small BLAS calls: threads only spin, worst on a busy machine
        for repeat in range(repeats):
            part = partition(classes=classes, centers=centers, units=units, patients=patients,
                             test_fraction=test_fraction, held_out_index=repeat, rng=rng)
            try:
                runs.append(_one_repeat(features, classes, part, n_splits=n_splits,
                                        max_strength=max_strength, c=c, seed=seed + repeat))
            except ValueError as exc:  # a cohort too small for correlated splits: report NaN, go on
                log.warning("APD repeat %d skipped: %s", repeat, exc)
    mean = _nanmean(runs, shape=(n_splits + 1, 2))
    log.debug("APD accuracies per split (id, ood): %s", mean.round(3).tolist())
    return DropResult(accuracy_id=mean[:, 0], accuracy_ood=mean[:, 1], apd_id=_drop(mean[:, 0]),
                      apd_ood=_drop(mean[:, 1]))
