import copy

import pytest
import torch
from torch.func import functional_call, stack_module_state, vmap

from raypath.mil.batch import Batch
from raypath.mil.registry import LOSSES
from raypath.mil.robust import Objective, build_robust_mil, total_loss

ALL = {"infonce": 1.0, "score_consistency": 1.0, "tile_consistency": 1.0, "attention_agreement": 1.0,
       "adversarial": 1.0}


def _batch(seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    b, n, d = 6, 5, 8
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 3:] = False
    return Batch(features=torch.randn(b, n, d, generator=g) * mask[..., None], mask=mask,
                 specimen=torch.tensor([0, 0, 1, 1, 2, 2]), scanner=torch.tensor([0, 1, 0, 1, 0, 1]),
                 tile_group=torch.arange(n).repeat(b, 1) + 5 * torch.tensor([0, 0, 1, 1, 2, 2])[:, None],
                 label=torch.tensor([1, 1, 0, 0, 1, 1]), time=torch.rand(b, generator=g) + 1,
                 event=torch.ones(b), slide=torch.arange(b))


def _model(weights, task="binary", seed=0):
    torch.manual_seed(seed)
    return build_robust_mil(task=task, kind="gated", in_dim=8, n_outputs=1, hidden=16, attention_dim=8,
                            dropout=0.0, weights=weights, projection_dim=4, n_scanners=2)


def test_zero_weights_compute_only_the_task_loss_and_add_no_heads():
    baseline, robust = _model({k: 0.0 for k in ALL}), _model(ALL)
    _, losses = baseline.compute_loss(_batch())
    assert set(losses) == {"task"}
    assert len(baseline.heads) == 0 and set(robust.heads) == {"infonce", "tile_consistency", "adversarial"}
    _, losses = robust.compute_loss(_batch())
    assert set(losses) == {"task", *ALL}
    assert all(torch.isfinite(v) for v in losses.values())


def test_total_loss_is_task_plus_weighted_sum():
    losses = {"task": torch.tensor(1.0), "infonce": torch.tensor(2.0), "adversarial": torch.tensor(3.0)}
    assert total_loss(losses, {"infonce": 0.5, "adversarial": 0.1}).item() == pytest.approx(2.3)


def test_every_registered_loss_backpropagates():
    model = _model(ALL)
    _, losses = model.compute_loss(_batch())
    for name in ALL:
        model.zero_grad()
        losses = model.compute_loss(_batch())[1]
        losses[name].backward()
        grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name
    assert set(ALL) <= set(LOSSES)


@pytest.mark.parametrize("task", ["binary", "survival"])
def test_stacked_parameters_under_vmap_match_single_models(task):
    models = [_model(ALL, task=task, seed=s) for s in range(3)]
    params, buffers = stack_module_state([Objective(m) for m in models])
    base = copy.deepcopy(Objective(models[0])).to("meta")
    batch = _batch()

    def run(p, b):
        return functional_call(base, (p, b), (batch,))

    predictions, losses = vmap(run, randomness="different")(params, buffers)
    for i, model in enumerate(models):
        prediction, single = model.compute_loss(batch)
        torch.testing.assert_close(predictions[i], prediction, atol=1e-5, rtol=1e-5)
        for name, value in single.items():
            torch.testing.assert_close(losses[name][i], value, atol=1e-5, rtol=1e-5)


def test_unknown_loss_and_adversarial_without_scanners_are_rejected():
    with pytest.raises(ValueError, match="unknown robustness losses"):
        build_robust_mil(task="binary", kind="gated", in_dim=8, n_outputs=1, weights={"nope": 1.0})
    with pytest.raises(ValueError, match="at least 2 training scanners"):
        build_robust_mil(task="binary", kind="mean", in_dim=8, n_outputs=1, weights={"adversarial": 1.0},
                         n_scanners=1)
