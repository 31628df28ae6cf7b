"""Clustering score: do unsupervised k-means clusters of the features follow biology or the centre?

PathoROB's protocol (bifold-pathomics/PathoROB, ``clustering_score``), the default here: every
subset of two classes × two centres is clustered on its own (so K = 2 can separate either factor);
features are L2-normalised; K in [2, 30] maximises the cosine silhouette of a k-means with 20
random initialisations; then 50 k-means runs (5 random initialisations each, seeds 1337 + t) give
CS = ARI(clusters, class) − ARI(clusters, centre), averaged over runs, then over subsets. In
[−1, 1]: positive when clusters track biology, negative when they track the scanner or site.
Subsets take classes and centres in order of appearance and rows cell by cell, as PathoROB reads
its metadata, so the same random inits see the same points.

Cost: the k-means runs are independent (each seeded), so they run on `workers` processes; the
cosine distances of a subset are computed once, in the same row chunks scikit-learn's silhouette
would use, and shared by all K (bit-identical silhouettes).
"""

import logging
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, pairwise_distances_chunked, silhouette_score
from threadpoolctl import threadpool_limits

from raypath.evaluate.fm.parallel import run_tasks

log = logging.getLogger(__name__)
PATHOROB_SEED = 1337


@dataclass(frozen=True)
class ClusteringResult:
    """Per subset (two classes × two centres): the chosen K and the mean ARIs over runs."""

    subsets: list[str]
    ks: np.ndarray
    ari_classes: np.ndarray
    ari_centers: np.ndarray

    @property
    def ari_class(self) -> float:
        return float(np.mean(self.ari_classes))

    @property
    def ari_center(self) -> float:
        return float(np.mean(self.ari_centers))

    @property
    def score(self) -> float:
        """CS: mean over subsets of mean over runs of ARI(class) − ARI(centre)."""
        return float(np.mean(self.ari_classes - self.ari_centers))

    @property
    def k(self) -> int:
        """Median chosen K over subsets."""
        return int(np.median(self.ks))


def _subset_rows(classes: np.ndarray, centers: np.ndarray, pair: tuple, sites: tuple,
                 *, max_per_cell: int | None, rng: np.random.Generator) -> np.ndarray | None:
    """Rows of the four cells (class 1 × site 1, class 1 × site 2, ...), None if one is empty.
    Above ``max_per_cell`` a cell keeps a random sample in row order (PathoROB's reduced sets)."""
    cells = []
    for label, site in product(pair, sites):
        rows = np.flatnonzero((classes == label) & (centers == site))
        if rows.size == 0:
            return None
        if max_per_cell is not None and rows.size > max_per_cell:
            rows = np.sort(rng.choice(rows, size=max_per_cell, replace=False))
        cells.append(rows)
    return np.concatenate(cells)


def cosine_distances(unit: np.ndarray) -> np.ndarray:
    """All pairwise cosine distances, in the row chunks `silhouette_score(metric="cosine")` uses, so
    a silhouette on them equals one computed from the features to the last bit."""
    with threadpool_limits(limits=1):
        return np.vstack(list(pairwise_distances_chunked(unit, metric="cosine")))


def _silhouette(unit: np.ndarray, distances: np.ndarray, k: int, restarts: int, seed: int) -> float:
    labels = KMeans(n_clusters=k, random_state=seed, init="random", n_init=restarts).fit(unit).labels_
    return float(silhouette_score(distances, labels, metric="precomputed"))


def _aris(unit: np.ndarray, classes: np.ndarray, centers: np.ndarray, k: int, restarts: int,
          seed: int) -> tuple[float, float]:
    labels = KMeans(n_clusters=k, random_state=seed, n_init=restarts, init="random").fit(unit).labels_
    return adjusted_rand_score(classes, labels), adjusted_rand_score(centers, labels)


def choose_ks(units: list[np.ndarray], *, k_min: int, k_max: int, restarts: int, seed: int,
              workers: int) -> list[int]:
    """Per subset, the K in [k_min, k_max] whose k-means (random init) has the best cosine
    silhouette (the first best K wins); all (subset, K) runs share one pool."""
    distances = [cosine_distances(unit) for unit in units]
    grids = [list(range(k_min, min(k_max, len(unit) - 1) + 1)) for unit in units]
    tasks = [(unit, d, k, restarts, seed) for unit, d, ks in zip(units, distances, grids, strict=True)
             for k in ks]
    scores = iter(run_tasks(_silhouette, tasks, workers=workers, desc="clustering: choose K"))
    return [ks[int(np.argmax([next(scores) for _ in ks]))] for ks in grids]


def clustering_score(
    features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray, k_min: int = 2, k_max: int = 30,
    silhouette_restarts: int = 20, trials: int = 50, trial_restarts: int = 5, max_per_cell: int | None = None,
    seed: int = PATHOROB_SEED, workers: int = 1,
) -> ClusteringResult:
    """PathoROB's clustering score over every two-class × two-centre subset with all four cells.

    Every k-means runs single-threaded (on a few thousand points threads gain little, and on a busy
    machine their spinning made k-means ~15× slower); independent runs share `workers` processes.
    """
    classes, centers = np.asarray(classes), np.asarray(centers)
    rng = np.random.default_rng(seed)
    names, subsets = [], []
    for pair, sites in product(combinations(pd.unique(classes), 2), combinations(pd.unique(centers), 2)):
        rows = _subset_rows(classes, centers, pair, sites, max_per_cell=max_per_cell, rng=rng)
        if rows is None:
            continue
        z = np.asarray(features[rows])
        names.append("-".join(map(str, (*pair, *sites))))
        subsets.append((z / np.sqrt((z ** 2).sum(axis=1))[:, None], classes[rows], centers[rows]))
    if not names:
        raise ValueError("no two classes share two centres: the clustering score needs such a subset")
    ks = choose_ks([unit for unit, _, _ in subsets], k_min=k_min, k_max=k_max, restarts=silhouette_restarts,
                   seed=seed, workers=workers)
    tasks = [(unit, c, s, k, trial_restarts, seed + trial)
             for (unit, c, s), k in zip(subsets, ks, strict=True) for trial in range(trials)]
    aris = np.array(run_tasks(_aris, tasks, workers=workers, desc="clustering: ARIs")).reshape(len(names),
                                                                                              trials, 2)
    return ClusteringResult(subsets=names, ks=np.array(ks), ari_classes=aris[:, :, 0].mean(axis=1),
                            ari_centers=aris[:, :, 1].mean(axis=1))
