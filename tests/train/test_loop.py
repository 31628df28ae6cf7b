import numpy as np
import pytest

from raypath.config.simulate import SimulateConfig
from raypath.config.train import TrainConfig
from raypath.mil.simulate import simulate_cohort
from raypath.train.loop import train_model

ROBUST = {"infonce": 0.5, "score_consistency": 1.0, "tile_consistency": 0.5, "attention_agreement": 0.1,
          "adversarial": 0.1}


@pytest.fixture(scope="module")
def cohort():
    sim = simulate_cohort(SimulateConfig(n_specimens=48, tiles=16, dim=16, label_strength=3.0, seed=1))
    return sim.bagset.with_columns(sim.labels, on="patient_id").with_columns(sim.splits, on="patient_id")


def _config(**overrides):
    base = {"epochs": 3, "batch_specimens": 8, "robustness_k": 3,
            "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8},
            "early_stopping": {"enabled": False}}
    return TrainConfig(**{**base, **overrides})


def test_two_runs_with_one_seed_are_identical_and_seeds_differ(cohort):
    config = _config(losses=ROBUST, max_tiles=8)
    first = train_model(config=config, data=cohort, seed=3)
    second = train_model(config=config, data=cohort, seed=3)
    assert first.metrics.keys() == second.metrics.keys()
    np.testing.assert_array_equal(list(first.metrics.values()), list(second.metrics.values()))
    assert first.history == second.history
    other = train_model(config=config, data=cohort, seed=4)
    assert other.metrics["test/auc"] != first.metrics["test/auc"] or other.history != first.history


def test_result_has_task_and_robustness_metrics_and_predictions(cohort):
    epochs = []
    result = train_model(config=_config(losses=ROBUST), data=cohort, seed=0,
                         on_epoch=lambda e, m: epochs.append((e, m)))
    assert [e for e, _ in epochs] == [0, 1, 2]
    assert {"train/task", "train/infonce", "train/adversarial", "val/auc"} <= set(epochs[0][1])
    for key in ("auc", "balanced_accuracy", "worst_scanner_auc", "score_spread", "flip_rate",
                "scanner_probe_bacc", "scanner_probe_chance", "robustness_index"):
        assert np.isfinite(result.metrics[f"test/{key}"]), key
    table = result.predictions
    assert len(table) == cohort.n_slides and set(table["split"]) == {"train", "val", "test"}
    assert (table.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(result.state_dict) >= {"backbone.head.weight", "scanner_head.weight"}


def test_learns_the_simulated_signal(cohort):
    result = train_model(config=_config(epochs=15), data=cohort, seed=0)
    assert result.metrics["test/auc"] > 0.8


def test_leave_one_scanner_out_never_trains_on_it(cohort):
    result = train_model(config=_config(split={"held_out_scanner": "C"}), data=cohort, seed=0)
    table = result.predictions
    assert set(table.loc[table["scanner"] == "C", "split"]) <= {"unused", "test"}
    assert "test/auc_heldout" in result.metrics
    assert "C" not in set(table.loc[table["split"].isin(["train", "val"]), "scanner"])


def test_predefined_split_column_and_correction(cohort):
    result = train_model(config=_config(split={"source": "column"}, correction="combat"), data=cohort, seed=0)
    expected = cohort.slides["split"].to_numpy()
    np.testing.assert_array_equal(result.predictions["split"].to_numpy(), expected)


def test_survival_and_multiclass_tasks_run():
    sim = simulate_cohort(SimulateConfig(n_specimens=36, tiles=8, dim=8, n_classes=3, seed=2))
    data = sim.bagset.with_columns(sim.labels, on="patient_id")
    config = _config(task="survival", losses={"score_consistency": 1.0})
    survival = train_model(config=config, data=data, seed=0)
    assert 0 <= survival.metrics["test/c_index"] <= 1
    multiclass = train_model(config=_config(task="multiclass"), data=data, seed=0)
    assert {"prob_0", "prob_1", "prob_2"} <= set(multiclass.predictions.columns)
    assert np.isfinite(multiclass.metrics["test/auc"])


def test_early_stopping_stops_and_keeps_the_best_epoch(cohort):
    config = _config(epochs=30, optimizer={"lr": 0.05},
                     early_stopping={"enabled": True, "patience": 2, "metric": "loss"})
    result = train_model(config=config, data=cohort, seed=0)
    assert len(result.history) < 30
    assert len(result.history) == result.best_epoch + 3
    losses = [h["val/loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses))


def test_tile_losses_without_registration_are_refused(cohort):
    unregistered = type(cohort)(features=cohort.features, offsets=cohort.offsets, slides=cohort.slides,
                                coords=cohort.coords)
    with pytest.raises(ValueError, match="registered tile pairs"):
        train_model(config=_config(losses={"tile_consistency": 1.0}), data=unregistered, seed=0)


def test_cli_simulate_then_train_with_registration(tmp_path):
    from raypath.cli import main

    out = tmp_path / "cohort"
    assert main(["simulate", "--out", str(out), "--specimens", "24", "--tiles", "8", "--dim", "8"]) == 0
    args = ["train", "--features", str(out / "features"), "--encoder", "sim-8", "--labels",
            str(out / "labels.csv"), "--splits", str(out / "splits.csv"), "--registration",
            str(out / "registration.parquet"), "--out", str(tmp_path / "run"),
            "--set", "epochs=2", "--set", "losses.tile_consistency=1.0", "--set", "model.hidden=8"]
    assert main(args) == 0
    for name in ("metrics.json", "predictions.csv", "model.safetensors", "config.json"):
        assert (tmp_path / "run" / name).exists()
