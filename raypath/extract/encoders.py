"""The encoders of a run: how actors build them and what every feature file records about them.

Each encoder is built once on the driver before any slide is read, so a wrong name or a bad
checkpoint fails in seconds instead of after the cohort has been tiled; its card, weights hash
and embedding size become the provenance stored with every file it writes.
"""

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from raypath.encoders.registry import build_encoder
from raypath.extract.config import ExtractConfig
from raypath.store import provenance

EncoderFactory = Callable[[], nn.Module]


@dataclass(frozen=True)
class EncoderInfo:
    """One encoder of the run: its factory (shipped to actors) and its provenance metadata."""

    name: str
    factory: EncoderFactory
    dim: int
    metadata: dict[str, Any]


def registry_factory(name: str, checkpoint: str | None) -> EncoderFactory:
    """A picklable zero-argument builder for actors: registry card + local checkpoint or hub."""
    return functools.partial(build_encoder, name, checkpoint=checkpoint)


def describe_encoders(
    config: ExtractConfig, *, factories: Mapping[str, EncoderFactory] | None = None,
) -> list[EncoderInfo]:
    """Build each encoder once to validate it and read its card, weights hash and dimension."""
    infos = []
    for spec in config.encoders:
        factory = (factories or {}).get(spec.name) or registry_factory(spec.name, spec.checkpoint)
        encoder = factory()
        card, dim = encoder.card, int(encoder.card.embed_dim)
        metadata = provenance(encoder=spec.name, card=card.to_dict(), weights_hash=encoder.weights_hash,
                              tiling=config.tiling.model_dump(mode="json"),
                              tiling_hash=config.tiling.cache_key(), embed_dim=dim)
        infos.append(EncoderInfo(name=spec.name, factory=factory, dim=dim, metadata=metadata))
        del encoder
    return infos
