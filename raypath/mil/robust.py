"""A MIL backbone plus the heads its active robustness losses declare, with one ``compute_loss``.

Heads exist only for active losses, so the baseline has exactly the backbone's parameters.
``compute_loss`` returns *unweighted* losses by name: the caller combines them with weights
(``total_loss``), which lets fused multi-config training vmap over a weight tensor.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from raypath.mil.batch import Batch
from raypath.mil.losses import task_loss
from raypath.mil.models import MILOutput, build_mil
from raypath.mil.registry import LOSSES, HeadContext

Task = Literal["binary", "multiclass", "survival"]


class RobustMIL(nn.Module):
    """Backbone + the heads of the active losses (`heads[<loss name>]`)."""

    def __init__(
        self, *, task: Task, backbone: nn.Module, hidden: int, active: Iterable[str] = (),
        projection_dim: int | None = 64, n_scanners: int = 0, tau: float = 0.1,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        unknown = set(active) - set(LOSSES)
        if unknown:
            raise ValueError(f"unknown robustness losses {sorted(unknown)}; known: {sorted(LOSSES)}")
        self.task, self.tau = task, tau
        self.options = {"tile_mode": "cosine", **(options or {})}
        self.active = tuple(name for name in LOSSES if name in set(active))  # registration order
        self.backbone = backbone
        context = HeadContext(hidden=hidden, projection_dim=projection_dim, n_scanners=n_scanners)
        self.heads = nn.ModuleDict({name: LOSSES[name].head(context) for name in self.active
                                    if LOSSES[name].head is not None})

    def forward(self, features: torch.Tensor, mask: torch.Tensor, *,
                projected: torch.Tensor | None = None) -> MILOutput:
        """The backbone's output; with `projected` (its `TileProjection`'s Linear already applied to
        `features`, e.g. by a pack for all members at once) the backbone continues from there."""
        if projected is None:
            return self.backbone(features, mask)
        return self.backbone.pool(self.backbone.project.activate(projected), mask)

    def head(self, loss: str) -> nn.Module:
        """The head loss `loss` declared (present only while that loss is active)."""
        return self.heads[loss]

    def compute_loss(self, batch: Batch, *, projected: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(prediction, {"task": ..., <active robustness loss>: ...}), torchmil style (`projected`: see
        `forward`)."""
        output = self(batch.features, batch.mask, projected=projected)
        losses = {"task": task_loss(self.task, output.prediction, label=batch.label, time=batch.time,
                                    event=batch.event)}
        for name in self.active:
            losses[name] = LOSSES[name].fn(self, output, batch)
        return output.prediction, losses


class Objective(nn.Module):
    """``forward(batch) -> (prediction, losses)``, the shape ``torch.func.functional_call`` wants."""

    def __init__(self, model: RobustMIL) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, projected: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.model.compute_loss(batch, projected=projected)


def total_loss(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """task + Σ_j λ_j L_j over the robustness losses present; missing weights count as 0."""
    total = losses["task"]
    for name, value in losses.items():
        if name != "task":
            total = total + weights.get(name, 0.0) * value
    return total


def build_robust_mil(
    *, task: Task, kind: str, in_dim: int, n_outputs: int, hidden: int = 128, dropout: float = 0.1,
    weights: Mapping[str, float] | None = None, projection_dim: int | None = 64, n_scanners: int = 0,
    tau: float = 0.1, options: Mapping[str, Any] | None = None, **backbone_settings: Any,
) -> RobustMIL:
    """A RobustMIL whose active losses are those with non-zero weight."""
    backbone = build_mil(kind, in_dim=in_dim, n_outputs=n_outputs, hidden=hidden, dropout=dropout,
                         **backbone_settings)
    active = [name for name, weight in (weights or {}).items() if weight]
    return RobustMIL(task=task, backbone=backbone, hidden=hidden, active=active,
                     projection_dim=projection_dim, n_scanners=n_scanners, tau=tau, options=options)
