"""raypath's ARI and silhouette are scikit-learn's: the ARI to the last bit (the same integer pair
counts), the silhouette to float32 rounding (per-cluster sums as one matrix product)."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, pairwise_distances, silhouette_score

from raypath.evaluate_fm.cluster_scores import adjusted_rand_index, silhouette


def test_adjusted_rand_index_equals_scikit_learn_bit_for_bit():
    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, 3, 97), rng.integers(0, 7, 97)),
             (rng.integers(0, 2, 50), rng.integers(0, 2, 50)),
             (np.array(["b", "a", "c", "a", "b"]), np.array([2, 2, 0, 1, 1])),
             (np.zeros(7, int), np.array([0, 0, 1, 0, 1, 0, 0])),  # one true class
             (np.arange(6) % 2, np.arange(6) % 2)]  # identical clusterings
    for truth, predicted in cases:
        assert adjusted_rand_index(truth, predicted) == adjusted_rand_score(truth, predicted)


def test_silhouette_equals_scikit_learns_on_k_means_labelings():
    rng = np.random.default_rng(1)
    points = (rng.normal(size=(150, 6)) + 2 * rng.integers(0, 3, 150)[:, None]).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    distances = pairwise_distances(points, metric="cosine")
    for k in (2, 3, 7, 40):  # k = 40 leaves clusters of one sample (silhouette 0)
        labels = KMeans(n_clusters=k, init="random", n_init=2, random_state=k).fit(points).labels_
        expected = silhouette_score(distances, labels, metric="precomputed")
        assert silhouette(distances.astype(np.float64), labels) == pytest.approx(expected, abs=1e-6)
