"""Every number carries its caveats: a value computed on part of the data or on few samples keeps
its value and says so (`Summary.caveats`); an interval needs enough finite values."""

import numpy as np
import pandas as pd

from raypath.metrics.limits import MetricLimits
from raypath.metrics.summary import summarize
from raypath.metrics.task import auc


def _frame(scanners: list[str], labels: list[int], specimens: list[str]) -> pd.DataFrame:
    scores = np.linspace(0.1, 0.9, len(labels))
    return pd.DataFrame({"specimen_id": specimens, "scanner": scanners, "label": labels, "score": scores,
                         "decision": (scores > 0.5).astype(int)})


def test_a_worst_scanner_auc_over_some_scanners_names_the_excluded_ones():
    frame = _frame(["A", "A", "B", "B", "C", "C"], [0, 1, 0, 1, 1, 1], ["s1", "s2", "s1", "s2", "s3", "s4"])
    summary = summarize(frame, np.zeros((6, 2)), task="binary", k=1)
    assert np.isfinite(summary.values["worst_scanner_auc"])
    caveat = summary.caveats["worst_scanner_auc"]
    assert "over scanners ['A', 'B'] only; excluded ['C']" in caveat
    assert "only one class on scanner C" in caveat
    assert "worst_scanner_auc" not in summary.undefined


def test_few_specimens_and_unpaired_specimens_are_said_next_to_the_value():
    frame = _frame(["A", "B", "A", "B", "A"], [0, 0, 1, 1, 1], ["s1", "s1", "s2", "s2", "s3"])
    summary = summarize(frame, np.zeros((5, 2)), task="binary", k=1, held_out=["B"],
                        limits=MetricLimits(min_specimens=4, min_paired_specimens=3))
    assert summary.caveats["auc"] == "3 specimens (fewer than 4): a rough estimate"
    assert summary.caveats["balanced_accuracy"] == summary.caveats["auc"]
    assert summary.caveats["auc_heldout"] == "2 specimens (fewer than 4): a rough estimate"
    spread = summary.caveats["score_spread"]
    assert "2 specimens with >= 2 scans (fewer than 3)" in spread and "over the 2 of 3 specimens" in spread
    enough = summarize(frame, np.zeros((5, 2)), task="binary", k=1,
                       limits=MetricLimits(min_specimens=3, min_paired_specimens=2))
    assert "auc" not in enough.caveats and "over the 2 of 3" in enough.caveats["score_spread"]


def test_several_held_out_scanners_are_pooled_and_said_so():
    frame = _frame(["A", "B", "C", "A", "B", "C"], [0, 0, 1, 1, 0, 1], ["s1", "s1", "s2", "s2", "s3", "s3"])
    summary = summarize(frame, np.zeros((6, 2)), task="binary", k=1, held_out=["B", "C"],
                        limits=MetricLimits(min_specimens=1))
    pooled = frame[frame["scanner"].isin(["B", "C"])]
    assert summary.values["auc_heldout"] == auc(pooled["label"].to_numpy(), pooled["score"].to_numpy())
    assert summary.caveats["auc_heldout"] == "pooled over held-out scanners ['B', 'C']"
