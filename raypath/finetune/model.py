"""The trained model: the FM with LoRA adapters (everything else frozen) under a robust MIL head, and
one training step on a batch of specimens' tile pixels.

The loss is the MIL engine's: `RobustMIL.compute_loss` (task + the registered robustness losses on
the head's outputs, tile-level ones over registered pairs) combined by `total_loss`, plus a tile
loss on the FM's *own* embeddings of registered pairs (`fm_tile_consistency`), which only exists
when the FM itself trains.
"""

import contextlib
from collections.abc import Mapping

import torch
from torch import nn

from raypath.encoders.encoder import Encoder
from raypath.encoders.lora import add_lora
from raypath.encoders.registry import build_encoder
from raypath.finetune.config import FinetuneConfig
from raypath.mil.batch import Batch
from raypath.mil.losses import matched_tile_cosine
from raypath.mil.robust import RobustMIL, build_robust_mil, total_loss

FM_TILE = "fm_tile_consistency"


class FinetuneModel(nn.Module):
    """`forward(pixels, batch) -> (total loss, losses by name)`; pixels are the batch's real tiles,
    preprocessed, bag by bag; `batch.features` is ignored (the FM computes them)."""

    def __init__(self, encoder: Encoder, mil: RobustMIL, *, weights: Mapping[str, float],
                 autocast_bf16: bool = False) -> None:
        super().__init__()
        self.encoder, self.mil = encoder, mil
        self.weights = dict(weights)
        self.autocast_bf16 = autocast_bf16

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """FM embeddings (n, dim) in float32; bf16 autocast on CUDA when asked."""
        use = self.autocast_bf16 and pixels.device.type == "cuda"
        context = torch.autocast("cuda", dtype=torch.bfloat16) if use else contextlib.nullcontext()
        with context:
            return self.encoder(pixels).float()

    def forward(self, pixels: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embeddings = self.embed(pixels)
        mask = batch.mask.to(embeddings.device)
        features = embeddings.new_zeros((*mask.shape, embeddings.shape[-1]))
        features[mask] = embeddings
        batch = Batch(*[t.to(embeddings.device) for t in batch._replace(features=features)])
        _, losses = self.mil.compute_loss(batch)
        if self.weights.get(FM_TILE, 0.0):
            losses[FM_TILE] = matched_tile_cosine(features, tile_group=batch.tile_group)
        return total_loss(losses, self.weights), losses


def build_model(config: FinetuneConfig, *, n_outputs: int, n_scanners: int, on_gpu: bool = False
                ) -> FinetuneModel:
    """FM (tiny cards: random weights from the seed) + adapters + the RobustMIL head of `config.model`;
    identical on every worker (same seed)."""
    torch.manual_seed(config.seed)
    fm = add_lora(build_encoder(config.encoder, checkpoint=config.checkpoint, seed=config.seed), config.lora)
    if config.gradient_checkpointing == "on" or (config.gradient_checkpointing == "auto" and on_gpu):
        fm.backbone.set_grad_checkpointing(True)
    m = config.model
    mil = build_robust_mil(task=config.task, kind=m.kind, in_dim=fm.embed_dim, n_outputs=n_outputs,
                           hidden=m.hidden, dropout=m.dropout, weights=config.losses.weights(),
                           projection_dim=m.projection_dim, n_scanners=n_scanners, tau=config.losses.tau,
                           options=config.losses.options(), **m.backbone_settings())
    return FinetuneModel(fm, mil, weights=config.loss_weights(), autocast_bf16=config.autocast_bf16)


def step(model: nn.Module, optimizer: torch.optim.Optimizer, pixels: torch.Tensor,
         batch: Batch) -> dict[str, float]:
    """One optimisation step (gradients averaged over workers by DDP/FSDP in backward)."""
    optimizer.zero_grad(set_to_none=True)
    total, losses = model(pixels, batch)
    total.backward()
    optimizer.step()
    return {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}
