"""A MIL backbone plus the small heads the robustness losses need, with one ``compute_loss``.

Heads exist only for active losses, so the baseline has exactly the backbone's parameters.
``compute_loss`` returns *unweighted* losses by name: the caller combines them with weights
(``total_loss``), which lets fused multi-config training vmap over a weight tensor.
"""

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import nn

from raypath.mil.batch import Batch
from raypath.mil.losses import task_loss
from raypath.mil.models import MILOutput, build_mil
from raypath.mil.registry import LOSSES


class RobustMIL(nn.Module):
    """Backbone + optional projection heads (InfoNCE, tiles) + optional scanner head."""

    def __init__(
        self, *, task: Literal["binary", "multiclass", "survival"], backbone: nn.Module, hidden: int,
        active: Iterable[str] = (), projection_dim: int | None = 64, n_scanners: int = 0,
        tau: float = 0.1, tile_mode: Literal["cosine", "infonce"] = "cosine",
    ) -> None:
        super().__init__()
        unknown = set(active) - set(LOSSES)
        if unknown:
            raise ValueError(f"unknown robustness losses {sorted(unknown)}; known: {sorted(LOSSES)}")
        self.task, self.tau, self.tile_mode = task, tau, tile_mode
        self.active = tuple(sorted(set(active)))
        self.backbone = backbone
        self.slide_projection = _projection(hidden, projection_dim) if "infonce" in self.active else None
        self.tile_projection = (_projection(hidden, projection_dim)
                                if "tile_consistency" in self.active else None)
        if "adversarial" in self.active and n_scanners < 2:
            raise ValueError("the adversarial scanner loss needs at least 2 training scanners")
        self.scanner_head = nn.Linear(hidden, n_scanners) if "adversarial" in self.active else None

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> MILOutput:
        return self.backbone(features, mask)

    def project_slide(self, embedding: torch.Tensor) -> torch.Tensor:
        return embedding if self.slide_projection is None else self.slide_projection(embedding)

    def project_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        return tiles if self.tile_projection is None else self.tile_projection(tiles)

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(prediction, {"task": ..., <active robustness loss>: ...}), torchmil style."""
        output = self(batch.features, batch.mask)
        losses = {"task": task_loss(self.task, output.prediction, label=batch.label, time=batch.time,
                                    event=batch.event)}
        for name in self.active:
            losses[name] = LOSSES[name](self, output, batch)
        return output.prediction, losses


class Objective(nn.Module):
    """``forward(batch) -> (prediction, losses)``, the shape ``torch.func.functional_call`` wants."""

    def __init__(self, model: RobustMIL) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.model.compute_loss(batch)


def _projection(hidden: int, dim: int | None) -> nn.Module | None:
    """Small MLP head (SimCLR style) so the contrastive pull acts on a projection, not the embedding."""
    if dim is None:
        return None
    return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))


def total_loss(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """task + Σ_j λ_j L_j over the robustness losses present; missing weights count as 0."""
    total = losses["task"]
    for name, value in losses.items():
        if name != "task":
            total = total + weights.get(name, 0.0) * value
    return total


def build_robust_mil(
    *, task: Literal["binary", "multiclass", "survival"], kind: Literal["gated", "mean"], in_dim: int,
    n_outputs: int, hidden: int = 128, attention_dim: int = 64, dropout: float = 0.1,
    weights: Mapping[str, float] | None = None, projection_dim: int | None = 64, n_scanners: int = 0,
    tau: float = 0.1, tile_mode: Literal["cosine", "infonce"] = "cosine",
) -> RobustMIL:
    """A RobustMIL whose active losses are those with non-zero weight."""
    backbone = build_mil(kind, in_dim=in_dim, hidden=hidden, attention_dim=attention_dim,
                         dropout=dropout, n_outputs=n_outputs)
    active = [name for name, weight in (weights or {}).items() if weight]
    return RobustMIL(task=task, backbone=backbone, hidden=hidden, active=active,
                     projection_dim=projection_dim, n_scanners=n_scanners, tau=tau, tile_mode=tile_mode)
