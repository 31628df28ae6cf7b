"""Stage 2: foundation-model inference as a Ray Data actor class (`map_batches(EncoderActor, ...)`).

An actor loads its model once and keeps it on its device for every batch. With several encoders
the pipeline chains one actor stage per encoder over the same decoded tiles; each adds its own
feature column and the last one drops the pixels, so tiles are decoded once and never travel
further than they must. Rows the slide no longer needs (resume) or that are not tiles pass
through untouched.
"""

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from raypath.extract import rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceSettings:
    """One encoder stage; `factory` builds the model on CPU (a registry lookup, or a benchmark's)."""

    name: str
    factory: Callable[[], nn.Module]
    use_gpu: bool
    dtype: str  # "auto" | "bfloat16" | "float32"
    torch_threads: int | None
    drop_image: bool


def choose_device(use_gpu: bool) -> torch.device:
    """CUDA when the stage asked for GPUs and this worker sees one, else CPU."""
    return torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")


def autocast_for(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on GPU by default (tensor cores, fp32 norms/softmax); fp32 on CPU unless asked."""
    if dtype == "bfloat16" or (dtype == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class EncoderActor:
    """Ray Data callable class: adds `features::<name>` (n, dim) and `encoded::<name>` columns."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self.device = choose_device(settings.use_gpu)
        if self.device.type == "cpu":
            # Intra-op threads = the node's cores: decode children are mostly waiting on pipes.
            torch.set_num_threads(settings.torch_threads or os.cpu_count() or 1)
        self.encoder = settings.factory().to(self.device).eval().requires_grad_(False)
        self.dim = int(self.encoder.card.embed_dim)
        self.need = rows.need_column(settings.name)
        log.info("encoder %s on %s (%d-dim, %d threads)", settings.name, self.device, self.dim,
                 torch.get_num_threads())

    @torch.inference_mode()
    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 (b, h, w, 3) tiles -> float32 (b, dim); preprocessing runs on the model's device."""
        with autocast_for(self.device, self.settings.dtype):
            x = self.encoder.preprocess(images, device=self.device)
            return self.encoder(x).float().cpu().numpy()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count = len(batch["slide_id"])
        todo = (batch["status"] == rows.TILE) & batch[self.need].astype(bool)
        features = np.zeros((count, self.dim), dtype=np.float32)
        encoded = np.zeros(count, dtype=bool)
        if todo.any():
            try:
                features[todo] = self.embed(batch[rows.IMAGE][todo])
                encoded[todo] = True
            except Exception as exc:  # e.g. CUDA OOM: fail these slides, keep the stage alive
                log.exception("encoder %s failed on a batch of %d tiles", self.settings.name, todo.sum())
                batch = _mark_failed(batch, todo, f"{self.settings.name}: {type(exc).__name__}: {exc}")
        batch = dict(batch)
        batch[rows.feature_column(self.settings.name)] = features
        batch[rows.encoded_column(self.settings.name)] = encoded
        if self.settings.drop_image:
            batch.pop(rows.IMAGE)
        return batch


def _mark_failed(batch: dict[str, np.ndarray], where: np.ndarray, reason: str) -> dict[str, np.ndarray]:
    batch = dict(batch)
    batch["status"] = np.where(where, rows.FAILED, batch["status"]).astype(object)
    batch["stage"] = np.where(where, "encode", batch["stage"]).astype(object)
    batch["reason"] = np.where(where, reason, batch["reason"]).astype(object)
    return batch
