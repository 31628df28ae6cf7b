"""Each robustness metric refuses data it cannot measure and says why (issue 15): NaN plus a reason,
never a number that only reflects the split."""

import numpy as np
import pandas as pd
import pytest

from raypath.metrics.information import entropy_bits, mutual_information_bits
from raypath.metrics.limits import classes_limit, cross_scanner_limit, knn_limit, probe_limit
from raypath.metrics.summary import summarize


def test_cross_scanner_metrics_need_two_specimens_scanned_twice():
    assert "1 specimens" in cross_scanner_limit(["a", "a", "b", "c"])
    assert cross_scanner_limit(["a", "a", "b", "b"]) is None


def test_knn_index_needs_k_below_the_eligible_neighbours():
    classes, centers = [0, 1, 0, 1, 0, 1], ["A", "A", "B", "B", "A", "B"]
    groups = ["s1", "s1", "s2", "s2", "s3", "s3"]
    assert "k=4 >= 4 eligible" in knn_limit(classes, centers, groups=groups, k=4)
    assert knn_limit(classes, centers, groups=groups, k=3) is None
    assert "one class" in knn_limit([1] * 6, centers, groups=groups, k=1)
    assert "one scanner" in knn_limit(classes, ["A"] * 6, groups=groups, k=1)


def test_probes_and_aucs_need_their_groups_and_classes():
    assert "one scanner" in probe_limit(["A", "A"], folds=5)
    assert "B has 1 sample" in probe_limit(["A", "A", "B"], folds=5)
    assert probe_limit(["A", "A", "B", "B"], folds=5) is None
    assert "only one class on X" in classes_limit([1, 1], where=" on X")


def test_summary_reports_reasons_for_a_split_too_small_to_measure():
    frame = pd.DataFrame({"specimen_id": ["s1", "s2", "s3"], "scanner": ["A", "B", "A"], "label": [0, 1, 1],
                          "score": [0.2, 0.7, 0.9], "decision": [0, 1, 1]})
    summary = summarize(frame, np.random.default_rng(0).standard_normal((3, 4)), task="binary", k=10)
    assert summary.values["auc"] == 1.0 and summary.values["n_specimens"] == 3
    for metric in ("score_spread", "flip_rate", "robustness_index", "scanner_probe_bacc", "scanner_mi_bits",
                   "auc_scanner_B"):
        assert np.isnan(summary.values[metric]) and summary.undefined[metric], metric
    assert summary.undefined["auc_scanner_B"] == "only one class on scanner B (1 present)"


def test_the_information_bound_sees_a_readable_scanner_and_not_an_absent_one():
    rng = np.random.default_rng(0)
    scanners = np.repeat(["A", "B"], 60)
    readable = rng.standard_normal((120, 4)) + (scanners == "B")[:, None] * 3.0
    hidden = rng.standard_normal((120, 4))
    assert entropy_bits(scanners) == pytest.approx(1.0)
    assert mutual_information_bits(readable, scanners) > 0.8
    assert mutual_information_bits(hidden, scanners) < 0.1
