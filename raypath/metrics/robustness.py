"""Cross-scanner robustness metrics: does the model's answer change when the same tissue is
rescanned, and how much scanner information is left in its embeddings?"""


import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from raypath.metrics.task import balanced_accuracy


def score_spread(scores: np.ndarray, specimens: np.ndarray) -> float:
    """Mean over specimens with ≥2 scans of the std (ddof 0) of their scores across scans.

    `scores` (n,) or (n, c); for c > 1 the per-column stds are averaged.
    """
    values = np.asarray(scores, dtype=float).reshape(len(specimens), -1)
    frame = pd.DataFrame(values).assign(_spec=np.asarray(specimens))
    grouped = frame.groupby("_spec")
    sizes = grouped.size()
    stds = grouped.std(ddof=0).mean(axis=1)[sizes >= 2]
    return float(stds.mean()) if len(stds) else float("nan")


def flip_rate(decisions: np.ndarray, specimens: np.ndarray) -> float:
    """Share of specimens with ≥2 scans whose decision differs between any two of their scans."""
    frame = pd.DataFrame({"d": np.asarray(decisions), "s": np.asarray(specimens)})
    grouped = frame.groupby("s")["d"]
    paired = grouped.size() >= 2
    flips = (grouped.nunique() > 1)[paired]
    return float(flips.mean()) if len(flips) else float("nan")


def scanner_probe(
    embeddings: np.ndarray, scanners: np.ndarray, *, folds: int = 5, seed: int = 0,
) -> tuple[float, float]:
    """(balanced accuracy, chance) of a cross-validated linear probe predicting the scanner.

    Chance (1 / n_scanners for balanced accuracy) is the ideal: no scanner information left.
    The probe is a ridge classifier (one linear solve per fold): as linear as a logistic probe,
    and ~100x cheaper, which matters when every sweep trial reports it.
    """
    scanners = np.asarray(scanners)
    classes, counts = np.unique(scanners, return_counts=True)
    if len(classes) < 2:
        return float("nan"), float("nan")
    splits = int(min(folds, counts.min()))
    if splits < 2:
        return float("nan"), 1.0 / len(classes)
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
    predicted = cross_val_predict(probe, np.asarray(embeddings, float), scanners, cv=cv)
    return balanced_accuracy(scanners, predicted), 1.0 / len(classes)


def nearest_neighbours(
    embeddings: np.ndarray | torch.Tensor, *, k: int, groups: np.ndarray | None = None,
    query_block: int = 1024, key_block: int = 65536,
) -> np.ndarray:
    """(n, k) int64 indices of each sample's k most cosine-similar samples, best first; −1 = none.

    Neighbours in the sample's own group (default: only itself) are excluded. Exact and blocked:
    queries × key blocks via matmul with a running top-k, so memory is O(query_block × key_block)
    however many samples (millions of tiles); compute stays O(n² d).
    """
    z = torch.nn.functional.normalize(torch.as_tensor(np.asarray(embeddings), dtype=torch.float32), dim=1)
    grp = (torch.as_tensor(pd.factorize(np.asarray(groups))[0]) if groups is not None
           else torch.arange(len(z)))
    out = np.empty((len(z), k), dtype=np.int64)
    for start in range(0, len(z), query_block):
        stop = min(start + query_block, len(z))
        out[start:stop] = _topk_neighbours(z, start, stop, k=k, groups=grp, key_block=key_block).numpy()
    return out


def robustness_index(
    embeddings: np.ndarray | torch.Tensor, classes: np.ndarray, centers: np.ndarray, *, k: int,
    groups: np.ndarray | None = None, query_block: int = 1024, key_block: int = 65536,
) -> float:
    """PathoROB robustness index RI = ΣSO / (ΣSO + ΣOS) over each sample's k nearest neighbours.

    SO: neighbour of the same class from another center (scanner); OS: other class, same center.
    Cosine kNN on L2-normalised embeddings (``nearest_neighbours``, blocked). ``groups`` (e.g.
    specimen ids) excludes neighbours of the sample's own group, so a rescan of the same tissue
    cannot count as a neighbour. NaN when no neighbour is SO or OS.
    """
    neighbours = nearest_neighbours(embeddings, k=k, groups=groups, query_block=query_block,
                                    key_block=key_block)
    cls, cen = (pd.factorize(np.asarray(a))[0] for a in (classes, centers))
    valid = neighbours >= 0
    safe = np.where(valid, neighbours, 0)
    same_class, same_center = cls[safe] == cls[:, None], cen[safe] == cen[:, None]
    so = int((same_class & ~same_center & valid).sum())
    os_ = int((~same_class & same_center & valid).sum())
    return so / (so + os_) if so + os_ else float("nan")


def _topk_neighbours(z: torch.Tensor, start: int, stop: int, *, k: int, groups: torch.Tensor,
                     key_block: int) -> torch.Tensor:
    """Indices (stop−start, k) of the most similar keys outside each query's own group (−1 = none)."""
    best_sim = torch.full((stop - start, k), -torch.inf)
    best_idx = torch.full((stop - start, k), -1, dtype=torch.int64)
    query_groups = groups[start:stop, None]
    for key_start in range(0, len(z), key_block):
        key_stop = min(key_start + key_block, len(z))
        sims = z[start:stop] @ z[key_start:key_stop].T
        sims = sims.masked_fill(groups[None, key_start:key_stop] == query_groups, -torch.inf)
        idx = torch.arange(key_start, key_stop).expand_as(sims)
        merged = torch.cat([best_sim, sims], dim=1)
        top = merged.topk(k, dim=1)
        best_sim, best_idx = top.values, torch.cat([best_idx, idx], dim=1).gather(1, top.indices)
    return torch.where(torch.isfinite(best_sim), best_idx, -1)
