"""Robustness losses by name. Each maps (model, output, batch) to a scalar tensor.

A loss with weight 0 is not in the active set and is never computed. New losses register with
``@register_loss("name")``; the training config's weight keys must match registered names.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from raypath.mil.batch import Batch
from raypath.mil.losses import (
    attention_agreement,
    group_variance,
    matched_tile_cosine,
    multi_positive_infonce,
    task_scores,
)
from raypath.mil.models import MILOutput
from raypath.mil.reversal import grad_reverse

if TYPE_CHECKING:
    from raypath.mil.robust import RobustMIL

LossFn = Callable[["RobustMIL", MILOutput, Batch], torch.Tensor]
LOSSES: dict[str, LossFn] = {}
# Losses that compare tiles across scans need registered tile pairs in the data.
NEEDS_TILE_PAIRS = frozenset({"tile_consistency", "attention_agreement"})


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    """Decorator adding a robustness loss to the registry under `name`."""
    def add(fn: LossFn) -> LossFn:
        if name in LOSSES:
            raise ValueError(f"robustness loss {name!r} is already registered")
        LOSSES[name] = fn
        return fn
    return add


@register_loss("infonce")
def _infonce(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    """Slide embeddings of one specimen's scans attract; other specimens repel."""
    return multi_positive_infonce(model.project_slide(output.embedding), batch.specimen, tau=model.tau)


@register_loss("score_consistency")
def _score_consistency(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    """Variance of a specimen's scores (probabilities or risks) across its scans."""
    return group_variance(task_scores(model.task, output.prediction), batch.specimen)


@register_loss("tile_consistency")
def _tile_consistency(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    """Registered tiles of one specimen should embed alike on every scanner."""
    tiles = model.project_tiles(output.tile_embedding)
    if model.tile_mode == "infonce":
        return _tile_infonce(tiles, batch.tile_group, tau=model.tau)
    return matched_tile_cosine(tiles, tile_group=batch.tile_group)


def _tile_infonce(tiles: torch.Tensor, tile_group: torch.Tensor, *, tau: float) -> torch.Tensor:
    """InfoNCE over matched tiles of the batch: other scans of the same location are positives.

    Unmatched tiles are given unique negative ids so they act as negatives only.
    """
    flat = tiles.reshape(-1, tiles.shape[-1])
    groups = tile_group.reshape(-1)
    unique_neg = -1 - torch.arange(groups.shape[0], device=groups.device)
    return multi_positive_infonce(flat, torch.where(groups >= 0, groups, unique_neg), tau=tau)


@register_loss("attention_agreement")
def _attention_agreement(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    """A matched tissue location should get the same attention on every scanner."""
    return attention_agreement(output.attention, mask=batch.mask, tile_group=batch.tile_group)


@register_loss("adversarial")
def _adversarial(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    """Scanner classifier on reversed-gradient embeddings: the encoder learns to hide the scanner."""
    logits = model.scanner_head(grad_reverse(output.embedding))
    return F.cross_entropy(logits, batch.scanner)
