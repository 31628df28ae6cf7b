"""Low-rank adapters (PEFT LoRA) on a foundation model's attention projections, everything else frozen.

    encoder = build_encoder("uni", checkpoint=...)
    add_lora(encoder, LoraSettings(rank=8))          # only `lora_` parameters require grad
    state = adapter_state(encoder)                   # what a checkpoint or a model package holds
    adapted = build_adapted_encoder("uni", checkpoint=..., settings=..., adapter=state)

An adapted encoder identifies itself by the base weights *and* the adapter: its `weights_hash` is
derived from both, and its features go to a store directory of their own (`adapted_name`), so they
are never mixed with the frozen FM's features.
"""

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from pydantic import Field

from raypath.config import StrictModel
from raypath.encoders.compat import import_peft
from raypath.encoders.encoder import Encoder
from raypath.encoders.loading import load_state_dict_file, state_dict_hash
from raypath.encoders.registry import build_encoder


class LoraSettings(StrictModel):
    """The adapters: rank, scaling, dropout and which linear layers get them."""

    rank: int = Field(8, ge=1, description="LoRA rank r")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["qkv"], min_length=1,
        description="module names (suffixes) that get adapters; timm ViTs: 'qkv' (attention input "
                    "projection), 'proj' (its output), 'fc1'/'fc2' (MLP)")


def add_lora(encoder: Encoder, settings: LoraSettings) -> Encoder:
    """Inject adapters into the backbone in place; only adapter parameters require grad."""
    peft = import_peft()
    config = peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                             target_modules=list(settings.target_modules), bias="none")
    try:
        peft.inject_adapter_in_model(config, encoder.backbone)
    except ValueError as error:  # PEFT: no module matched
        raise ValueError(f"{encoder.card.name}: target_modules {settings.target_modules} match no layer "
                         f"({error})") from error
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return encoder


def adapter_state(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The adapter weights alone (CPU, contiguous): what checkpoints and model packages store."""
    state = import_peft().get_peft_model_state_dict(encoder.backbone)
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items()}


def load_adapter(encoder: Encoder, state: Mapping[str, torch.Tensor]) -> None:
    """Put saved adapter weights into an encoder that has adapters of the same shapes."""
    import_peft().set_peft_model_state_dict(encoder.backbone, dict(state))
    loaded = adapter_state(encoder)
    if loaded.keys() != state.keys():
        odd = sorted(loaded.keys() ^ state.keys())
        raise ValueError(f"saved adapter does not fit the adapters of {encoder.card.name}: {odd[:5]}")


def adapted_weights_hash(*, base: str, adapter: str) -> str:
    """The identity of base weights + adapter (what feature provenance records as `weights_hash`)."""
    return hashlib.sha256(f"{base}+{adapter}".encode()).hexdigest()


def adapted_name(base: str, adapter_hash: str) -> str:
    """The store directory name of an adapted encoder's features: base card + adapter hash."""
    return f"{base}+lora-{adapter_hash[:12]}"


def build_adapted_encoder(
    name: str, *, settings: LoraSettings, adapter: Mapping[str, torch.Tensor] | str | Path | bytes,
    checkpoint: str | Path | None = None, seed: int = 0, base_weights_hash: str | None = None,
) -> Encoder:
    """Base FM (registry card, checkpoint or hub; tiny cards from `seed`) + saved adapter, eval mode,
    gradients off. `base_weights_hash`, when given, must match the base weights loaded."""
    encoder = build_encoder(name, checkpoint=checkpoint, seed=seed)
    base = encoder.weights_hash
    if base_weights_hash is not None and base != base_weights_hash:
        raise ValueError(f"the base weights of {name} loaded from {checkpoint or 'the card default'} hash to "
                         f"{base[:12]}, but the adapter was trained on {base_weights_hash[:12]}")
    if isinstance(adapter, bytes):
        from safetensors.torch import load as load_bytes

        adapter = load_bytes(adapter)
    state = load_state_dict_file(adapter) if isinstance(adapter, str | Path) else dict(adapter)
    add_lora(encoder, settings)
    load_adapter(encoder, state)
    encoder.weights_hash = adapted_weights_hash(base=base, adapter=state_dict_hash(state))
    return encoder.eval().requires_grad_(False)
