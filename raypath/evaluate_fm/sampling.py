"""Stratified subsampling, so a capped sample keeps every (class, center) cell represented."""

import numpy as np


def stratified_sample(strata: np.ndarray, *, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` rows, spread as evenly as possible over strata.

    Small strata are kept whole and their unused share goes to the larger ones (water filling),
    so a rare (class, center) cell is not starved by a proportional draw.
    """
    n = len(strata)
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    _, codes = np.unique(np.asarray(strata), return_inverse=True)
    members = [np.flatnonzero(codes == c) for c in range(codes.max() + 1)]
    quota = _water_fill(np.array([len(m) for m in members]), max_samples)
    chosen = [rng.choice(m, size=q, replace=False) for m, q in zip(members, quota, strict=True)]
    return np.sort(np.concatenate(chosen))


def _water_fill(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Per-stratum counts summing to ``budget`` with no stratum above its size."""
    quota = np.zeros_like(sizes)
    remaining = budget
    open_strata = list(np.argsort(sizes))
    while open_strata and remaining > 0:
        share = remaining // len(open_strata)
        smallest = open_strata[0]
        if sizes[smallest] - quota[smallest] <= share:
            remaining -= sizes[smallest] - quota[smallest]
            quota[smallest] = sizes[smallest]
            open_strata.pop(0)
            continue
        for index in open_strata:
            quota[index] += share
        remaining -= share * len(open_strata)
        for index in open_strata[:remaining]:  # hand out the remainder one each
            quota[index] += 1
        remaining = 0
    return quota


def cell_labels(classes: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """One stratum label per (class, center) pair, unambiguous for any label strings."""
    pairs = np.stack([np.asarray(classes).astype(str), np.asarray(centers).astype(str)], axis=1)
    return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1)
