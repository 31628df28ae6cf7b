"""Selection is on validation data, relative to the best-tuned baseline, and never silent: when no
robust configuration keeps the accuracy floor the most robust one is still returned, marked."""

import numpy as np
import pandas as pd

from raypath.evaluate.config import CompareConfig
from raypath.evaluate.groups import model_groups
from raypath.sweep.config import ObjectiveConfig
from raypath.sweep.selection import best_baseline, rank_robust

OBJECTIVES = [ObjectiveConfig(metric="val/auc", mode="max"),
              ObjectiveConfig(metric="val/score_spread", mode="min")]


def _runs(rows: list[tuple[str, bool, float, float]], phase: str = "search") -> pd.DataFrame:
    return pd.DataFrame([
        {"run_id": f"r{i}", "status": "FINISHED", "best_epoch": 3.0, "config_key": key, "baseline": base,
         "val/auc": auc, "val/score_spread": spread, "seed": 0, "phase": phase, "val/n_specimens": 2.0,
         "params": {"optimizer.lr": 0.001 * (i + 1), "losses.infonce": 0.0 if base else 0.5}, "test/auc": auc}
        for i, (key, base, auc, spread) in enumerate(rows)])


def test_robust_configs_within_the_floor_are_ranked_by_robustness():
    runs = _runs([("b1", True, 0.90, 0.20), ("b2", True, 0.95, 0.25), ("r1", False, 0.94, 0.05),
                  ("r2", False, 0.80, 0.01), ("r3", False, 0.94, 0.10)])
    selection = rank_robust(runs, objectives=OBJECTIVES, top_k=2, tolerance=0.02)
    assert selection.rows["config_key"].tolist() == ["r1", "r3"] and not selection.below_floor
    assert selection.baseline_accuracy == 0.95 and np.isclose(selection.floor, 0.93)  # best-tuned baseline
    assert best_baseline(runs, accuracy="val/auc")["optimizer.lr"] == 0.002


def test_nothing_above_the_floor_still_shows_the_most_robust_marked_with_the_numbers_behind_it():
    runs = _runs([("b", True, 1.00, 0.20), ("r1", False, 0.96, 0.02), ("r2", False, 0.90, 0.01)])
    selection = rank_robust(runs, objectives=OBJECTIVES, top_k=1, tolerance=0.02)
    assert selection.below_floor and selection.rows["config_key"].tolist() == ["r2"]
    text = selection.describe()
    assert "no robust configuration reached" in text and "0.980" in text and "2 specimens" in text
    chosen = model_groups(_runs([("b", True, 1.00, 0.20), ("r1", False, 0.96, 0.02)], phase="replicates"),
                          CompareConfig(sweep_id="s", objectives=OBJECTIVES))
    assert set(chosen.groups) == {"baseline", "robust 1"} and chosen.selection.below_floor
