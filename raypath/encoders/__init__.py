"""Foundation-model encoders: model cards, one factory, tiny random stand-ins, safe weight loading.

    encoder = build_encoder("uni", checkpoint="/weights/uni")   # or "tiny-uni" for tests/demo
    features = encoder(encoder.preprocess(tiles))               # (b, encoder.embed_dim)
"""

from raypath.encoders import zoo as _zoo  # noqa: F401  (registers the cards)
from raypath.encoders.card import ModelCard, OutputRule, PoolerSpec
from raypath.encoders.encoder import Encoder
from raypath.encoders.loading import (
    UnsafeCheckpointError,
    WeightsError,
    load_state_dict_file,
    state_dict_hash,
)
from raypath.encoders.registry import build_encoder, get_card, list_cards, register

__all__ = [
    "Encoder",
    "ModelCard",
    "OutputRule",
    "PoolerSpec",
    "UnsafeCheckpointError",
    "WeightsError",
    "build_encoder",
    "get_card",
    "list_cards",
    "load_state_dict_file",
    "register",
    "state_dict_hash",
]
