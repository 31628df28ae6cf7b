"""The card registry and the one factory that turns a card name into a ready `Encoder`.

Adding a foundation model = one `@register`-decorated function returning its `ModelCard` (in
`raypath.encoders.zoo`); its tiny random stand-in is registered alongside automatically.
"""

import logging
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

from raypath.config import Registry, UnknownNameError
from raypath.encoders.backbone import create_pool, create_trunk, meta_device
from raypath.encoders.card import ModelCard
from raypath.encoders.encoder import Encoder
from raypath.encoders.formats import CONVERTERS
from raypath.encoders.loading import WeightsError, load_state_dict_file, resolve_checkpoint, state_dict_hash
from raypath.encoders.tiny import tiny_card

log = logging.getLogger(__name__)


class UnknownEncoderError(UnknownNameError):
    """A name no model card has."""


_CARDS: Registry[ModelCard] = Registry("encoder", error=UnknownEncoderError)


def register(factory: Callable[[], ModelCard]) -> Callable[[], ModelCard]:
    """Decorator: register the card the function returns, and its `tiny-` stand-in."""
    card = factory()
    for entry in (card,) if card.tiny else (card, tiny_card(card)):
        _CARDS.add(entry.name, entry)
    return factory


def list_cards(*, tiny: bool | None = None) -> list[ModelCard]:
    """All cards in registration order; `tiny=False` for real FMs only, `True` for stand-ins only."""
    return [c for c in _CARDS.values() if tiny is None or c.tiny == tiny]


def get_card(name: str) -> ModelCard:
    """Look a card up by name (case-insensitive)."""
    return _CARDS.lookup(name.lower())


def _assemble(card: ModelCard) -> Encoder:
    trunk = create_trunk(card)
    return Encoder(card, backbone=trunk, pool=create_pool(card, trunk))


def _load(card: ModelCard, checkpoint: str | Path | None) -> Encoder:
    """Weights first (cheap failure if missing), then the model on the meta device, then assign."""
    path = resolve_checkpoint(card, checkpoint)
    state = CONVERTERS[card.weights_format](load_state_dict_file(path))
    with meta_device():
        encoder = _assemble(card)
    try:
        encoder.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise WeightsError(f"{path} does not match the {card.title} architecture "
                           f"({card.architecture}, {card.weights_format} layout): {error}") from error
    left = [n for n, t in [*encoder.named_parameters(), *encoder.named_buffers()] if t.is_meta]
    if left:
        raise WeightsError(f"{path}: no weights for {left[:5]} of {card.title}")
    encoder.weights_hash = state_dict_hash(state)
    return encoder


def _random(card: ModelCard, seed: int) -> Encoder:
    """Deterministic random weights for tiny cards (same seed → same weights → same hash); the
    card name is mixed in so two families sharing an architecture still differ."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + zlib.crc32(card.name.encode()))
        encoder = _assemble(card)
    encoder.weights_hash = state_dict_hash(encoder.state_dict())
    return encoder


def build_encoder(
    name: str, *, checkpoint: str | Path | None = None, device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None, seed: int = 0,
) -> Encoder:
    """The encoder named `name`, weights loaded, in eval mode, gradients off.

    Real cards load `checkpoint` (a file or a directory) or fetch from the card's hub id; tiny
    cards are randomly initialised from `seed` unless a checkpoint is given.
    """
    card = get_card(name)
    encoder = _random(card, seed) if card.tiny and checkpoint is None else _load(card, checkpoint)
    encoder = encoder.to(device=device, dtype=dtype).eval().requires_grad_(False)
    log.debug("built %s (%d-dim, weights %s)", card.name, card.embed_dim, encoder.weights_hash[:12])
    return encoder
