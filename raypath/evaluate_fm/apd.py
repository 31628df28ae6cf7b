"""Average performance drop (APD): how much a linear probe suffers when class and centre correlate.

PathoROB's protocol (bifold-pathomics/PathoROB, ``apd``), the default here: slides per (centre,
class) cell are reshuffled in each of 20 iterations; a logistic regression on the raw features is
trained on each split of `splits.schedule` (balanced at split 0, fully correlated at the last), its
C picked from 10^-8 … 10^4 (15 values) by balanced accuracy on the validation tiles; balanced
accuracy is measured in-domain (later slides of the training centres) and out-of-domain (the
held-out centres). Per iteration the drop is mean_{s≥1}(acc_s / acc_0) − 1; APD is its mean over
iterations: 0 means immune to the shortcut, negative means it was taken.

raypath adds the same drop with test slides of specimens seen in training removed (``specimen``):
rescans of one tissue on another scanner are otherwise tested on after being trained on.
"""

import logging
from dataclasses import dataclass

import numpy as np

from raypath.evaluate_fm.accuracy import balanced_accuracy
from raypath.evaluate_fm.parallel import single_threaded
from raypath.evaluate_fm.probe import Probe, fit_logistic
from raypath.evaluate_fm.splits import (
    SplitRows,
    balanced_slides,
    layout,
    schedule,
    shuffled_orders,
    split_rows,
)

log = logging.getLogger(__name__)

C_GRID = tuple(float(c) for c in 10 ** np.linspace(-8, 4, 15))
PATHOROB_SEED = 1000


@dataclass(frozen=True)
class DropResult:
    """Balanced accuracies (split × iteration) and the drops they imply; NaN where not defined."""

    accuracy_id: np.ndarray  # (S + 1, iterations)
    accuracy_ood: np.ndarray  # (S + 1, iterations); NaN without a held-out centre
    accuracy_id_specimen: np.ndarray  # test slides of specimens seen in training left out
    accuracy_ood_specimen: np.ndarray

    @property
    def apd_id(self) -> float:
        return drop(self.accuracy_id)

    @property
    def apd_ood(self) -> float:
        return drop(self.accuracy_ood)

    @property
    def apd_id_specimen(self) -> float:
        return drop(self.accuracy_id_specimen)

    @property
    def apd_ood_specimen(self) -> float:
        return drop(self.accuracy_ood_specimen)


def drop(accuracies: np.ndarray) -> float:
    """mean over iterations of mean_{s≥1}(acc_s / acc_0) − 1 (PathoROB's per-iteration ratios)."""
    if not np.isfinite(accuracies).all() or (accuracies[0] <= 0).any():
        return float("nan")
    return float(np.mean((accuracies[1:] / accuracies[0]).mean(axis=0) - 1.0))


def _accuracy(model: Probe, features: np.ndarray, classes: np.ndarray, rows: np.ndarray) -> float:
    if rows.size == 0:
        return float("nan")
    return balanced_accuracy(classes[rows], model.predict(features[rows]))


def fit_probe(features: np.ndarray, classes: np.ndarray, *, train: np.ndarray,
              validation: np.ndarray) -> Probe:
    """PathoROB's probe: `LogisticRegression(C=c)` (scikit-learn's defaults, 100 L-BFGS iterations
    whether or not converged) for each C of `C_GRID`, the first C with the best validation balanced
    accuracy wins and its model is returned (PathoROB refits it: the same numbers)."""
    best, best_score = None, -np.inf
    train_x, train_y = features[train], classes[train]
    validation_x, validation_y = features[validation], classes[validation]
    for c in C_GRID:
        model = fit_logistic(train_x, train_y, c=c)
        score = (balanced_accuracy(validation_y, model.predict(validation_x)) if len(validation)
                 else float("nan"))
        if score > best_score:
            best, best_score = model, score
    return best


def unseen_rows(rows: np.ndarray, specimens: np.ndarray | None, train: np.ndarray) -> np.ndarray:
    """Rows whose specimen has no training slide (all rows without specimen ids)."""
    if specimens is None:
        return rows
    return rows[~np.isin(specimens[rows], specimens[train])]


def _split_accuracies(features: np.ndarray, classes: np.ndarray, rows: SplitRows, *, ood: np.ndarray,
                      specimens: np.ndarray | None) -> tuple[float, float, float, float]:
    """(id, ood, id without seen specimens, ood without seen specimens) of one split's probe."""
    model = fit_probe(features, classes, train=rows.train, validation=rows.validation)
    tests = (rows.test, ood, unseen_rows(rows.test, specimens, rows.train),
             unseen_rows(ood, specimens, rows.train))
    return tuple(_accuracy(model, features, classes, t) for t in tests)


def _iteration(features: np.ndarray, classes: np.ndarray, order: list, counts: np.ndarray, *,
               slide_rows: dict[str, np.ndarray], m: int, ood: np.ndarray,
               specimens: np.ndarray | None) -> np.ndarray:
    """(splits, 4) accuracies of one reshuffle: every split's probe, in- and out-of-domain."""
    splits = [split_rows(order, split_counts, slide_rows=slide_rows, m=m) for split_counts in counts]
    return np.array([_split_accuracies(features, classes, rows, ood=ood, specimens=specimens)
                     for rows in splits])


def average_performance_drop(
    features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray, slides: np.ndarray,
    specimens: np.ndarray | None = None, held_out: tuple[str, ...] = (), iterations: int = 20,
    min_test_slides: int = 2, max_balanced_slides: int | None = None, seed: int = PATHOROB_SEED,
) -> DropResult:
    """APD in- and out-of-domain over ``iterations`` reshuffles of the slides of each cell.

    ``held_out`` centres are the out-of-domain test and never trained on. ``slides`` are the
    sampling units (a slide's tiles move together, in row order); ``specimens`` enables the
    rescan-safe variant. Raises ValueError when a cell has too few slides for the design.
    """
    design = layout(classes=classes, centers=centers, slides=slides, held_out=held_out)
    m = balanced_slides(design.smallest_cell, n_centers=len(design.centers), min_test_slides=min_test_slides,
                        max_balanced=max_balanced_slides)
    counts = schedule(n_centers=len(design.centers), n_classes=len(design.classes), m=m)
    log.info("APD: %d in-domain centres x %d classes, %d balanced slides per cell, %d splits, %d iterations",
             len(design.centers), len(design.classes), m, len(counts), iterations)
    specimens = None if specimens is None else np.asarray(specimens).astype(str)
    # PathoROB's sklearn (< 1.8) fitted the probe in float64; sklearn ≥ 1.8 would keep float32
    features = np.asarray(features, dtype=np.float64)
    with single_threaded():  # small BLAS calls: threads only spin
        results = np.stack([_iteration(features, np.asarray(classes), order, counts,
                                       slide_rows=design.slide_rows, m=m, ood=design.ood_rows,
                                       specimens=specimens)
                            for order in shuffled_orders(design.cells, iterations=iterations, seed=seed)],
                           axis=1)
    return DropResult(*np.moveaxis(results, 2, 0))


def held_out_centers(centers: np.ndarray, configured: list[str]) -> tuple[str, ...]:
    """The configured held-out centres, else the last centre (sorted) when three or more exist:
    PathoROB keeps its out-of-domain centres fixed rather than rotating them."""
    names = sorted(set(np.asarray(centers).astype(str)))
    unknown = sorted(set(configured) - set(names))
    if unknown:
        raise ValueError(f"held-out centres {unknown} are not in the cohort's centres {names}")
    if configured:
        return tuple(configured)
    return (names[-1],) if len(names) >= 3 else ()

