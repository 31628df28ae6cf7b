"""The one training engine: packs train each member exactly as a plain single-model loop would, and a
pack of one (`train_one`, what `raypath train` runs) behaves as a complete training run."""

import copy

import numpy as np
import pytest
import torch

from raypath.mil.robust import total_loss
from raypath.mil.sampling import specimen_batches
from raypath.train.config import TrainConfig
from raypath.train.engine import PackMember, TrainResult, train_one, train_pack
from raypath.train.evaluation import final_evaluation
from raypath.train.setup import build_model, prepare
from raypath.train.stacked import StackedAdamW
from raypath.train.stopping import EarlyStopping

ROBUST = {"infonce": 0.5, "score_consistency": 1.0, "tile_consistency": 0.5, "attention_agreement": 0.1,
          "adversarial": 0.1}


def reference_train(*, config: TrainConfig, data, seed: int) -> TrainResult:
    """A plain single-model loop (torch AdamW, one model, no vmap): what every pack member must equal.

    Same seeds as the engine: parameters from `torch.manual_seed`, batches and tile sampling from a
    seeded generator, validation and the final evaluation from the shared evaluation code.
    """
    torch.manual_seed(seed)
    prepared = prepare(config, data)
    model = build_model(config, prepared)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optimizer.lr,
                                  weight_decay=config.optimizer.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    stopper, history, best = EarlyStopping(config=config), [], copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        model.train()
        for slides in specimen_batches(prepared.train_groups, batch_specimens=config.batch_specimens,
                                       generator=generator):
            batch = prepared.collator(slides, max_tiles=config.max_tiles, generator=generator)
            loss = total_loss(model.compute_loss(batch)[1], config.losses.weights())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        metrics = _validation(model, prepared, config)
        history.append({"epoch": epoch, **metrics})
        if stopper.update(epoch, metrics):
            best = copy.deepcopy(model.state_dict())
        if stopper.should_stop:
            break
    model.load_state_dict(best)
    evaluation = final_evaluation(model, prepared, config=config, seed=seed)
    return TrainResult(metrics={**evaluation.metrics, "best_epoch": float(stopper.best_epoch)},
                       predictions=evaluation.table, state_dict=best, history=history,
                       best_epoch=stopper.best_epoch)


def _validation(model, prepared, config) -> dict[str, float]:
    from raypath.metrics.task import auc
    from raypath.mil.losses import task_loss, task_scores
    from raypath.train.predict import predict

    slides = prepared.indices("val")
    prediction, _ = predict(model, prepared.collator, slides, config=config)
    c, index = prepared.collator, torch.as_tensor(slides)
    loss = task_loss(config.task, prediction, label=c.label[index], time=c.time[index], event=c.event[index])
    scores = task_scores(config.task, prediction).numpy()
    return {"val/loss": float(loss), "val/auc": auc(c.label[index].numpy(), scores)}


@pytest.fixture(scope="module")
def cohort(simulated_bags):
    return simulated_bags(n_specimens=36, tiles=12, dim=16, label_strength=3.0, seed=2)


@pytest.fixture(scope="module")
def cohort48(simulated_bags):
    return simulated_bags(n_specimens=48, tiles=16, dim=16, label_strength=3.0, seed=1)


def _config(*, lr=1e-3, weight_decay=1e-4, dropout=0.0, hidden=16, **losses) -> TrainConfig:
    return TrainConfig.model_validate(
        {
            "epochs": 4,
            "batch_specimens": 6,
            "robustness_k": 3,
            "max_tiles": 8,
            "split": {"source": "column"},
            "model": {"hidden": hidden, "attention_dim": 8, "projection_dim": 8, "dropout": dropout},
            "optimizer": {"lr": lr, "weight_decay": weight_decay},
            "early_stopping": {"patience": 2},
            "losses": losses,
        }
    )


def test_pack_members_match_a_plain_single_model_loop(cohort):
    configs = [
        _config(),  # the baseline, packed with members that have extra heads
        _config(lr=3e-3, infonce=0.5, tau=0.3),
        _config(
            weight_decay=1e-2,
            score_consistency=2.0,
            adversarial=0.3,
            tile_consistency=0.4,
            attention_agreement=0.2,
        ),
    ]
    fused = train_pack(
        members=[PackMember(key=str(i), config=c) for i, c in enumerate(configs)], data=cohort, seed=5
    )
    for i, config in enumerate(configs):
        alone = reference_train(config=config, data=cohort, seed=5)
        together = fused[str(i)]
        assert together.best_epoch == alone.best_epoch
        assert len(together.history) == len(alone.history)
        assert together.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            assert together.metrics[name] == pytest.approx(value, abs=1e-4, nan_ok=True), name
        np.testing.assert_allclose(together.predictions["score"], alone.predictions["score"], atol=1e-4)


