"""JPEG tile decoding on a CUDA GPU with nvImageCodec (nvJPEG), for readers on GPU nodes.

nvJPEG has no DCT-domain scaling, so tiles are decoded at full size on the device and area-averaged
there by the same factor the CPU path would scale by; only the small tiles travel back to the host.
Everything here is optional: `gpu_decoder` returns None (and says why) when there is no usable GPU or
no nvImageCodec, and the reader then decodes on the CPU.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


class NvImageCodecDecoder:
    """Batched nvImageCodec decoding into torch CUDA tensors; implements `jpeg_tiles.DeviceDecoder`."""

    def __init__(self) -> None:
        import torch
        from nvidia import nvimgcodec

        self._torch = torch
        self._decoder = nvimgcodec.Decoder()

    def decode(self, streams: list[bytes], *, factor: int) -> list[np.ndarray]:
        """RGB uint8 tiles (h/factor, w/factor, 3) on the host, in the order of `streams`."""
        if not streams:
            return []
        torch = self._torch
        images = self._decoder.decode(streams)
        if any(image is None for image in images):
            raise RuntimeError("nvImageCodec could not decode every tile of the batch")
        batch = torch.stack([torch.as_tensor(image, device="cuda") for image in images])  # (n, h, w, 3)
        if factor > 1:
            scaled = torch.nn.functional.avg_pool2d(batch.permute(0, 3, 1, 2).float(), factor)
            batch = scaled.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return list(batch.contiguous().cpu().numpy())


def gpu_decoder() -> NvImageCodecDecoder | None:
    """A device decoder where CUDA and nvImageCodec both work, else None with a warning (CPU decodes)."""
    try:
        import torch

        if not torch.cuda.is_available():
            logger.warning("GPU decoding asked for but no CUDA device is visible; decoding on the CPU")
            return None
        return NvImageCodecDecoder()
    except Exception as exc:  # ImportError, or a driver / library mismatch at construction
        logger.warning("GPU decoding unavailable (%s: %s); decoding on the CPU", type(exc).__name__, exc)
        return None
