"""Extension points: a loss or a backbone is one registration, and the config, heads and builders
follow from it."""

import pytest
import torch
from torch import nn

from raypath.mil.config import LossConfig, ModelConfig
from raypath.mil.models import BACKBONES, build_mil
from raypath.mil.registry import LOSSES, LossSpec, register_loss
from raypath.mil.robust import build_robust_mil


def test_every_registered_loss_is_a_documented_zero_weight_field():
    config = LossConfig()
    for name, spec in LOSSES.items():
        assert getattr(config, name) == 0.0
        assert LossConfig.model_fields[name].description == spec.description
    assert set(config.weights()) == set(LOSSES)
    assert config.options() == {"tile_mode": "cosine"}  # declared by tile_consistency


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_loss("infonce", description="again")(lambda model, output, batch: output.prediction.sum())


def test_a_loss_brings_its_own_head_built_only_while_active(monkeypatch):
    def toy(model, output, batch):
        return model.head("toy")(output.embedding).pow(2).mean()

    spec = LossSpec(name="toy", fn=toy, description="toy", head=lambda ctx: nn.Linear(ctx.hidden, 2))
    monkeypatch.setitem(LOSSES, "toy", spec)
    off = build_robust_mil(task="binary", kind="mean", in_dim=4, n_outputs=1, hidden=8, weights={"toy": 0.0})
    on = build_robust_mil(task="binary", kind="mean", in_dim=4, n_outputs=1, hidden=8, weights={"toy": 1.0})
    assert "toy" not in off.heads and isinstance(on.heads["toy"], nn.Linear)


@pytest.mark.parametrize("kind", sorted(BACKBONES))
def test_every_backbone_honours_the_mil_contract(kind):
    model = build_mil(kind, in_dim=6, n_outputs=3, hidden=8, dropout=0.0)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    output = model(torch.randn(2, 3, 6), mask)
    assert output.prediction.shape == (2, 3) and output.embedding.shape == (2, 8)
    torch.testing.assert_close(output.attention.sum(dim=1), torch.ones(2))
    assert bool((output.attention[~mask] == 0).all())


def test_model_config_knows_the_backbones_and_their_settings():
    assert ModelConfig(kind="gated", attention_dim=16).backbone_settings() == {"attention_dim": 16}
    assert ModelConfig(kind="mean").backbone_settings() == {}
    with pytest.raises(ValueError, match="registered"):
        ModelConfig(kind="transmil")