def test_members_that_stop_early_leave_the_others_training_as_they_would_alone(cohort, monkeypatch):
    from raypath.train.fused_model import FusedObjective

    stepped, loss = [], FusedObjective.loss

    def counted(self, batch, *, members=None):
        stepped.append(self.size if members is None else len(members))
        return loss(self, batch, members=members)

    monkeypatch.setattr(FusedObjective, "loss", counted)

    def config(**fields):
        base = _config(**fields).model_dump(mode="json")
        return TrainConfig.model_validate({**base, "epochs": 9, "early_stopping": {"patience": 1}})

    configs = [config(lr=5e-2), config(lr=1e-3, infonce=0.5), config(lr=2e-2, score_consistency=1.0)]
    epochs = []
    fused = train_pack(members=[PackMember(key=str(i), config=c) for i, c in enumerate(configs)],
                       data=cohort, seed=1, on_epoch=lambda e, reported: epochs.append(sorted(reported)))
    assert len({len(r.history) for r in fused.values()}) > 1, "the members should stop at different epochs"
    assert min(stepped) < len(configs) and any(len(live) < len(configs) for live in epochs)  # left out
    for i, c in enumerate(configs):
        alone = reference_train(config=c, data=cohort, seed=1)
        together = fused[str(i)]
        assert together.best_epoch == alone.best_epoch and len(together.history) == len(alone.history)
        for name, value in alone.metrics.items():
            assert together.metrics[name] == pytest.approx(value, abs=1e-4, nan_ok=True), name


def test_members_differ_when_their_hyperparameters_do(cohort):
    results = train_pack(
        members=[
            PackMember(key="slow", config=_config(lr=1e-4)),
            PackMember(key="fast", config=_config(lr=1e-2)),
        ],
        data=cohort,
        seed=0,
    )
    assert not np.allclose(results["slow"].predictions["score"], results["fast"].predictions["score"])


def test_a_pack_refuses_members_with_different_shapes(cohort):
    with pytest.raises(ValueError, match="pack key"):
        train_pack(
            members=[
                PackMember(key="a", config=_config(hidden=16)),
                PackMember(key="b", config=_config(hidden=32)),
            ],
            data=cohort,
            seed=0,
        )


def test_stacked_adamw_is_torch_adamw_per_member_and_frozen_members_stay():
    torch.manual_seed(0)
    start = torch.randn(3, 4, 5)
    lrs, decays = torch.tensor([1e-3, 1e-2, 5e-2]), torch.tensor([0.0, 1e-2, 1e-1])
    stacked = {"w": start.clone().requires_grad_(True)}
    optimizer = StackedAdamW(stacked, lr=lrs, weight_decay=decays)
    singles = [start[g].clone().requires_grad_(True) for g in range(3)]
    references = [
        torch.optim.AdamW([p], lr=float(lrs[g]), weight_decay=float(decays[g])) for g, p in enumerate(singles)
    ]
    active = torch.tensor([True, True, False])
    for _ in range(5):
        grads = torch.randn(3, 4, 5)
        optimizer.step({"w": grads}, active=active)
        for g in range(2):
            singles[g].grad = grads[g].clone()
            references[g].step()
    for g in range(2):
        torch.testing.assert_close(stacked["w"][g].detach(), singles[g].detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stacked["w"][2].detach(), start[2])


def _one_config(**overrides):
    base = {"epochs": 3, "batch_specimens": 8, "robustness_k": 3,
            "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8},
            "early_stopping": {"enabled": False}}
    return TrainConfig(**{**base, **overrides})


def test_two_runs_with_one_seed_are_identical_and_seeds_differ(cohort48):
    config = _one_config(losses=ROBUST, max_tiles=8)
    first = train_one(config=config, data=cohort48, seed=3)
    second = train_one(config=config, data=cohort48, seed=3)
    assert first.metrics.keys() == second.metrics.keys()
    np.testing.assert_array_equal(list(first.metrics.values()), list(second.metrics.values()))
    assert first.history == second.history
    other = train_one(config=config, data=cohort48, seed=4)
    assert other.metrics["test/auc"] != first.metrics["test/auc"] or other.history != first.history


