"""Clustering score: do unsupervised k-means clusters of the features follow biology or the centre?

PathoROB's protocol (bifold-pathomics/PathoROB, ``clustering_score``), the default here: every
subset of two classes × two centres is clustered on its own (so K = 2 can separate either factor);
features are L2-normalised; K in [2, 30] maximises the cosine silhouette of a k-means with 20
random initialisations; then 50 k-means runs (5 random initialisations each, seeds 1337 + t) give
CS = ARI(clusters, class) − ARI(clusters, centre), averaged over runs, then over subsets. In
[−1, 1]: positive when clusters track biology, negative when they track the scanner or site.
Subsets take classes and centres in order of appearance and rows cell by cell, as PathoROB reads
its metadata, so the same random inits see the same points.

Cost: the k-means runs are scikit-learn's own (so their labels are PathoROB's); around them, the
cosine distances of a subset are computed once, in the row chunks scikit-learn's silhouette would
use, and every K's silhouette and every run's ARIs are read off them without scikit-learn's per-call
overhead (`cluster_scores`, equal to scikit-learn's). Everything runs single-threaded: on a few
thousand points threads gain little, and on a busy machine their spinning made k-means ~15x slower.
"""

import logging
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_chunked

from raypath.evaluate_fm.cluster_scores import adjusted_rand_index, silhouette
from raypath.evaluate_fm.parallel import single_threaded

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
    a silhouette on them equals one computed from the features."""
    return np.vstack(list(pairwise_distances_chunked(unit, metric="cosine")))


def _labels(unit: np.ndarray, *, k: int, restarts: int, seed: int) -> np.ndarray:
    return KMeans(n_clusters=k, random_state=seed, init="random", n_init=restarts).fit(unit).labels_


def choose_k(unit: np.ndarray, *, k_min: int, k_max: int, restarts: int, seed: int) -> int:
    """The K in [k_min, k_max] whose k-means (random init) has the best cosine silhouette (the first
    best K wins)."""
    distances = cosine_distances(unit).astype(np.float64)  # one cast shared by every K
    ks = list(range(k_min, min(k_max, len(unit) - 1) + 1))
    scores = [silhouette(distances, _labels(unit, k=k, restarts=restarts, seed=seed)) for k in ks]
    return ks[int(np.argmax(scores))]


def _mean_aris(unit: np.ndarray, classes: np.ndarray, centers: np.ndarray, *, k: int, restarts: int,
               seed: int, trials: int) -> tuple[float, float]:
    """ARI(clusters, class) and ARI(clusters, centre), each averaged over `trials` seeded runs."""
    aris = []
    for trial in range(trials):
        labels = _labels(unit, k=k, restarts=restarts, seed=seed + trial)
        aris.append((adjusted_rand_index(classes, labels), adjusted_rand_index(centers, labels)))
    aris = np.array(aris)
    return float(aris[:, 0].mean()), float(aris[:, 1].mean())


def clustering_score(
    features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray, k_min: int = 2, k_max: int = 30,
    silhouette_restarts: int = 20, trials: int = 50, trial_restarts: int = 5, max_per_cell: int | None = None,
    seed: int = PATHOROB_SEED,
) -> ClusteringResult:
    """PathoROB's clustering score over every two-class × two-centre subset with all four cells."""
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
    ks, aris = [], []
    with single_threaded():
        for unit, subset_classes, subset_centers in subsets:
            ks.append(choose_k(unit, k_min=k_min, k_max=k_max, restarts=silhouette_restarts, seed=seed))
            aris.append(_mean_aris(unit, subset_classes, subset_centers, k=ks[-1], restarts=trial_restarts,
                                   seed=seed, trials=trials))
    aris = np.array(aris)
    return ClusteringResult(subsets=names, ks=np.array(ks), ari_classes=aris[:, 0], ari_centers=aris[:, 1])
