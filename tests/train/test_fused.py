"""Fused (vmapped, stacked) training must train each member exactly as `train_model` trains it alone."""

import numpy as np
import pytest
import torch

from raypath.config.simulate import SimulateConfig
from raypath.config.train import TrainConfig
from raypath.mil.simulate import simulate_cohort
from raypath.train.fused import PackMember, train_pack
from raypath.train.loop import train_model
from raypath.train.stacked import StackedAdamW


@pytest.fixture(scope="module")
def cohort():
    sim = simulate_cohort(SimulateConfig(n_specimens=36, tiles=12, dim=16, label_strength=3.0, seed=2))
    return sim.bagset.with_columns(sim.labels, on="patient_id").with_columns(sim.splits, on="patient_id")


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


def test_fused_members_match_one_at_a_time_training(cohort):
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
        alone = train_model(config=config, data=cohort, seed=5)
        together = fused[str(i)]
        assert together.best_epoch == alone.best_epoch
        assert len(together.history) == len(alone.history)
        assert together.metrics.keys() == alone.metrics.keys()
        for name, value in alone.metrics.items():
            assert together.metrics[name] == pytest.approx(value, abs=1e-4, nan_ok=True), name
        np.testing.assert_allclose(together.predictions["score"], alone.predictions["score"], atol=1e-4)


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
