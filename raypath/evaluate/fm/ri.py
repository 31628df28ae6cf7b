"""PathoROB's robustness index with its k chosen by kNN balanced accuracy, as a curve over k.

Among each sample's k nearest neighbours, SO counts same-class/other-center ones (biology wins)
and OS other-class/same-center ones (the center wins); RI = ΣSO / (ΣSO + ΣOS). RI depends on k,
so, as in PathoROB, k is the grid value where a kNN classifier of the biological class is most
accurate (the neighbourhood size at which the features are best used for biology), and the whole
curve is reported so a reader can see how stable RI is around it.

The neighbour search is `raypath.metrics.robustness.nearest_neighbours`: exact cosine kNN, blocked
(query block × key block matmul with a running top-k), so memory is O(block²) however many tiles;
it is run once at the largest k of the grid and every k is read off that one table. Compute is
still O(n²·d), which is why tile-level callers cap n with a stratified sample.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import balanced_accuracy_score

from raypath.metrics.robustness import nearest_neighbours

DEFAULT_K_GRID = (1, 3, 5, 7, 9, 11, 21, 31, 51, 75, 101, 151, 201)


@dataclass(frozen=True)
class RobustnessCurve:
    """RI and biological kNN balanced accuracy at each k of the grid, and the chosen k."""

    ks: np.ndarray
    robustness_index: np.ndarray
    balanced_accuracy: np.ndarray
    best_k: int

    @property
    def at_best(self) -> tuple[float, float]:
        """(RI, balanced accuracy) at the chosen k."""
        position = int(np.flatnonzero(self.ks == self.best_k)[0])
        return float(self.robustness_index[position]), float(self.balanced_accuracy[position])


def k_grid(*, classes: np.ndarray, groups: np.ndarray | None, grid: tuple[int, ...] = DEFAULT_K_GRID,
           ) -> np.ndarray:
    """Grid values every sample can fill: k ≤ smallest class size and ≤ n minus the largest group."""
    _, class_sizes = np.unique(classes, return_counts=True)
    largest_group = 1 if groups is None else int(np.unique(groups, return_counts=True)[1].max())
    cap = min(int(class_sizes.min()), len(classes) - largest_group)
    ks = np.array([k for k in grid if k <= cap], dtype=np.int64)
    if ks.size == 0:
        raise ValueError(f"no k in {grid} fits {len(classes)} samples (cap {cap}); need more samples")
    return ks


def _vote_counts(neighbour_classes: np.ndarray, *, n_classes: int, ks: np.ndarray) -> np.ndarray:
    """(n, len(ks), n_classes) votes among the first k neighbours, ties broken toward nearer ones."""
    kmax = neighbour_classes.shape[1]
    closeness = (kmax - np.arange(kmax)) / (kmax * (kmax + 1))  # sums to < 1: never beats a vote
    votes = np.empty((len(neighbour_classes), len(ks), n_classes), dtype=np.float64)
    for label in range(n_classes):
        hit = neighbour_classes == label
        votes[:, :, label] = (np.cumsum(hit, axis=1)[:, ks - 1]
                              + np.cumsum(hit * closeness, axis=1)[:, ks - 1])
    return votes


def _block_counts(idx: np.ndarray, *, rows: slice,
                  class_codes: np.ndarray, center_codes: np.ndarray, ks: np.ndarray,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ΣSO and ΣOS per k, and kNN predictions per k, for one block of query rows."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    same_class = (class_codes[safe] == class_codes[rows, None]) & valid
    same_center = (center_codes[safe] == center_codes[rows, None]) & valid
    so = np.cumsum(same_class & ~same_center, axis=1)[:, ks - 1].sum(axis=0)
    os_ = np.cumsum(~same_class & same_center, axis=1)[:, ks - 1].sum(axis=0)
    votes = _vote_counts(np.where(valid, class_codes[safe], -1), n_classes=int(class_codes.max()) + 1,
                         ks=ks)
    return so, os_, votes.argmax(axis=2)


def curve_from_neighbours(neighbours: np.ndarray, *, classes: np.ndarray, centers: np.ndarray,
                          ks: np.ndarray, row_block: int = 65536) -> RobustnessCurve:
    """RI and kNN balanced accuracy for every k from one (n, ≥max k) neighbour index table.

    Rows are processed in blocks so the (n, k) boolean/cumulative arrays stay small for n in the
    millions.
    """
    class_codes = np.unique(classes, return_inverse=True)[1]
    center_codes = np.unique(centers, return_inverse=True)[1]
    kmax = int(ks.max())
    so, os_ = np.zeros(len(ks)), np.zeros(len(ks))
    predicted = np.empty((len(classes), len(ks)), dtype=np.int64)
    for start in range(0, len(classes), row_block):
        rows = slice(start, start + row_block)
        block_so, block_os, predicted[rows] = _block_counts(
            neighbours[rows, :kmax], rows=rows, class_codes=class_codes, center_codes=center_codes, ks=ks)
        so, os_ = so + block_so, os_ + block_os
    total = so + os_
    ri = np.divide(so, total, out=np.full(len(ks), np.nan), where=total > 0)
    accuracy = np.array([balanced_accuracy_score(class_codes, predicted[:, j]) for j in range(len(ks))])
    best = int(ks[int(np.argmax(accuracy))])  # argmax takes the smallest k among ties
    return RobustnessCurve(ks=ks, robustness_index=ri, balanced_accuracy=accuracy, best_k=best)


def robustness_curve(features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray,
                     groups: np.ndarray | None = None, grid: tuple[int, ...] = DEFAULT_K_GRID,
                     query_block: int = 1024, key_block: int = 65536) -> RobustnessCurve:
    """Blocked exact kNN once at the largest usable k, then the whole curve from its table.

    ``groups`` (specimen ids) excludes same-group neighbours; pass None for the "no exclusion"
    variant (only a sample itself is excluded).
    """
    ks = k_grid(classes=classes, groups=groups, grid=grid)
    neighbours = nearest_neighbours(features, k=int(ks.max()), groups=groups, query_block=query_block,
                                    key_block=key_block)
    return curve_from_neighbours(neighbours, classes=classes, centers=centers, ks=ks)
