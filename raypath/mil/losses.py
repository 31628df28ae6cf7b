"""Task losses and the pure tensor math of the robustness losses (formulas in the README, "Losses").

Group structure comes in as integer ids (specimen per bag, tissue location per tile); group sums
are ``index_add`` over at most B groups, so nothing calls ``.item()`` and every function runs
unchanged under ``torch.func.vmap``.
"""

import torch
import torch.nn.functional as F


def _group_sums(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, ...]:
    """Per-group sums of `values` (n, ...) and member counts, groups in [0, n_groups)."""
    sums = values.new_zeros((n_groups, *values.shape[1:])).index_add(0, groups, values)
    counts = values.new_zeros(n_groups).index_add(0, groups, torch.ones_like(groups, dtype=values.dtype))
    return sums, counts


def _zero_like_graph(reference: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the autograd graph, for batches where a loss has nothing to compare."""
    return reference.sum() * 0.0


def multi_positive_infonce(
    embeddings: torch.Tensor, groups: torch.Tensor, *, tau: float | torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE with every other member of the anchor's group as a positive, others as negatives.

    L = mean_i −(1/|P(i)|) Σ_{p∈P(i)} log(exp(z_i·z_p/τ) / Σ_{a≠i} exp(z_i·z_a/τ)); anchors without
    positives are skipped. Embeddings are L2-normalised here so τ has its usual meaning. Rows with
    `valid` False (padding) are neither anchors, positives nor negatives. The logits are formed in
    float32 with autocast off, and masked terms are selected away rather than multiplied by zero:
    at τ = 1e-3 a float16 logit minus its log-sum-exp overflows to −inf, and −inf · 0 is NaN.
    """
    keep = torch.ones_like(groups, dtype=torch.bool) if valid is None else valid.to(torch.bool)
    with torch.autocast(device_type=embeddings.device.type, enabled=False):
        z = F.normalize(embeddings.float(), dim=-1)
        n = z.shape[0]
        eye = torch.eye(n, dtype=torch.bool, device=z.device)
        candidate = keep[None, :] & keep[:, None] & ~eye
        logits = (z @ z.T) / tau  # tau: a float, or a float32 0-d tensor per vmapped member
        logits = logits.masked_fill(~candidate, torch.finfo(z.dtype).min)
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        positive = (groups[:, None] == groups[None, :]) & candidate
        n_pos = positive.sum(dim=1)
        per_anchor = -torch.where(positive, log_prob, 0.0).sum(dim=1) / n_pos.clamp_min(1)
        has_pos = n_pos > 0
        loss = torch.where(has_pos, per_anchor, 0.0).sum() / has_pos.sum().clamp_min(1)
    return loss.to(embeddings.dtype)


def _centred_variance(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, ...]:
    """Per-group population variance of `values` (n, c) and member counts: the corrected two-pass form.

    The mean is gathered back to every member and the centred squares summed; E[x²] − E[x]² would
    cancel catastrophically once |mean| ≫ spread (float32 risks around 1e4 lose every digit). The
    mean itself is rounded, so (Σd)²/n is subtracted (d = x − mean, Σd = 0 in exact arithmetic):
    that removes the rounding error's square, the residual bias of a plain two-pass sum.
    """
    sums, counts = _group_sums(values, groups, n_groups)
    safe = counts.clamp_min(1.0)[:, None]
    centred = values - (sums / safe).index_select(0, groups)
    drift, _ = _group_sums(centred, groups, n_groups)
    squares, _ = _group_sums(centred * centred, groups, n_groups)
    return ((squares - drift * drift / safe) / safe).clamp_min(0.0), counts


def group_variance(scores: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean over groups with ≥2 members of the (population) variance of their scores.

    `scores` is (n,) or (n, c); for c > 1 the variance is averaged over columns.
    """
    values = scores if scores.dim() == 2 else scores[:, None]
    variance, counts = _centred_variance(values, groups, values.shape[0])
    paired = (counts >= 2).to(values.dtype)
    return (variance.mean(dim=1) * paired).sum() / paired.sum().clamp_min(1.0)


def _matched_sums(values: torch.Tensor, tile_group: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Group sums, sums of squares and counts over matched tiles; groups are dense per batch."""
    matched = (tile_group >= 0).reshape(-1)
    flat = values.reshape(tile_group.numel(), -1) * matched[:, None].to(values.dtype)
    ids = tile_group.reshape(-1).clamp_min(0)
    sums, _ = _group_sums(flat, ids, ids.shape[0])
    counts, _ = _group_sums(matched.to(values.dtype), ids, ids.shape[0])
    return flat, sums, counts


def matched_tile_cosine(tiles: torch.Tensor, *, tile_group: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance 1 − z_u·z_v over registered tile pairs (u, v) of one specimen.

    `tile_group` (B, N) numbers each tissue location of each specimen (−1 = no match), so
    Σ_{u<v} z_u·z_v = (|Σz|² − Σ|z|²)/2 per group: O(tiles), no explicit pair list.
    """
    z = F.normalize(tiles, dim=-1)
    _, sums, counts = _matched_sums(z, tile_group)
    pair_dots = ((sums * sums).sum(dim=1) - counts) / 2  # |z|² = 1 for each matched tile
    n_pairs = (counts * (counts - 1) / 2).sum()
    loss = (n_pairs - pair_dots.sum()) / n_pairs.clamp_min(1.0)
    return torch.where(n_pairs > 0, loss, _zero_like_graph(tiles))


def attention_agreement(
    attention: torch.Tensor, *, mask: torch.Tensor, tile_group: torch.Tensor,
) -> torch.Tensor:
    """Variance across scans of the attention one matched tissue location gets.

    Attention is scaled by the bag's tile count so 'uniform' is 1 whatever the bag size.
    """
    scaled = attention * mask.sum(dim=1, keepdim=True).to(attention.dtype)
    matched = (tile_group >= 0).reshape(-1)
    ids = tile_group.reshape(-1).clamp_min(0)
    # Unmatched tiles go to a spare group past every real one, so they never touch a real mean.
    spare = ids.shape[0]
    ids = torch.where(matched, ids, spare)
    variance, counts = _centred_variance(scaled.reshape(-1, 1), ids, spare + 1)
    paired = (counts[:spare] >= 2).to(attention.dtype)
    return (variance[:spare, 0] * paired).sum() / paired.sum().clamp_min(1.0)


def cox_partial_likelihood(
    risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, *, valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative Cox partial log-likelihood with Breslow ties, averaged over events.

    −(1/n_events) Σ_{i: event} [r_i − log Σ_{j: t_j ≥ t_i} exp(r_j)]; rows with valid=False take
    part neither as events nor in risk sets. A batch without events gives a graph-keeping zero.
    """
    keep = torch.ones_like(event, dtype=torch.bool) if valid is None else valid
    keep = keep & ~torch.isnan(time)
    at_risk = (time[None, :] >= time[:, None]) & keep[None, :]
    log_risk_set = torch.logsumexp(risk[None, :].masked_fill(~at_risk, torch.finfo(risk.dtype).min), dim=1)
    events = event * keep.to(event.dtype)
    n_events = events.sum()
    loss = -((risk - log_risk_set) * events).sum() / n_events.clamp_min(1.0)
    return torch.where(n_events > 0, loss, _zero_like_graph(risk))


def task_loss(task: str, prediction: torch.Tensor, *, label: torch.Tensor, time: torch.Tensor,
              event: torch.Tensor) -> torch.Tensor:
    """The supervised loss of `task`; bags with unknown targets (label -1 / time nan) are ignored."""
    if task == "binary":
        known = (label >= 0).to(prediction.dtype)
        per_bag = F.binary_cross_entropy_with_logits(
            prediction[:, 0], label.clamp_min(0).to(prediction.dtype), reduction="none")
        return (per_bag * known).sum() / known.sum().clamp_min(1.0)
    if task == "multiclass":
        known = (label >= 0).to(prediction.dtype)
        per_bag = F.cross_entropy(prediction, label.clamp_min(0), reduction="none")
        return (per_bag * known).sum() / known.sum().clamp_min(1.0)
    if task == "survival":
        return cox_partial_likelihood(prediction[:, 0], time, event)
    raise ValueError(f"unknown task {task!r}; expected binary, multiclass or survival")


def task_scores(task: str, prediction: torch.Tensor) -> torch.Tensor:
    """The score robustness is measured on: probabilities for classification, risks for survival."""
    if task == "binary":
        return torch.sigmoid(prediction[:, 0])
    if task == "multiclass":
        return torch.softmax(prediction, dim=-1)
    return prediction[:, 0]
