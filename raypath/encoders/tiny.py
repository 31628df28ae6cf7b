"""Tiny random stand-ins: each real card's architecture family, shrunk to run in milliseconds.

They keep everything that decides code paths (timm model name, patch size, registers, SwiGLU,
LayerScale, output rule, weights format, preprocessing) and shrink only width, depth, heads and
input size (4×4 patches). Tiles are resized to that input size, so demo/test features are cheap
but flow through exactly the code a real FM uses.
"""

import dataclasses

from raypath.encoders.backbone import output_dim, patch_size
from raypath.encoders.card import ModelCard, PoolerSpec

TINY_WIDTH = 32
TINY_DEPTH = 2
TINY_HEADS = 2
TINY_GRID = 4  # patches per side
TINY_LAYERSCALE = 1.0
TINY_POOLER = PoolerSpec(dim=16, heads=2, queries=1)


def tiny_card(card: ModelCard) -> ModelCard:
    """The `tiny-<name>` card of a real card."""
    size = TINY_GRID * patch_size(card)
    kwargs = {**card.timm_kwargs, "embed_dim": TINY_WIDTH, "depth": TINY_DEPTH, "num_heads": TINY_HEADS}
    if "init_values" in kwargs:
        # LayerScale stays (same code path), but at the usual 1e-5 init a random ViT's blocks are
        # near no-ops and every tile gets the same CLS feature; trained FMs have gammas of O(0.1-1).
        kwargs["init_values"] = TINY_LAYERSCALE
    pooler = TINY_POOLER if card.pooler else None
    return dataclasses.replace(
        card, name=f"tiny-{card.name}", title=f"tiny-{card.title}", timm_kwargs=kwargs, hub_id=None,
        input_size=size, embed_dim=output_dim(dataclasses.replace(card, pooler=pooler), TINY_WIDTH),
        licence="random weights (test/demo stand-in)", source=f"derived from the {card.name} card",
        pooler=pooler, tiny=True, parent=card.name,
        notes=f"random {card.title}-family ViT; tiles resized to {size}px",
    )
