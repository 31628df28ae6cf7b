"""Fixtures for the encoder tests: random tiles and writers of published checkpoint layouts.

The writers invert `raypath.encoders.formats` using the key names of the real checkpoints
(transformers `Dinov2Model`, CONCH's CoCa `visual.*`), so a tiny model saved through them is
loaded back by exactly the code that loads the real weights.
"""

import numpy as np
import pytest
import torch

StateDict = dict[str, torch.Tensor]


@pytest.fixture
def tiles() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)


def _hf_block(layer: str, state: StateDict) -> StateDict:
    src, dst = f"backbone.blocks.{layer}.", f"encoder.layer.{layer}."
    out: StateDict = {}
    for kind in ("weight", "bias"):
        parts = state[f"{src}attn.qkv.{kind}"].chunk(3)
        for name, part in zip(("query", "key", "value"), parts, strict=True):
            out[f"{dst}attention.attention.{name}.{kind}"] = part.clone()
        out[f"{dst}attention.output.dense.{kind}"] = state[f"{src}attn.proj.{kind}"]
        for norm in ("norm1", "norm2"):
            out[f"{dst}{norm}.{kind}"] = state[f"{src}{norm}.{kind}"]
        for fc in ("fc1", "fc2"):
            out[f"{dst}mlp.{fc}.{kind}"] = state[f"{src}mlp.{fc}.{kind}"]
    out[f"{dst}layer_scale1.lambda1"] = state[f"{src}ls1.gamma"]
    out[f"{dst}layer_scale2.lambda1"] = state[f"{src}ls2.gamma"]
    return out


def to_hf_dinov2(state: StateDict) -> StateDict:
    """timm ViT keys → transformers Dinov2 keys (registers: CLS position embedding set to 0)."""
    layers = {k.split(".")[2] for k in state if k.startswith("backbone.blocks.")}
    out: StateDict = {}
    for layer in layers:
        out.update(_hf_block(layer, state))
    pos, cls = state["backbone.pos_embed"], state["backbone.cls_token"]
    if "backbone.reg_token" in state:
        out["embeddings.register_tokens"] = state["backbone.reg_token"]
        pos = torch.cat([torch.zeros_like(cls), pos], dim=1)
    out.update({
        "embeddings.cls_token": cls, "embeddings.position_embeddings": pos,
        "embeddings.mask_token": torch.zeros(1, cls.shape[-1]),
        "embeddings.patch_embeddings.projection.weight": state["backbone.patch_embed.proj.weight"],
        "embeddings.patch_embeddings.projection.bias": state["backbone.patch_embed.proj.bias"],
        "layernorm.weight": state["backbone.norm.weight"], "layernorm.bias": state["backbone.norm.bias"],
    })
    return out


def to_conch(state: StateDict) -> StateDict:
    """Encoder keys → CONCH CoCa keys, plus text-tower tensors that loading must ignore."""
    renames = {"backbone.": "visual.trunk.", "pool.pooler.": "visual.attn_pool_contrast.",
               "pool.ln.": "visual.ln_contrast.", "pool.proj": "visual.proj_contrast"}
    out = {"text.token_embedding.weight": torch.zeros(4, 8), "logit_scale": torch.tensor(1.0)}
    for key, value in state.items():
        old = next(prefix for prefix in renames if key.startswith(prefix))
        out[renames[old] + key.removeprefix(old)] = value
    return out


def to_timm(state: StateDict) -> StateDict:
    return {key.removeprefix("backbone."): value for key, value in state.items()}


@pytest.fixture
def published_layout():
    """weights format → function writing an Encoder state dict in that published layout."""
    return {"timm": to_timm, "hf-dinov2": to_hf_dinov2, "conch": to_conch}
