"""The encoder of a finetuned model (base FM + its adapter) and tile embedding with it.

Tiles are embedded exactly as extraction embeds them (`Encoder.preprocess` then `forward`, float32
on CPU), so a finetuned model's features are the same whether `raypath predict` extracts them, the
pyfunc embeds tile images, or training evaluates the in-memory model.
"""

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raypath.encoders.encoder import Encoder
from raypath.encoders.lora import build_adapted_encoder
from raypath.packaging.spec import ModelSpec

EMBED_BATCH = 64


def load_encoder(spec: ModelSpec, adapter: Path | str | bytes, *, checkpoint: str | None = None) -> Encoder:
    """Base FM (`checkpoint`, else the one recorded at training, else the hub) + adapter; refuses
    base weights other than those the adapter was trained on."""
    if spec.adapter is None:
        raise ValueError("only a finetuned model has an adapted encoder")
    a = spec.adapter
    encoder = build_adapted_encoder(a.base, settings=a.lora, adapter=adapter, seed=a.seed,
                                    checkpoint=checkpoint or a.checkpoint,
                                    base_weights_hash=a.base_weights_hash)
    if encoder.weights_hash != spec.provenance["weights_hash"]:
        raise ValueError(f"the adapter does not hash to the one the model was trained with "
                         f"({spec.adapter.adapter_hash[:12]})")
    return encoder


def encoder_factory(spec: ModelSpec, adapter: bytes, *, checkpoint: str | None = None) -> functools.partial:
    """A picklable zero-argument builder of the adapted encoder (for extraction actors)."""
    return functools.partial(load_encoder, spec, adapter, checkpoint=checkpoint)


@torch.inference_mode()
def embed_tiles(encoder: Encoder, images: np.ndarray, *, batch_size: int = EMBED_BATCH) -> np.ndarray:
    """uint8 (n, h, w, 3) tiles -> float32 (n, dim) features, in batches."""
    out = np.empty((len(images), encoder.embed_dim), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        out[start:start + len(chunk)] = encoder(encoder.preprocess(chunk)).cpu().numpy()
    return out


def embed_frame(encoder: Encoder, spec: ModelSpec, tiles: pd.DataFrame) -> pd.DataFrame:
    """A tile-image table (`slide_id`, `image`: raw RGB bytes of one tile_px x tile_px tile) as the
    tile-feature table the MIL head takes (`slide_id`, `features`)."""
    missing = {"slide_id", "image"} - set(tiles.columns)
    if missing:
        raise ValueError(f"a finetuned model takes tile images: input lacks columns {sorted(missing)} "
                         "(one row per tile: 'slide_id', 'image' = raw RGB bytes)")
    side = int(spec.provenance["tiling"]["tile_px"])
    raw = [np.frombuffer(bytes(image), dtype=np.uint8) for image in tiles["image"]]
    wrong = [len(r) for r in raw if len(r) != side * side * 3]
    if wrong:
        raise ValueError(f"tile images must be {side}x{side} RGB ({side * side * 3} bytes); "
                         f"got {wrong[0]} bytes")
    images = np.stack(raw).reshape(-1, side, side, 3) if raw else np.zeros((0, side, side, 3), np.uint8)
    features = embed_tiles(encoder, images)
    return pd.DataFrame({"slide_id": tiles["slide_id"].to_numpy(), "features": list(features)})
