import math

import numpy as np
import pytest
import torch

from raypath.mil.losses import (
    attention_agreement,
    cox_partial_likelihood,
    group_variance,
    matched_tile_cosine,
    multi_positive_infonce,
    task_loss,
)
from raypath.mil.reversal import grad_reverse


def test_identical_embeddings_across_scans_give_the_minimal_infonce():
    # 3 specimens x 2 scans; orthogonal specimen embeddings, identical across scans.
    tau, groups = 0.5, torch.tensor([0, 0, 1, 1, 2, 2])
    z = torch.eye(3).repeat_interleave(2, dim=0)
    loss = multi_positive_infonce(z, groups, tau=tau)
    # each anchor: one positive (sim 1), four negatives (sim 0)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 4))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    torch.manual_seed(0)
    perturbed = z + 0.3 * torch.randn_like(z)
    assert multi_positive_infonce(perturbed, groups, tau=tau) > loss


def test_infonce_matches_the_design_formula_with_several_positives():
    torch.manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    groups, tau = torch.tensor([0, 0, 0, 1, 1]), 0.2
    sims = (z @ z.T / tau).numpy()
    terms = []
    for i in range(5):
        others = [a for a in range(5) if a != i]
        positives = [p for p in others if groups[p] == groups[i]]
        log_denominator = np.log(np.exp(sims[i, others]).sum())
        terms.append(-np.mean([sims[i, p] - log_denominator for p in positives]))
    assert multi_positive_infonce(z, groups, tau=tau).item() == pytest.approx(np.mean(terms), rel=1e-5)


def test_infonce_skips_anchors_without_positives():
    z = torch.eye(3)
    assert multi_positive_infonce(z, torch.tensor([0, 1, 2]), tau=0.1).item() == 0.0


def test_identical_predictions_give_zero_score_consistency_and_variance_otherwise():
    groups = torch.tensor([0, 0, 0, 1, 1, 2])
    assert group_variance(torch.tensor([0.3, 0.3, 0.3, 0.9, 0.9, 0.1]), groups).item() == 0.0
    scores = torch.tensor([0.1, 0.2, 0.6, 0.5, 0.9, 0.7])
    expected = (np.var([0.1, 0.2, 0.6]) + np.var([0.5, 0.9])) / 2  # singleton group 2 ignored
    assert group_variance(scores, groups).item() == pytest.approx(expected, rel=1e-5)


def test_matched_tile_cosine_is_zero_for_identical_and_hand_value_otherwise():
    tiles = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [1.0, 1.0]]])  # 2 scans x 2 tiles
    groups = torch.tensor([[0, 1], [0, 1]])
    identical = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[3.0, 0.0], [0.0, 5.0]]])
    assert matched_tile_cosine(identical, tile_group=groups).item() == pytest.approx(0.0, abs=1e-6)
    expected = ((1 - 1.0) + (1 - 1 / math.sqrt(2))) / 2
    assert matched_tile_cosine(tiles, tile_group=groups).item() == pytest.approx(expected, rel=1e-5)
    unmatched = torch.tensor([[0, -1], [0, -1]])
    assert matched_tile_cosine(tiles, tile_group=unmatched).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_agreement_zero_when_matched_tiles_get_equal_attention():
    attention = torch.tensor([[0.7, 0.3], [0.3, 0.7]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    swapped = torch.tensor([[0, 1], [1, 0]])
    agreement = attention_agreement(attention, mask=mask, tile_group=swapped)
    assert agreement.item() == pytest.approx(0.0, abs=1e-7)
    same_order = torch.tensor([[0, 1], [0, 1]])
    assert attention_agreement(attention, mask=mask, tile_group=same_order).item() == pytest.approx(
        np.var([1.4, 0.6]), rel=1e-5)


def test_cox_partial_likelihood_breslow_ties_by_hand():
    risk = torch.tensor([0.5, -0.2, 1.0, 0.0])
    time = torch.tensor([2.0, 2.0, 1.0, 3.0])
    event = torch.tensor([1.0, 1.0, 1.0, 0.0])
    r = risk.numpy()
    # risk sets: t=1 -> all; t=2 (tied) -> {0,1,3} for both events
    log_all, log_tied = np.log(np.exp(r).sum()), np.log(np.exp(r[[0, 1, 3]]).sum())
    expected = -((r[2] - log_all) + (r[0] - log_tied) + (r[1] - log_tied)) / 3
    assert cox_partial_likelihood(risk, time, event).item() == pytest.approx(expected, rel=1e-6)


def test_cox_masks_invalid_rows_and_handles_no_events():
    risk = torch.tensor([0.5, -0.2, 9.0], requires_grad=True)
    time, event = torch.tensor([1.0, 2.0, 1.5]), torch.tensor([1.0, 0.0, 1.0])
    masked = cox_partial_likelihood(risk, time, event, valid=torch.tensor([True, True, False]))
    alone = cox_partial_likelihood(risk[:2], time[:2], event[:2])
    assert masked.item() == pytest.approx(alone.item())
    zero = cox_partial_likelihood(risk, time, torch.zeros(3))
    zero.backward()
    assert zero.item() == 0.0


def test_binary_task_loss_ignores_unknown_labels():
    prediction = torch.tensor([[2.0], [-1.0], [5.0]])
    loss = task_loss("binary", prediction, label=torch.tensor([1, 0, -1]), time=torch.zeros(3),
                     event=torch.zeros(3))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_gradient_reversal_flips_the_sign_of_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    (grad_reverse(x, 0.5) * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([-0.5, -1.0, -1.5]))
    y = torch.tensor([1.0], requires_grad=True)
    assert torch.equal(grad_reverse(y), y.detach())
