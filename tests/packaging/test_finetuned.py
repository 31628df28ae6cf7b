"""A finetuned model package: spec of kind finetuned names base FM and adapter; the pyfunc takes tile
images, embeds them with base FM + adapter and predicts what the head computes on those features."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from raypath.encoders import build_encoder, state_dict_hash
from raypath.encoders.lora import LoraSettings, adapted_name, adapted_weights_hash, adapter_state, add_lora
from raypath.mil.robust import build_robust_mil
from raypath.packaging.adapted import embed_tiles, load_encoder
from raypath.packaging.package import save_model
from raypath.packaging.spec import AdapterSpec, ModelSpec

TILE = 64


def _package(tmp_path):
    encoder = add_lora(build_encoder("tiny-uni"), LoraSettings(rank=4))
    for name, parameter in encoder.named_parameters():
        if "lora_B" in name:
            parameter.data.normal_(std=0.5)
    adapter = adapter_state(encoder)
    base_hash, adapter_hash = build_encoder("tiny-uni").weights_hash, state_dict_hash(adapter)
    torch.manual_seed(0)
    head = build_robust_mil(task="binary", kind="gated", in_dim=encoder.embed_dim, n_outputs=1, hidden=8,
                            attention_dim=4, dropout=0.0, weights={"infonce": 1.0}).eval()
    save_file(adapter, str(tmp_path / "adapter.safetensors"))
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(tmp_path / "model.safetensors"))
    spec = ModelSpec(kind="finetuned", task="binary", n_outputs=1, in_dim=encoder.embed_dim,
                     model={"kind": "gated", "hidden": 8, "attention_dim": 4, "dropout": 0.0,
                            "projection_dim": 64},
                     adapter=AdapterSpec(base="tiny-uni", base_weights_hash=base_hash,
                                         lora=LoraSettings(rank=4), adapter_hash=adapter_hash),
                     provenance={"encoder": adapted_name("tiny-uni", adapter_hash),
                                 "embed_dim": encoder.embed_dim,
                                 "weights_hash": adapted_weights_hash(base=base_hash, adapter=adapter_hash),
                                 "tiling": {"tile_px": TILE}, "tiling_hash": "t"})
    return encoder.eval(), head, spec


def test_the_pyfunc_embeds_tile_images_with_base_fm_and_adapter(tmp_path):
    encoder, head, spec = _package(tmp_path)
    directory = save_model(tmp_path / "model", weights=tmp_path / "model.safetensors", spec=spec,
                           adapter=tmp_path / "adapter.safetensors")
    assert (directory / "artifacts" / "adapter.safetensors").is_file()
    assert not list(directory.rglob("*.pkl"))
    images = np.random.default_rng(0).integers(0, 256, (5, TILE, TILE, 3), dtype=np.uint8)
    out = mlflow.pyfunc.load_model(str(directory)).predict(
        pd.DataFrame({"slide_id": "a", "image": [tile.tobytes() for tile in images]}))
    features = torch.from_numpy(embed_tiles(encoder, images))
    with torch.no_grad():
        expected = torch.sigmoid(head(features[None], torch.ones(1, 5, dtype=torch.bool)).prediction[0, 0])
    assert out["score"].iloc[0] == pytest.approx(float(expected), abs=1e-6)


def test_spec_and_package_refuse_inconsistent_kinds(tmp_path):
    spec = _package(tmp_path)[2]
    with pytest.raises(ValueError, match="adapter"):
        ModelSpec.model_validate({**spec.model_dump(), "adapter": None})
    with pytest.raises(ValueError, match="adapter"):
        save_model(tmp_path / "m", weights=tmp_path / "model.safetensors", spec=spec)
    other = spec.model_copy(update={"provenance": {**spec.provenance, "weights_hash": "x"}})
    with pytest.raises(ValueError, match="adapter does not hash"):
        load_encoder(other, tmp_path / "adapter.safetensors")
