"""Map published checkpoints onto raypath's `Encoder` (keys `backbone.*` = timm ViT, `pool.*`).

Three layouts cover the zoo:
- ``timm``: the timm state dict itself (UNI, UNI2-h, Virchow2, H-optimus, Prov-GigaPath).
- ``hf-dinov2``: Hugging Face `Dinov2Model` (Phikon-v2) or HistAI's DINOv2-with-registers
  (Hibou). Converted here instead of depending on `transformers`: q/k/v are concatenated into
  timm's fused `qkv`; with registers, timm (``no_embed_class``) keeps position embeddings for
  patches only, so the CLS position embedding is folded into the CLS token, which is exact
  because DINOv2 adds it to the CLS token before the registers are inserted.
- ``conch``: the CoCa checkpoint; only the vision tower (`visual.*`) is kept.
"""

from collections.abc import Callable, Mapping

import torch

StateDict = dict[str, torch.Tensor]

_HF_BLOCK = {
    "norm1": "norm1", "norm2": "norm2", "attention.output.dense": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
}
_HF_EMBED = {
    "embeddings.cls_token": "cls_token", "embeddings.register_tokens": "reg_token",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
}


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def from_timm(state: Mapping[str, torch.Tensor]) -> StateDict:
    """A timm checkpoint; tolerate the `module.` prefix DDP-saved files carry."""
    return {f"backbone.{k}": v for k, v in _strip(state, "module.").items()}


def _hf_block(layer: str, state: Mapping[str, torch.Tensor]) -> StateDict:
    prefix = f"encoder.layer.{layer}."
    out: StateDict = {}
    for kind in ("weight", "bias"):
        parts = [state[f"{prefix}attention.attention.{n}.{kind}"] for n in ("query", "key", "value")]
        out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)
    for hf_name, timm_name in _HF_BLOCK.items():
        for kind in ("weight", "bias", ""):
            key = f"{prefix}{hf_name}.{kind}" if kind else f"{prefix}{hf_name}"
            if key in state:
                out[f"backbone.blocks.{layer}.{timm_name}{'.' + kind if kind else ''}"] = state[key]
    return out


def from_hf_dinov2(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Hugging Face DINOv2 (with or without registers) → timm ViT keys."""
    state = _strip(state, "dinov2.")
    layers = sorted({k.split(".")[2] for k in state if k.startswith("encoder.layer.")}, key=int)
    out: StateDict = {}
    for layer in layers:
        out.update(_hf_block(layer, state))
    for hf_name, timm_name in _HF_EMBED.items():
        if hf_name in state:
            out[f"backbone.{timm_name}"] = state[hf_name]
    pos = state["embeddings.position_embeddings"]
    if "embeddings.register_tokens" in state:  # timm reg4 models: no_embed_class=True
        out["backbone.cls_token"] = out["backbone.cls_token"] + pos[:, :1]
        pos = pos[:, 1:]
    out["backbone.pos_embed"] = pos
    return out


def from_conch(state: Mapping[str, torch.Tensor]) -> StateDict:
    """CONCH CoCa checkpoint → trunk + contrastive attentional pool; text towers dropped."""
    renames = {"visual.trunk.": "backbone.", "visual.attn_pool_contrast.": "pool.pooler.",
               "visual.ln_contrast.": "pool.ln.", "visual.proj_contrast": "pool.proj"}
    out: StateDict = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                out[new + key.removeprefix(old)] = value
    return out


CONVERTERS: dict[str, Callable[[Mapping[str, torch.Tensor]], StateDict]] = {
    "timm": from_timm, "hf-dinov2": from_hf_dinov2, "conch": from_conch,
}
