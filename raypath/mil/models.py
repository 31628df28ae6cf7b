"""MIL models with one contract: ``forward(features (B,N,D), mask (B,N) bool) -> MILOutput``.

Padding is handled by masks only: padded tiles get exactly zero attention (their logits are set
to the dtype's minimum, so ``exp`` underflows to 0), hence padding never changes a prediction.
Models are plain ``nn.Module`` s without Python control flow over bags, so their parameters can
be stacked with ``torch.func.stack_module_state`` and trained under ``vmap``. The built-in ones
start with a `TileProjection` and pool its output (`pool`), so a pack of G models can compute the
first, largest matmul of all G as one (`raypath.train.fused_model`).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from pydantic import Field
from torch import nn

from raypath.config import Registry


class MILOutput(NamedTuple):
    """What every MIL model returns; a NamedTuple so ``torch.func`` treats it as a pytree."""

    prediction: torch.Tensor  # (B, n_outputs) logits or risks
    embedding: torch.Tensor  # (B, hidden) pooled slide embedding
    attention: torch.Tensor  # (B, N) pooling weights, zero on padding, sum 1 per bag
    tile_embedding: torch.Tensor  # (B, N, hidden) projected tile features


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over tiles that ignores padding; an all-padding bag gets all-zero weights."""
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(filled, dim=-1) * mask


class TileProjection(nn.Sequential):
    """Linear + ReLU + dropout: the per-tile feature projection shared by both poolings.

    Its Linear on the raw features is most of a step's work; `activate` is the rest, so a caller
    holding the Linear's output (a pack's one matmul for all members) can finish the projection.
    """

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))

    def activate(self, linear_output: torch.Tensor) -> torch.Tensor:
        """ReLU and dropout of the Linear's output: `self(x) == self.activate(self[0](x))`."""
        return self[2](self[1](linear_output))


class GatedAttentionMIL(nn.Module):
    """Gated attention pooling (Ilse et al. 2018): a_n ∝ exp(w·(tanh(V h_n) ⊙ σ(U h_n)))."""

    def __init__(
        self, in_dim: int, *, hidden: int = 128, attention_dim: int = 64, dropout: float = 0.1,
        n_outputs: int = 1,
    ) -> None:
        super().__init__()
        self.project = TileProjection(in_dim, hidden, dropout)
        # V and U in one matmul: one GEMM instead of two on the largest tensor of the step.
        self.gate = nn.Linear(hidden, 2 * attention_dim)
        self.score = nn.Linear(attention_dim, 1)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> MILOutput:
        return self.pool(self.project(features), mask)

    def pool(self, tiles: torch.Tensor, mask: torch.Tensor) -> MILOutput:
        """Attention pooling of projected tiles (B, N, hidden)."""
        tanh_part, sigmoid_part = self.gate(tiles).chunk(2, dim=-1)
        logits = self.score(torch.tanh(tanh_part) * torch.sigmoid(sigmoid_part)).squeeze(-1)
        attention = masked_softmax(logits, mask)
        embedding = torch.einsum("bn,bnh->bh", attention, tiles)
        return MILOutput(self.head(embedding), embedding, attention, tiles)


class MeanPoolMIL(nn.Module):
    """Mean pooling over real tiles: the baseline every attention model must beat."""

    def __init__(self, in_dim: int, *, hidden: int = 128, dropout: float = 0.1, n_outputs: int = 1) -> None:
        super().__init__()
        self.project = TileProjection(in_dim, hidden, dropout)
        self.head = nn.Linear(hidden, n_outputs)

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> MILOutput:
        return self.pool(self.project(features), mask)

    def pool(self, tiles: torch.Tensor, mask: torch.Tensor) -> MILOutput:
        """Mean of projected tiles (B, N, hidden) over real tiles."""
        weights = mask.to(tiles.dtype)
        attention = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1.0)
        embedding = torch.einsum("bn,bnh->bh", attention, tiles)
        return MILOutput(self.head(embedding), embedding, attention, tiles)


BackboneFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class BackboneSpec:
    """A registered MIL backbone: its factory and the config settings it declares."""

    name: str
    factory: BackboneFactory
    settings: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


BACKBONES: Registry[BackboneSpec] = Registry("MIL backbone")


def register_backbone(name: str, *, settings: Mapping[str, tuple[Any, Any]] | None = None
                      ) -> Callable[[BackboneFactory], BackboneFactory]:
    """Decorator adding a MIL backbone, selectable as `model.kind: <name>`, with its settings fields.

    The factory is called as `factory(in_dim, n_outputs=..., hidden=..., dropout=..., **settings)`.
    """
    def add(factory: BackboneFactory) -> BackboneFactory:
        BACKBONES.add(name, BackboneSpec(name=name, factory=factory, settings=dict(settings or {})))
        return factory
    return add


@register_backbone("gated", settings={
    "attention_dim": (int, Field(64, gt=0, description="width of the gated attention"))})
def _gated(in_dim: int, *, n_outputs: int, hidden: int, dropout: float, attention_dim: int,
           **_: Any) -> nn.Module:
    return GatedAttentionMIL(in_dim, hidden=hidden, attention_dim=attention_dim, dropout=dropout,
                             n_outputs=n_outputs)


@register_backbone("mean")
def _mean(in_dim: int, *, n_outputs: int, hidden: int, dropout: float, **_: Any) -> nn.Module:
    return MeanPoolMIL(in_dim, hidden=hidden, dropout=dropout, n_outputs=n_outputs)


def build_mil(kind: str, *, in_dim: int, n_outputs: int, hidden: int, dropout: float,
              **settings: Any) -> nn.Module:
    """The registered MIL backbone `kind`; `settings` are the model config's declared fields (their
    declared defaults where not given)."""
    spec = BACKBONES.lookup(kind)
    declared = {name: field_info.default for name, (_, field_info) in spec.settings.items()}
    settings = {**declared, **settings}
    return spec.factory(in_dim, n_outputs=n_outputs, hidden=hidden, dropout=dropout, **settings)
