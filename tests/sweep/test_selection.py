"""Selection is on validation data, relative to the best-tuned baseline, and never silent: when no
robust configuration keeps the accuracy floor the most robust one is still returned, marked."""

import numpy as np
import pandas as pd

from raypath.compare.config import CompareConfig
from raypath.compare.groups import model_groups
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


def _near_ties() -> pd.DataFrame:
    """Baselines and robust configurations of which several are float-level ties (1e-7 apart) and
    the rest clearly apart (>= 0.01): how a real search's top looks after float noise."""
    rows = [("b1", True, 0.9200000, 0.20), ("b2", True, 0.9200001, 0.22), ("b3", True, 0.90, 0.15),
            ("r1", False, 0.9100000, 0.0500000), ("r2", False, 0.9000000, 0.0500001),
            ("r3", False, 0.9150000, 0.0700000), ("r4", False, 0.8000000, 0.0100000),
            ("r5", False, 0.9050000, 0.0800000)]
    runs = _runs(rows)
    runs["params"] = [{"losses.infonce": w, "optimizer.lr": 1e-3} for w in (0, 0, 0, 0.8, 0.3, 0.5, 0.1, 0.2)]
    return runs


def test_near_ties_go_to_the_lower_loss_weight_sum_then_the_config_key():
    selection = rank_robust(_near_ties(), objectives=OBJECTIVES, top_k=2, tolerance=0.02)
    assert selection.baselines["config_key"].tolist()[:2] == ["b1", "b2"]  # tied: config key decides
    assert selection.rows["config_key"].tolist() == ["r2", "r1"]  # tied on spread: lower weight sum first
    assert selection.ranked["config_key"].tolist()[:3] == ["r2", "r1", "r3"]  # r4 is below the floor
    assert best_baseline(_near_ties(), accuracy="val/auc")["losses.infonce"] == 0


def test_perturbing_every_validation_metric_by_1e_6_leaves_the_selection_unchanged():
    runs, rng = _near_ties(), np.random.default_rng(0)
    config = CompareConfig(sweep_id="s", objectives=OBJECTIVES, top_k=2)
    reference = model_groups(runs, config)
    expected = {name: g["config_key"].tolist() for name, g in reference.groups.items()}
    for _ in range(50):
        noisy = runs.copy()
        for metric in ("val/auc", "val/score_spread"):
            noisy[metric] = noisy[metric] + rng.uniform(-1e-6, 1e-6, len(noisy))
        chosen = model_groups(noisy.sample(frac=1, random_state=int(rng.integers(1 << 30))), config)
        assert {name: g["config_key"].tolist() for name, g in chosen.groups.items()} == expected
    assert expected == {"baseline": ["b1"], "robust 1": ["r2"], "robust 2": ["r1"]}


def test_the_stability_table_shows_the_runner_ups_with_their_gaps_and_the_tie():
    from raypath.compare.stability import stability_note, stability_table

    selection = rank_robust(_near_ties(), objectives=OBJECTIVES, top_k=1, tolerance=0.02)
    table = stability_table(selection)
    assert table.index.tolist() == ["baseline chosen", "baseline runner-up 1", "baseline runner-up 2",
                                    "robust chosen", "robust runner-up 1", "robust runner-up 2"]
    assert table.loc["robust chosen", "config"] == "r2" and table.loc["robust runner-up 2", "config"] == "r3"
    assert "decided by the lower loss-weight sum" in table.loc["robust runner-up 1", "note"]
    assert table.loc["robust runner-up 2", "val/score_spread"] == "0.0700 (+0.0200)"
    note = stability_note(selection)
    assert "the robust pick leads its runner-up by 0.0000 on val/score_spread (a tie" in note
