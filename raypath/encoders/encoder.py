"""`Encoder`: a card's network plus its preprocessing, so callers never touch FM specifics.

The extraction job only calls `preprocess(tiles)` then `forward(x)`; which token rule, which
normalisation and which input size apply is the card's business.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raypath.encoders.card import ModelCard


class Encoder(nn.Module):
    """Tiles (uint8 RGB) in, one float32 embedding per tile out."""

    def __init__(self, card: ModelCard, *, backbone: nn.Module, pool: nn.Module) -> None:
        super().__init__()
        self.card = card
        self.backbone = backbone
        self.pool = pool
        self.weights_hash = ""  # set by build_encoder once weights are in place

    @property
    def embed_dim(self) -> int:
        return self.card.embed_dim

    @torch.no_grad()
    def preprocess(self, tiles: np.ndarray, *, device: torch.device | str | None = None) -> torch.Tensor:
        """(b, h, w, 3) uint8 → (b, 3, S, S) float32, resized and normalised as the card says.

        Pass `device` to resize on the accelerator (much cheaper than on CPU for large batches).
        """
        if tiles.ndim != 4 or tiles.shape[-1] != 3 or tiles.dtype != np.uint8:
            raise ValueError(f"expected uint8 tiles of shape (b, h, w, 3), got {tiles.dtype} {tiles.shape}")
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(device or "cpu").permute(0, 3, 1, 2)
        x = self._resize(x).float().div_(255.0)
        mean = torch.tensor(self.card.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.card.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (antialiased) then centre-crop; values stay on the 0-255 scale.

        On CPU the resampling runs on uint8 (channels-last), ~7x faster than float and equal to
        it within one grey level; elsewhere it runs in float.
        """
        size = self.card.input_size
        resized = round(size / self.card.crop_fraction)
        if x.shape[-2:] != (resized, resized):
            x = x if x.device.type == "cpu" else x.float()
            x = F.interpolate(x, size=(resized, resized), mode=self.card.interpolation,
                              align_corners=False, antialias=True)
            x = x.clamp_(0.0, 255.0) if x.is_floating_point() else x
        if resized != size:
            top = (resized - size) // 2
            x = x[..., top:top + size, top:top + size]
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings (b, embed_dim) in float32, also under bf16/fp16 autocast."""
        weight = next(self.backbone.parameters())
        x = x.to(weight.device, dtype=weight.dtype)
        tokens = self.backbone.forward_features(x)
        return self.pool(tokens).float()
