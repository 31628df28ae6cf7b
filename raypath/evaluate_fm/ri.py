"""PathoROB's robustness index: the k grid, the kNN vote and the choice of k as its code runs them.

Among each sample's k nearest neighbours, SO counts same-class/other-center ones (biology wins)
and OS other-class/same-center ones (the center wins); RI = ΣSO / (ΣSO + ΣOS). RI depends on k, so
k is the grid value where a kNN classifier of the biological class has the best balanced accuracy.
PathoROB's protocol (bifold-pathomics/PathoROB, ``robustness_index``), the default here:
- grid 1, 3, 5, 7, 9, then 11, 21, 31, ... below a cap (600 for Camelyon and TCGA, 1000 for
  Tolkach), keeping the k that every sample can fill once its own slide is excluded;
- neighbours from the sample's own slide are excluded (at slide level that is the sample itself);
- the kNN vote is the mode of the neighbours' labels, a tie going to the smallest label;
- the first k of the grid with the best balanced accuracy wins.
raypath's variants (same-specimen exclusion across rescans, its own grid with ties broken toward
nearer neighbours) are the same function with other arguments, reported beside it.

The neighbour search is `raypath.metrics.robustness.nearest_neighbours`: exact cosine kNN, blocked
(query block × key block matmul with a running top-k), so memory is O(block²) however many tiles;
it runs once at the largest k and every k is read off that one table. Variants that exclude
coarser groups (specimens, which hold whole slides) are read off the same search: it looks far
enough to still hold k neighbours once a sample's other same-specimen slides are dropped.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from raypath.evaluate_fm.accuracy import balanced_accuracy
from raypath.metrics.robustness import nearest_neighbours

PATHOROB_K_CAP = 600
RAYPATH_K_GRID = (1, 3, 5, 7, 9, 11, 21, 31, 51, 75, 101, 151, 201)
TieRule = Literal["smallest", "nearest"]


def pathorob_k_grid(cap: int = PATHOROB_K_CAP) -> tuple[int, ...]:
    """1, 3, 5, 7, 9, then 11, 21, ... below ``cap``: the grid PathoROB searches."""
    return (*(k for k in (1, 3, 5, 7, 9) if k < cap), *range(11, cap, 10))


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


def usable_ks(grid: tuple[int, ...], *, classes: np.ndarray, groups: np.ndarray | None,
              class_cap: bool = False) -> np.ndarray:
    """Grid values every sample can fill: k ≤ n minus the largest excluded group (PathoROB's cap);
    with ``class_cap`` (raypath's earlier rule) also k ≤ the smallest class."""
    largest_group = 1 if groups is None else int(np.unique(groups, return_counts=True)[1].max())
    cap = len(classes) - largest_group
    if class_cap:
        cap = min(cap, int(np.unique(classes, return_counts=True)[1].min()))
    ks = np.array([k for k in grid if k <= cap], dtype=np.int64)
    if ks.size == 0:
        raise ValueError(f"no k in {grid[:6]}... fits {len(classes)} samples (cap {cap}); need more samples")
    return ks


def _vote_counts(neighbour_classes: np.ndarray, *, n_classes: int, ks: np.ndarray,
                 tie_rule: TieRule) -> np.ndarray:
    """(n, len(ks), n_classes) votes among the first k neighbours. argmax over them takes the
    smallest label among tied counts ("smallest", PathoROB's mode); "nearest" adds a closeness
    bonus below one vote, so a tie goes to the class of the nearer neighbours."""
    kmax = neighbour_classes.shape[1]
    closeness = (kmax - np.arange(kmax)) / (kmax * (kmax + 1))  # sums to < 1: never beats a vote
    votes = np.empty((len(neighbour_classes), len(ks), n_classes), dtype=np.float64)
    for label in range(n_classes):
        hit = neighbour_classes == label
        votes[:, :, label] = np.cumsum(hit, axis=1)[:, ks - 1]
        if tie_rule == "nearest":
            votes[:, :, label] += np.cumsum(hit * closeness, axis=1)[:, ks - 1]
    return votes


def _block_counts(idx: np.ndarray, *, rows: slice, class_codes: np.ndarray, center_codes: np.ndarray,
                  ks: np.ndarray, tie_rule: TieRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ΣSO and ΣOS per k, and kNN predictions per k, for one block of query rows."""
    valid = idx >= 0
    safe = np.where(valid, idx, 0)
    same_class = (class_codes[safe] == class_codes[rows, None]) & valid
    same_center = (center_codes[safe] == center_codes[rows, None]) & valid
    so = np.cumsum(same_class & ~same_center, axis=1)[:, ks - 1].sum(axis=0)
    os_ = np.cumsum(~same_class & same_center, axis=1)[:, ks - 1].sum(axis=0)
    votes = _vote_counts(np.where(valid, class_codes[safe], -1), n_classes=int(class_codes.max()) + 1,
                         ks=ks, tie_rule=tie_rule)
    return so, os_, votes.argmax(axis=2)


def curve_from_neighbours(neighbours: np.ndarray, *, classes: np.ndarray, centers: np.ndarray,
                          ks: np.ndarray, tie_rule: TieRule = "smallest",
                          row_block: int = 65536) -> RobustnessCurve:
    """RI and kNN balanced accuracy for every k from one (n, ≥max k) neighbour index table.

    Rows are processed in blocks so the (n, k) boolean/cumulative arrays stay small for n in the
    millions. Labels are coded in sorted order, as PathoROB's label encoder does.
    """
    class_codes = np.unique(classes, return_inverse=True)[1]
    center_codes = np.unique(centers, return_inverse=True)[1]
    kmax = int(ks.max())
    so, os_ = np.zeros(len(ks)), np.zeros(len(ks))
    predicted = np.empty((len(classes), len(ks)), dtype=np.int64)
    for start in range(0, len(classes), row_block):
        rows = slice(start, start + row_block)
        block_so, block_os, predicted[rows] = _block_counts(
            neighbours[rows, :kmax], rows=rows, class_codes=class_codes, center_codes=center_codes, ks=ks,
            tie_rule=tie_rule)
        so, os_ = so + block_so, os_ + block_os
    total = so + os_
    ri = np.divide(so, total, out=np.full(len(ks), np.nan), where=total > 0)
    accuracy = np.array([balanced_accuracy(class_codes, predicted[:, j]) for j in range(len(ks))])
    best = int(ks[int(np.argmax(accuracy))])  # argmax takes the smallest k among ties
    return RobustnessCurve(ks=ks, robustness_index=ri, balanced_accuracy=accuracy, best_k=best)


@dataclass(frozen=True)
class Variant:
    """One RI protocol: which neighbours are excluded (`groups`; None = the sample itself), the k
    grid (or a fixed `k`), the vote's tie rule and whether k is capped at the smallest class."""

    groups: np.ndarray | None
    grid: tuple[int, ...] | None = None
    k: int | None = None
    tie_rule: TieRule = "smallest"
    class_cap: bool = False


def robustness_curve(features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray,
                     groups: np.ndarray | None = None, grid: tuple[int, ...] | None = None,
                     k: int | None = None, tie_rule: TieRule = "smallest", class_cap: bool = False,
                     query_block: int = 1024, key_block: int = 65536) -> RobustnessCurve:
    """Blocked exact kNN once at the largest usable k, then the whole curve from its table.

    ``groups`` are excluded as neighbours: slide ids for PathoROB, specimen ids to keep rescans of
    one tissue out; None excludes only the sample itself. ``grid`` defaults to PathoROB's (cap 600);
    a fixed ``k`` reports RI there instead of choosing it (PathoROB's ``k_opt_param``).
    """
    variant = Variant(groups=groups, grid=grid, k=k, tie_rule=tie_rule, class_cap=class_cap)
    return robustness_curves(features, classes=classes, centers=centers, variants={"curve": variant},
                             query_block=query_block, key_block=key_block)["curve"]


def robustness_curves(features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray,
                      variants: dict[str, Variant], query_block: int = 1024,
                      key_block: int = 65536) -> dict[str, RobustnessCurve]:
    """Every variant's curve from one neighbour search. The search excludes the first variant's
    groups (the finest: slides) and reaches far enough for the others, whose groups must each be
    unions of those (specimens); a variant that is not gets a search of its own."""
    ks = {name: usable_ks((v.k,) if v.k is not None else v.grid or pathorob_k_grid(), classes=classes,
                          groups=v.groups, class_cap=v.class_cap) for name, v in variants.items()}
    fine = next(iter(variants.values())).groups
    shared = {name for name, v in variants.items() if v.groups is fine
              or (fine is not None and v.groups is not None and nested(fine, v.groups))}
    reach = max(int(ks[name].max()) + (0 if variants[name].groups is fine
                                       else extra_reach(fine, variants[name].groups)) for name in shared)
    table = nearest_neighbours(features, k=reach, groups=fine, query_block=query_block, key_block=key_block)
    curves = {}
    for name, variant in variants.items():
        kmax = int(ks[name].max())
        if name not in shared:
            neighbours = nearest_neighbours(features, k=kmax, groups=variant.groups, query_block=query_block,
                                            key_block=key_block)
        elif variant.groups is fine:
            neighbours = table[:, :kmax]
        else:
            neighbours = exclude_coarser(table, coarse=np.asarray(variant.groups), k=kmax)
        curves[name] = curve_from_neighbours(neighbours, classes=classes, centers=centers, ks=ks[name],
                                             tie_rule=variant.tie_rule)
    return curves


def extra_reach(fine: np.ndarray, coarse: np.ndarray) -> int:
    """How many more neighbours a search excluding `fine` groups must return so that dropping each
    sample's other `coarse`-group members still leaves as many: the most samples any one sample
    shares a coarse group with but not a fine one."""
    fine_size = pd.Series(fine).map(pd.Series(fine).value_counts()).to_numpy()
    coarse_size = pd.Series(coarse).map(pd.Series(coarse).value_counts()).to_numpy()
    return int((coarse_size - fine_size).max(initial=0))


def nested(fine: np.ndarray, coarse: np.ndarray) -> bool:
    """Whether every `fine` group lies inside one `coarse` group (a slide in one specimen)."""
    return bool((pd.DataFrame({"f": fine, "c": coarse}).groupby("f")["c"].nunique() == 1).all())


def exclude_coarser(neighbours: np.ndarray, *, coarse: np.ndarray, k: int) -> np.ndarray:
    """The first `k` neighbours outside each sample's `coarse` group, in similarity order (−1 = none)."""
    valid = neighbours >= 0
    drop = ~valid | (coarse[np.where(valid, neighbours, 0)] == coarse[:, None])
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(neighbours, order, axis=1)
    return np.where(np.take_along_axis(drop, order, axis=1), -1, kept)
