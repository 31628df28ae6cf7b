"""Instantiate a card's network: a timm ViT trunk plus the pooling module its output rule needs.

Weights are never fetched here (always `pretrained=False`); `raypath.encoders.loading` fills them.
"""

import re
from typing import Any

import torch
from torch import nn

from raypath.encoders.card import ModelCard
from raypath.encoders.compat import import_timm
from raypath.encoders.pooling import AttentionalPool, TokenPool


def _layer(name: str) -> type[nn.Module]:
    """Cards name layer classes as strings so they stay JSON; resolve them here."""
    timm = import_timm()
    layers = {"swiglu_packed": timm.layers.SwiGLUPacked, "silu": nn.SiLU, "gelu": nn.GELU}
    if name not in layers:
        raise ValueError(f"unknown layer {name!r} in a model card; known: {sorted(layers)}")
    return layers[name]


def timm_kwargs(card: ModelCard) -> dict[str, Any]:
    """The keyword arguments for `timm.create_model`, layer names resolved."""
    kwargs = {"num_classes": 0, **card.timm_kwargs, "img_size": card.input_size}
    for key in ("mlp_layer", "act_layer"):
        if isinstance(kwargs.get(key), str):
            kwargs[key] = _layer(kwargs[key])
    return kwargs


def patch_size(card: ModelCard) -> int:
    """The ViT patch size: an explicit kwarg wins over the one in the timm model name."""
    if "patch_size" in card.timm_kwargs:
        return int(card.timm_kwargs["patch_size"])
    found = re.search(r"patch(\d+)", card.architecture)
    if not found:
        raise ValueError(f"card {card.name}: cannot tell the patch size of {card.architecture}")
    return int(found.group(1))


def create_trunk(card: ModelCard) -> nn.Module:
    """The timm ViT, randomly initialised (or on the meta device when called under one)."""
    timm = import_timm()
    return timm.create_model(card.architecture, pretrained=False, **timm_kwargs(card))


def create_pool(card: ModelCard, trunk: nn.Module) -> nn.Module:
    """The module turning trunk tokens into the card's embedding."""
    if card.output in ("attn-pool", "attn-pool+proj"):
        assert card.pooler is not None  # checked by ModelCard
        return AttentionalPool(
            context_dim=trunk.num_features, dim=card.pooler.dim, heads=card.pooler.heads,
            queries=card.pooler.queries, project=card.output == "attn-pool+proj",
        )
    return TokenPool(card.output, num_prefix_tokens=trunk.num_prefix_tokens)


def output_dim(card: ModelCard, width: int) -> int:
    """Embedding length the output rule yields for a trunk of this width."""
    if card.pooler is not None and card.output.startswith("attn-pool"):
        return card.pooler.dim
    return 2 * width if card.output == "cls+mean" else width


def meta_device() -> torch.device:
    """Build big models without allocating or initialising them; weights are assigned later."""
    return torch.device("meta")
