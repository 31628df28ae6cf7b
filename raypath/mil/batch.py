"""The batch every model and loss consumes: flat bags plus the indices that pair them.

Bags are laid out flat (B = all scans of the K specimens in the batch), with a dense specimen
index per bag, so group statistics (InfoNCE positives, score variance, matched tiles) are
scatter/matmul operations, never Python loops. A NamedTuple is a pytree, so ``torch.func.vmap``
can share one batch across stacked model parameters (``in_dims=None``).
"""

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    """Padded tensors of one step; ``tile_group`` pairs tiles of one specimen across its scans."""

    features: torch.Tensor  # (B, N, D) float32, zero on padding
    mask: torch.Tensor  # (B, N) bool, True on real tiles
    specimen: torch.Tensor  # (B,) int64, dense 0..K-1 within the batch
    scanner: torch.Tensor  # (B,) int64, global scanner code
    tile_group: torch.Tensor  # (B, N) int64 dense id of (specimen, tissue location); -1 = unmatched
    label: torch.Tensor  # (B,) int64 class, -1 if unknown
    time: torch.Tensor  # (B,) float32 survival time, nan if unknown
    event: torch.Tensor  # (B,) float32 1 = event, 0 = censored
    slide: torch.Tensor  # (B,) int64 index of the bag in its BagSet

