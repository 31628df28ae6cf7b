"""Robustness losses by name: each declares its config weight, its settings and the head it needs.

A loss is one decorated function `(model, output, batch) -> scalar`; `register_loss` records what
else it needs, and `raypath.mil.config.LossConfig` gains a weight field (0 = off, not computed) and
the declared settings, `RobustMIL` builds the declared head only while the weight is non-zero, and
data preparation checks `needs_tile_pairs`. Nothing else is edited to add a loss.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from raypath.config import Registry
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


@dataclass(frozen=True)
class HeadContext:
    """What a head factory may size itself by."""

    hidden: int
    projection_dim: int | None
    n_scanners: int


HeadFactory = Callable[[HeadContext], nn.Module]


@dataclass(frozen=True)
class LossSpec:
    """A registered robustness loss and what it needs besides the backbone."""

    name: str
    fn: LossFn
    description: str
    head: HeadFactory | None = None
    needs_tile_pairs: bool = False
    settings: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


LOSSES: Registry[LossSpec] = Registry("robustness loss")


def register_loss(name: str, *, description: str, head: HeadFactory | None = None,
                  needs_tile_pairs: bool = False, settings: Mapping[str, tuple[Any, Any]] | None = None
                  ) -> Callable[[LossFn], LossFn]:
    """Decorator adding a robustness loss (and its weight field `losses.<name>`) to the registry."""
    def add(fn: LossFn) -> LossFn:
        LOSSES.add(name, LossSpec(name=name, fn=fn, description=description, head=head,
                                  needs_tile_pairs=needs_tile_pairs, settings=dict(settings or {})))
        return fn
    return add


def projection(context: HeadContext) -> nn.Module:
    """Small MLP head (SimCLR style) so a contrastive pull acts on a projection, not the embedding."""
    if context.projection_dim is None:
        return nn.Identity()
    return nn.Sequential(nn.Linear(context.hidden, context.hidden), nn.ReLU(),
                         nn.Linear(context.hidden, context.projection_dim))


def scanner_classifier(context: HeadContext) -> nn.Module:
    """Linear scanner classifier on the slide embedding (the adversary)."""
    if context.n_scanners < 2:
        raise ValueError("the adversarial scanner loss needs at least 2 training scanners")
    return nn.Linear(context.hidden, context.n_scanners)


@register_loss("infonce", head=projection,
               description="slide InfoNCE: scans of one specimen attract, other specimens repel")
def _infonce(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    return multi_positive_infonce(model.head("infonce")(output.embedding), batch.specimen, tau=model.tau)


@register_loss("score_consistency",
               description="variance of a specimen's scores (probabilities or risks) across its scans")
def _score_consistency(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    return group_variance(task_scores(model.task, output.prediction), batch.specimen)


@register_loss("tile_consistency", head=projection, needs_tile_pairs=True,
               description="registered tiles of one specimen embed alike on every scanner",
               settings={"tile_mode": (Literal["cosine", "infonce"], Field(
                   "cosine", description="tile loss: cosine distance of pairs, or InfoNCE over tiles"))})
def _tile_consistency(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    tiles = model.head("tile_consistency")(output.tile_embedding)
    if model.options["tile_mode"] == "infonce":
        return _tile_infonce(tiles, batch.tile_group, mask=batch.mask, tau=model.tau)
    return matched_tile_cosine(tiles, tile_group=batch.tile_group)


def _tile_infonce(
    tiles: torch.Tensor, tile_group: torch.Tensor, *, mask: torch.Tensor, tau: float | torch.Tensor,
) -> torch.Tensor:
    """InfoNCE over matched tiles of the batch: other scans of the same location are positives.

    Unmatched real tiles get unique negative ids so they act as negatives only; padded tiles (mask
    False) take no part at all, so a loss never depends on how far a batch was padded.
    """
    flat = tiles.reshape(-1, tiles.shape[-1])
    groups = tile_group.reshape(-1)
    unique_neg = -1 - torch.arange(groups.shape[0], device=groups.device)
    return multi_positive_infonce(flat, torch.where(groups >= 0, groups, unique_neg), tau=tau,
                                  valid=mask.reshape(-1))


@register_loss("attention_agreement", needs_tile_pairs=True,
               description="a matched tissue location gets the same attention on every scanner")
def _attention_agreement(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    return attention_agreement(output.attention, mask=batch.mask, tile_group=batch.tile_group)


@register_loss("adversarial", head=scanner_classifier, description=
               "scanner classifier on gradient-reversed embeddings: the encoder hides the scanner")
def _adversarial(model: "RobustMIL", output: MILOutput, batch: Batch) -> torch.Tensor:
    logits = model.head("adversarial")(grad_reverse(output.embedding))
    return F.cross_entropy(logits, batch.scanner)
