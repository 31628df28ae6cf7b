"""The model card: everything raypath needs to know about one foundation model, as plain data.

A card is JSON-serialisable (`to_dict`) so the extraction job can record it in every feature file;
the architecture is therefore named (a timm model name + kwargs whose layer classes are given as
strings) rather than held as Python objects.
"""

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from types import MappingProxyType
from typing import Any, Literal

# How token outputs become one tile embedding:
#   cls          the class token (after the final norm)
#   cls+mean     class token concatenated with the mean of the patch tokens (registers excluded)
#   mean         mean of the patch tokens
#   attn-pool    CONCH: attentional pooler over all tokens + LayerNorm (`proj_contrast=False`)
#   attn-pool+proj  the same followed by the contrastive projection (`proj_contrast=True`)
OutputRule = Literal["cls", "cls+mean", "mean", "attn-pool", "attn-pool+proj"]
# On-disk layout of the published weights, i.e. which converter maps them onto the timm model.
WeightsFormat = Literal["timm", "hf-dinov2", "conch"]
RGB = tuple[float, float, float]

IMAGENET_MEAN: RGB = (0.485, 0.456, 0.406)
IMAGENET_STD: RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PoolerSpec:
    """CONCH's contrastive attentional pooler (open_clip CoCa `attn_pool_contrast`)."""

    dim: int  # query/output width (the CoCa contrastive embed dim)
    heads: int
    queries: int = 1


@dataclass(frozen=True)
class ModelCard:
    """One foundation model (or a tiny random stand-in for one)."""

    name: str  # registry key, lower-case
    title: str  # the model's own spelling, for tables and messages
    family: str  # cards of one family share architecture and preprocessing; tiny cards join it
    architecture: str  # timm model name, always created with pretrained=False
    timm_kwargs: Mapping[str, Any]
    hub_id: str | None
    input_size: int  # square side in pixels fed to the network
    mean: RGB
    std: RGB
    embed_dim: int  # length of the vector `Encoder.forward` returns
    mpp: float  # native microns per pixel of the training tiles
    output: OutputRule
    licence: str
    source: str  # where the facts on this card were checked
    weights_format: WeightsFormat = "timm"
    hub_files: tuple[str, ...] = ("model.safetensors", "pytorch_model.bin")
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    crop_fraction: float = 1.0  # resize to input_size / crop_fraction, then centre-crop input_size
    mpp_note: str = ""
    pooler: PoolerSpec | None = None
    tiny: bool = False
    parent: str | None = None  # for tiny cards: the real card they stand in for
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "timm_kwargs", MappingProxyType(dict(self.timm_kwargs)))
        if self.output.startswith("attn-pool") and self.pooler is None:
            raise ValueError(f"card {self.name}: output {self.output!r} needs a pooler spec")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"card {self.name}: crop_fraction must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, recorded in feature-file metadata."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["timm_kwargs"] = dict(self.timm_kwargs)
        data["pooler"] = asdict(self.pooler) if self.pooler else None
        for key in ("mean", "std", "hub_files"):
            data[key] = list(data[key])
        return data
