"""Clustering score: do unsupervised k-means clusters of the features follow biology or the centre?

PathoROB's protocol (bifold-pathomics/PathoROB, ``clustering_score``), the default here: every
subset of two classes × two centres is clustered on its own (so K = 2 can separate either factor);
features are L2-normalised; K in [2, 30] maximises the cosine silhouette of a k-means with 20
random initialisations; then 50 k-means runs (5 random initialisations each, seeds 1337 + t) give
CS = ARI(clusters, class) − ARI(clusters, centre), averaged over runs, then over subsets. In
[−1, 1]: positive when clusters track biology, negative when they track the scanner or site.
Subsets take classes and centres in order of appearance and rows cell by cell, as PathoROB reads
its metadata, so the same random inits see the same points.
"""

from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

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


def choose_k(unit: np.ndarray, *, k_min: int, k_max: int, restarts: int, seed: int) -> int:
    """The K in [k_min, k_max] whose k-means (random init) has the best cosine silhouette."""
    ks = range(k_min, min(k_max, len(unit) - 1) + 1)
    scores = [silhouette_score(unit, KMeans(n_clusters=k, random_state=seed, init="random",
                                            n_init=restarts).fit(unit).labels_, metric="cosine")
              for k in ks]
    return ks[int(np.argmax(scores))]


def _subset_aris(unit: np.ndarray, classes: np.ndarray, centers: np.ndarray, *, k: int, trials: int,
                 restarts: int, seed: int) -> tuple[float, float]:
    """Mean ARI with the classes and with the centres over ``trials`` k-means runs."""
    aris = np.empty((trials, 2))
    for trial in range(trials):
        model = KMeans(n_clusters=k, random_state=seed + trial, n_init=restarts, init="random")
        labels = model.fit(unit).labels_
        aris[trial] = adjusted_rand_score(classes, labels), adjusted_rand_score(centers, labels)
    return tuple(aris.mean(axis=0))


def clustering_score(
    features: np.ndarray, *, classes: np.ndarray, centers: np.ndarray, k_min: int = 2, k_max: int = 30,
    silhouette_restarts: int = 20, trials: int = 50, trial_restarts: int = 5, max_per_cell: int | None = None,
    seed: int = PATHOROB_SEED,
) -> ClusteringResult:
    """PathoROB's clustering score over every two-class × two-centre subset with all four cells.

    k-means and silhouette run single-threaded: on a few thousand points threads gain little, and
    on a busy machine their spinning workers made k-means ~15× slower.
    """
    classes, centers = np.asarray(classes), np.asarray(centers)
    rng = np.random.default_rng(seed)
    names, ks, ari_classes, ari_centers = [], [], [], []
    with threadpool_limits(limits=1):
        for pair, sites in product(combinations(pd.unique(classes), 2), combinations(pd.unique(centers), 2)):
            rows = _subset_rows(classes, centers, pair, sites, max_per_cell=max_per_cell, rng=rng)
            if rows is None:
                continue
            z = np.asarray(features[rows])
            unit = z / np.sqrt((z ** 2).sum(axis=1))[:, None]
            k = choose_k(unit, k_min=k_min, k_max=k_max, restarts=silhouette_restarts, seed=seed)
            ari_class, ari_center = _subset_aris(unit, classes[rows], centers[rows], k=k, trials=trials,
                                                 restarts=trial_restarts, seed=seed)
            names.append("-".join(map(str, (*pair, *sites))))
            ks.append(k)
            ari_classes.append(ari_class)
            ari_centers.append(ari_center)
    if not names:
        raise ValueError("no two classes share two centres: the clustering score needs such a subset")
    return ClusteringResult(subsets=names, ks=np.array(ks), ari_classes=np.array(ari_classes),
                            ari_centers=np.array(ari_centers))