def test_result_has_task_and_robustness_metrics_and_predictions(cohort48):
    epochs = []
    result = train_one(config=_one_config(losses=ROBUST), data=cohort48, seed=0,
                         on_epoch=lambda e, m: epochs.append((e, m)))
    assert [e for e, _ in epochs] == [0, 1, 2]
    assert {"train/task", "train/infonce", "train/adversarial", "val/auc"} <= set(epochs[0][1])
    for key in ("auc", "balanced_accuracy", "worst_scanner_auc", "score_spread", "flip_rate",
                "scanner_probe_bacc", "scanner_probe_chance", "robustness_index"):
        assert np.isfinite(result.metrics[f"test/{key}"]), key
    table = result.predictions
    assert len(table) == cohort48.n_slides and set(table["split"]) == {"train", "val", "test"}
    assert (table.groupby("patient_id")["split"].nunique() == 1).all()
    assert set(result.state_dict) >= {"backbone.head.weight", "heads.adversarial.weight"}


def test_a_search_pack_summarises_only_the_splits_it_is_asked_for(cohort48):
    config = _one_config(losses=ROBUST, max_tiles=8)
    members = [PackMember(key="a", config=config)]
    both = train_pack(members=members, data=cohort48, seed=0)["a"]
    val_only = train_pack(members=members, data=cohort48, seed=0, final_splits=("val",))["a"]
    kept = {k: v for k, v in both.metrics.items() if not k.startswith("test/")}
    assert len(kept) < len(both.metrics) and val_only.metrics.keys() == kept.keys()
    np.testing.assert_array_equal(list(val_only.metrics.values()), list(kept.values()))
    assert val_only.predictions.equals(both.predictions)  # every slide is still predicted


def test_learns_the_simulated_signal(cohort48):
    result = train_one(config=_one_config(epochs=15), data=cohort48, seed=0)
    assert result.metrics["test/auc"] > 0.8


def test_leave_one_scanner_out_never_trains_on_it(cohort48):
    result = train_one(config=_one_config(split={"held_out_scanners": ["C"]}), data=cohort48, seed=0)
    table = result.predictions
    assert set(table.loc[table["scanner"] == "C", "split"]) <= {"unused", "test"}
    assert "test/auc_heldout" in result.metrics
    assert "C" not in set(table.loc[table["split"].isin(["train", "val"]), "scanner"])


def test_predefined_split_column_and_correction(cohort48):
    config = _one_config(split={"source": "column"}, correction="combat")
    result = train_one(config=config, data=cohort48, seed=0)
    expected = cohort48.slides["split"].to_numpy()
    np.testing.assert_array_equal(result.predictions["split"].to_numpy(), expected)


def test_survival_and_multiclass_tasks_run(simulated_bags):
    data = simulated_bags(n_specimens=36, tiles=8, dim=8, n_classes=3, seed=2)
    config = _one_config(task="survival", losses={"score_consistency": 1.0})
    survival = train_one(config=config, data=data, seed=0)
    assert 0 <= survival.metrics["test/c_index"] <= 1
    multiclass = train_one(config=_one_config(task="multiclass"), data=data, seed=0)
    assert {"prob_0", "prob_1", "prob_2"} <= set(multiclass.predictions.columns)
    assert np.isfinite(multiclass.metrics["test/auc"])


def test_early_stopping_stops_and_keeps_the_best_epoch(cohort48):
    config = _one_config(epochs=30, optimizer={"lr": 0.05},
                     early_stopping={"enabled": True, "patience": 2, "metric": "loss"})
    result = train_one(config=config, data=cohort48, seed=0)
    assert len(result.history) < 30
    assert len(result.history) == result.best_epoch + 3
    losses = [h["val/loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses))


def test_tile_losses_without_registration_are_refused(cohort48):
    unregistered = type(cohort48)(features=cohort48.features, offsets=cohort48.offsets,
                                  slides=cohort48.slides,
                                  coords=cohort48.coords)
    with pytest.raises(ValueError, match="registered tile pairs"):
        train_one(config=_one_config(losses={"tile_consistency": 1.0}), data=unregistered, seed=0)


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
