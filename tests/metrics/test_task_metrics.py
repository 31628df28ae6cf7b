import numpy as np
import pytest
from lifelines.utils import concordance_index
from sklearn.metrics import roc_auc_score

from raypath.metrics.task import auc, balanced_accuracy, bootstrap_ci, c_index


def test_auc_by_hand_and_against_sklearn():
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert auc(labels, scores) == pytest.approx(0.75)  # 3 of 4 positive-negative pairs ordered
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    multi = np.array([0, 1, 2, 1])
    assert auc(multi, probs) == pytest.approx(roc_auc_score(multi, probs, multi_class="ovr"))
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
    rng = np.random.default_rng(0)
    tied_labels, tied_scores = rng.integers(0, 2, 200), rng.integers(0, 5, 200) / 4  # many ties
    assert auc(tied_labels, tied_scores) == pytest.approx(roc_auc_score(tied_labels, tied_scores))


def test_balanced_accuracy_is_mean_recall():
    assert balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])) == pytest.approx((2 / 3 + 1) / 2)


def test_c_index_negates_risk_for_lifelines():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([1, 1, 0, 1])
    risk = np.array([4.0, 3.0, 2.0, 1.0])  # perfectly ordered: higher risk, earlier event
    assert c_index(time, risk, event) == pytest.approx(1.0)
    assert c_index(time, -risk, event) == pytest.approx(0.0)
    noisy = np.array([0.3, 0.9, 0.1, 0.5])
    assert c_index(time, noisy, event) == pytest.approx(concordance_index(time, -noisy, event))
    # by hand: comparable pairs (i event, t_i < t_j): (0,1)(0,2)(0,3)(1,2)(1,3); concordant if r_i > r_j
    assert c_index(time, noisy, event) == pytest.approx(3 / 5)  # (0,2), (1,2), (1,3)
    assert np.isnan(c_index(time, risk, np.zeros(4)))


def test_bootstrap_ci_brackets_the_mean_and_ignores_nans():
    values = np.array([0.70, 0.72, 0.68, 0.75, 0.71, np.nan])
    estimate, low, high = bootstrap_ci(values, seed=1)
    assert estimate == pytest.approx(np.nanmean(values))
    assert low < estimate < high and low >= 0.68 and high <= 0.75
    single = bootstrap_ci(np.array([0.5, np.nan]))
    assert single[0] == 0.5 and np.isnan(single[1]) and np.isnan(single[2])  # no zero-width interval
    assert np.isnan(bootstrap_ci(np.array([0.5, 0.6]), min_values=3)[1])
