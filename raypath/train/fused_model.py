"""G RobustMIL models as one callable: stacked parameters + `functional_call` under `vmap`.

The mil helper's models and losses avoid data-dependent Python control flow, so one vmapped call
runs all members on a shared batch. Per-member τ is passed in as a vmapped 0-d tensor and set on
the module only for the duration of the call (`RobustMIL.tau` is a plain attribute the losses read).
"""

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from raypath.mil.batch import Batch
from raypath.mil.robust import Objective, RobustMIL, total_loss
from raypath.mil.sampling import Collator
from raypath.train.config import TrainConfig
from raypath.train.stacked import stack


class FusedObjective:
    """Stacked members of one architecture with their per-member hyperparameters as tensors."""

    def __init__(
        self,
        models: Sequence[RobustMIL],
        *,
        configs: Sequence[TrainConfig],
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.params, self.buffers = stack(models, device=self.device)
        self.base = copy.deepcopy(models[0]).to(self.device)  # structure only: weights come from `params`
        self.objective = Objective(self.base)
        self.hyper = {
            "lr": self._vector([c.optimizer.lr for c in configs]),
            "weight_decay": self._vector([c.optimizer.weight_decay for c in configs]),
        }
        self.weights = {
            name: self._vector([c.losses.weights()[name] for c in configs]) for name in self.base.active
        }
        self.tau = self._vector([c.losses.tau for c in configs])

    def _vector(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.get_default_dtype(), device=self.device)

    @property
    def size(self) -> int:
        return len(self.tau)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def _member_loss(
        self, params: dict, buffers: dict, weights: dict, tau: torch.Tensor, batch: Batch
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.base.tau = tau
        state = {f"model.{k}": v for k, v in {**params, **buffers}.items()}
        _, losses = functional_call(self.objective, state, (batch,))
        return total_loss(losses, weights), losses

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(G,) weighted totals and (G,) unweighted losses by name, for one shared batch."""
        original = self.base.tau
        batch = Batch(*(field.to(self.device) for field in batch))
        try:
            return vmap(self._member_loss, in_dims=(0, 0, 0, 0, None), randomness="different")(
                self.params, self.buffers, self.weights, self.tau, batch
            )
        finally:
            self.base.tau = original

    def _member_forward(
        self, params: dict, buffers: dict, features: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output = functional_call(self.base, {**params, **buffers}, (features, mask))
        return output.prediction, output.embedding

    @torch.no_grad()
    def predict(
        self, collator: Collator, slides: np.ndarray, *, config: TrainConfig
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(G, n, outputs) predictions and (G, n, hidden) embeddings, as `predict` gives per model."""
        was_training = self.base.training
        self.base.eval()
        forward = vmap(self._member_forward, in_dims=(0, 0, None, None))
        predictions, embeddings = [], []
        batches = collator.eval_batches(slides, max_bags=config.eval_batch_bags,
                                        max_tiles=config.eval_max_tiles, tile_budget=config.eval_batch_tiles)
        for batch in batches:
            features, mask = batch.features.to(self.device), batch.mask.to(self.device)
            prediction, embedding = forward(self.params, self.buffers, features, mask)
            predictions.append(prediction.cpu())
            embeddings.append(embedding.cpu())
        self.base.train(was_training)
        return torch.cat(predictions, dim=1), torch.cat(embeddings, dim=1)
