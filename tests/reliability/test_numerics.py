"""Issue 16, case 8: the robustness losses stay correct where the numbers get hard: padding in the
tile loss, half precision at small temperatures, variances of large scores, all under vmap."""

import numpy as np
import pytest
import torch
from torch.func import vmap

from raypath.mil.batch import Batch
from raypath.mil.losses import group_variance, multi_positive_infonce
from raypath.mil.robust import build_robust_mil

TAUS = (1e-3, 3e-3, 1e-2, 0.1, 1.0)


def scan_batch(seed: int = 0) -> Batch:
    """Three specimens x two scans, five tile slots; some bags padded (mask False, tile_group -1)."""
    g = torch.Generator().manual_seed(seed)
    b, n, d = 6, 5, 8
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 3:] = False
    mask[4, 2:] = False
    specimen = torch.tensor([0, 0, 1, 1, 2, 2])
    tile_group = torch.arange(n).repeat(b, 1) + n * specimen[:, None]
    tile_group[0, 4] = -1  # a real tile without a match on the other scan: a negative only
    return Batch(features=torch.randn(b, n, d, generator=g) * mask[..., None], mask=mask, specimen=specimen,
                 scanner=torch.tensor([0, 1, 0, 1, 0, 1]), tile_group=tile_group.masked_fill(~mask, -1),
                 label=torch.tensor([1, 1, 0, 0, 1, 1]), time=torch.ones(b), event=torch.ones(b),
                 slide=torch.arange(b))


def with_padding(batch: Batch, extra: int) -> Batch:
    """The same bags with `extra` more padded tile slots, as a batch with a longer bag would have."""
    b, _, d = batch.features.shape
    return batch._replace(
        features=torch.cat([batch.features, torch.zeros(b, extra, d)], dim=1),
        mask=torch.cat([batch.mask, torch.zeros(b, extra, dtype=torch.bool)], dim=1),
        tile_group=torch.cat([batch.tile_group, torch.full((b, extra), -1)], dim=1))


def tile_infonce_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_robust_mil(task="binary", kind="gated", in_dim=8, n_outputs=1, hidden=16, attention_dim=8,
                             dropout=0.0, weights={"tile_consistency": 1.0}, projection_dim=4,
                             options={"tile_mode": "infonce"}, tau=0.1)
    return model.eval()


@pytest.mark.parametrize("extra", [1, 7])
def test_padded_tiles_take_no_part_in_the_tile_infonce(extra):
    """Padding the batch further must not change the loss: padded tiles are not negatives."""
    model, batch = tile_infonce_model(), scan_batch()
    with torch.no_grad():
        _, base = model.compute_loss(batch)
        _, padded = model.compute_loss(with_padding(batch, extra))
    assert torch.isfinite(base["tile_consistency"])
    assert padded["tile_consistency"].item() == pytest.approx(base["tile_consistency"].item(), rel=1e-5)


def test_padded_tiles_are_not_anchors_even_with_a_stray_group_id():
    """A padded slot keeps no role in the loss even if its tile_group was left at a real id."""
    model, batch = tile_infonce_model(), scan_batch()
    stray = batch._replace(tile_group=torch.where(batch.mask, batch.tile_group, 0))
    with torch.no_grad():
        expected = model.compute_loss(batch)[1]["tile_consistency"]
        got = model.compute_loss(stray)[1]["tile_consistency"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Six specimens x two scans of 16-dim embeddings; scans of a specimen are close."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 16, generator=g)
    z = centres.repeat_interleave(2, dim=0) + 0.3 * torch.randn(12, 16, generator=g)
    return z, torch.arange(6).repeat_interleave(2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("tau", TAUS)
def test_slide_infonce_is_finite_in_half_precision(dtype, tau):
    z, groups = embeddings()
    half = z.to(dtype).requires_grad_()
    loss = multi_positive_infonce(half, groups, tau=tau)
    loss.backward()
    assert loss.dtype == dtype and torch.isfinite(loss) and torch.isfinite(half.grad).all()
    reference = multi_positive_infonce(half.detach().double(), groups, tau=tau)  # same inputs, float64
    assert loss.double().item() == pytest.approx(reference.item(), rel=2e-2)


def test_slide_infonce_is_finite_for_a_pack_of_temperatures_under_vmap():
    """The fused engine passes tau as a vmapped 0-d tensor, one per pack member."""
    z, groups = embeddings()
    taus = torch.tensor(TAUS)
    losses = vmap(lambda tau: multi_positive_infonce(z.half(), groups, tau=tau))(taus)
    assert torch.isfinite(losses).all()
    one_by_one = [multi_positive_infonce(z.half(), groups, tau=float(t)).item() for t in TAUS]
    np.testing.assert_allclose(losses.float().numpy(), one_by_one, rtol=1e-3)


def large_risks(seed: int = 0) -> tuple[np.ndarray, torch.Tensor]:
    """Survival risks around 1e4 whose spread within a specimen is about 1e-2."""
    rng = np.random.default_rng(seed)
    risks = (1e4 + rng.normal(0.0, 1e-2, size=12)).astype(np.float32)
    return risks, torch.arange(4).repeat_interleave(3)


def test_score_variance_keeps_its_precision_for_large_risks():
    risks, groups = large_risks()
    exact = np.mean([risks[groups.numpy() == k].astype(np.float64).var() for k in range(4)])
    got = group_variance(torch.from_numpy(risks), groups).item()
    assert got == pytest.approx(exact, rel=1e-3)


def test_score_variance_is_exact_under_vmap_over_a_pack():
    """Each pack member's variance under vmap equals the member computed alone (no Python branching)."""
    risks, groups = large_risks()
    pack = torch.from_numpy(np.stack([risks, risks * 0.5, risks - 9990.0]))
    vmapped = vmap(group_variance, in_dims=(0, None))(pack, groups)
    alone = torch.stack([group_variance(member, groups) for member in pack])
    torch.testing.assert_close(vmapped, alone)
    member = pack[0].clone().requires_grad_()
    group_variance(member, groups).backward()
    assert torch.isfinite(member.grad).all() and member.grad.abs().sum() > 0
