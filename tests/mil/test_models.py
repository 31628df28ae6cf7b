import pytest
import torch

from raypath.mil.models import GatedAttentionMIL, MeanPoolMIL, masked_softmax


@pytest.mark.parametrize("model_cls", [GatedAttentionMIL, MeanPoolMIL])
def test_padding_never_changes_a_prediction(model_cls):
    torch.manual_seed(0)
    model = model_cls(8, hidden=16, n_outputs=3).eval()
    features = torch.randn(1, 5, 8)
    base = model(features, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([features, 1e3 * torch.randn(1, 7, 8)], dim=1)  # garbage in the padding
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[:, :5] = True
    out = model(padded, mask)
    torch.testing.assert_close(out.prediction, base.prediction, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.embedding, base.embedding, rtol=0, atol=1e-5)
    assert torch.all(out.attention[:, 5:] == 0)


def test_batched_bags_match_one_at_a_time():
    torch.manual_seed(0)
    model = GatedAttentionMIL(8, hidden=16).eval()
    bags = [torch.randn(n, 8) for n in (3, 6, 1)]
    features = torch.zeros(3, 6, 8)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    for i, bag in enumerate(bags):
        features[i, : len(bag)], mask[i, : len(bag)] = bag, True
    batched = model(features, mask).prediction
    single = torch.cat([model(b[None], torch.ones(1, len(b), dtype=torch.bool)).prediction for b in bags])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)


def test_output_shapes_and_attention_sums_to_one():
    model = GatedAttentionMIL(8, hidden=16, attention_dim=4, n_outputs=4)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    out = model(torch.randn(2, 3, 8), mask)
    assert out.prediction.shape == (2, 4)
    assert out.embedding.shape == (2, 16)
    assert out.tile_embedding.shape == (2, 3, 16)
    torch.testing.assert_close(out.attention.sum(dim=1), torch.ones(2))


def test_masked_softmax_gives_zeros_for_an_empty_bag():
    weights = masked_softmax(torch.randn(2, 3), torch.tensor([[False] * 3, [True, True, False]]))
    assert torch.all(weights[0] == 0)
    assert not torch.isnan(weights).any()
