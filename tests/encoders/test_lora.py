"""LoRA adapters on an encoder: only adapters train, a saved adapter rebuilds the same adapted
encoder, and an adapter is refused on base weights other than the ones it was trained on."""

import pytest
import torch
from safetensors.torch import save_file

from raypath.encoders import build_encoder, state_dict_hash
from raypath.encoders.lora import (
    LoraSettings,
    adapted_name,
    adapted_weights_hash,
    adapter_state,
    add_lora,
    build_adapted_encoder,
)


def _trained_adapter() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    encoder = add_lora(build_encoder("tiny-uni"), LoraSettings(rank=4))
    torch.manual_seed(1)
    for name, parameter in encoder.named_parameters():
        if "lora_B" in name:  # zero at init: give the adapters an effect
            parameter.data.normal_(std=0.5)
    return encoder.eval(), adapter_state(encoder)


def test_only_adapters_require_grad_and_they_change_the_output():
    base = build_encoder("tiny-uni")
    encoder, state = _trained_adapter()
    trains = [n for n, p in encoder.named_parameters() if p.requires_grad]
    assert trains and all("lora_" in n and ".qkv." in n for n in trains)
    assert len(state) == 2 * 2  # A and B of qkv in each of the twin's 2 blocks
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(encoder(x), base(x))


def test_a_saved_adapter_rebuilds_the_same_encoder(tmp_path):
    encoder, state = _trained_adapter()
    path = tmp_path / "adapter.safetensors"
    save_file(state, str(path))
    base_hash = build_encoder("tiny-uni").weights_hash
    rebuilt = build_adapted_encoder("tiny-uni", settings=LoraSettings(rank=4), adapter=path,
                                    base_weights_hash=base_hash)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), encoder(x))
    adapter_hash = state_dict_hash(state)
    assert rebuilt.weights_hash == adapted_weights_hash(base=base_hash, adapter=adapter_hash) != base_hash
    assert adapted_name("tiny-uni", adapter_hash) == f"tiny-uni+lora-{adapter_hash[:12]}"
    assert not any(p.requires_grad for p in rebuilt.parameters())


def test_other_base_weights_or_shapes_are_refused():
    _, state = _trained_adapter()
    with pytest.raises(ValueError, match="adapter was trained on"):
        build_adapted_encoder("tiny-uni", settings=LoraSettings(rank=4), adapter=state, seed=7,
                              base_weights_hash=build_encoder("tiny-uni").weights_hash)
    with pytest.raises((ValueError, RuntimeError)):
        build_adapted_encoder("tiny-uni", settings=LoraSettings(rank=8), adapter=state)
    with pytest.raises(ValueError, match="target_modules"):
        add_lora(build_encoder("tiny-uni"), LoraSettings(target_modules=["no_such_layer"]))
