import numpy as np
import pytest

from raypath.metrics.robustness import flip_rate, robustness_index, scanner_probe, score_spread


def test_score_spread_by_hand():
    scores = np.array([0.2, 0.4, 0.9, 0.9, 0.5])
    specimens = np.array(["a", "a", "b", "b", "c"])  # c has one scan: ignored
    assert score_spread(scores, specimens) == pytest.approx((0.1 + 0.0) / 2)
    probs = np.array([[0.2, 0.8], [0.4, 0.6]])
    assert score_spread(probs, np.array(["a", "a"])) == pytest.approx(0.1)


def test_flip_rate_by_hand():
    decisions = np.array([1, 0, 1, 1, 1, 0, 0, 1])
    specimens = np.array(["a", "a", "b", "b", "b", "c", "c", "d"])
    assert flip_rate(decisions, specimens) == pytest.approx(1 / 3)


def _brute_force_ri(z, classes, centers, k, groups):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    so = os_ = 0
    for i in range(len(z)):
        sims = z @ z[i]
        sims[groups == groups[i]] = -np.inf
        for j in np.argsort(-sims, kind="stable")[:k]:
            so += classes[j] == classes[i] and centers[j] != centers[i]
            os_ += classes[j] != classes[i] and centers[j] == centers[i]
    return so / (so + os_)


def test_robustness_index_matches_brute_force_and_blocking_changes_nothing():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(60, 5))
    classes, centers = rng.integers(0, 2, 60), rng.integers(0, 3, 60)
    groups = np.arange(60) // 2
    expected = _brute_force_ri(z, classes, centers, 5, groups)
    assert robustness_index(z, classes, centers, k=5, groups=groups) == pytest.approx(expected)
    blocked = robustness_index(z, classes, centers, k=5, groups=groups, query_block=7, key_block=11)
    assert blocked == pytest.approx(expected)


def test_robustness_index_extremes():
    # embeddings cluster by class across centers -> all neighbours SO -> RI = 1
    z = np.array([[1, 0.01], [1, -0.01], [0.01, 1], [-0.01, 1]], dtype=float)
    assert robustness_index(z, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), k=1) == 1.0
    # clustering by center instead -> all OS -> RI = 0
    assert robustness_index(z, np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]), k=1) == 0.0


def test_scanner_probe_reports_chance_and_detects_scanner_information():
    rng = np.random.default_rng(0)
    scanners = np.repeat(["A", "B", "C"], 30)
    informative = rng.normal(size=(90, 4)) + 3 * (scanners == "A")[:, None]
    accuracy, chance = scanner_probe(informative, scanners)
    assert chance == pytest.approx(1 / 3) and accuracy > 0.6
    noise, _ = scanner_probe(rng.normal(size=(90, 4)), scanners)
    assert noise < 0.55
