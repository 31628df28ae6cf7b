"""G RobustMIL models as one callable: stacked parameters + `functional_call` under `vmap`.

The mil helper's models and losses avoid data-dependent Python control flow, so one vmapped call
runs all members on a shared batch. Per-member τ is passed in as a vmapped 0-d tensor and set on
the module only for the duration of the call (`RobustMIL.tau` is a plain attribute the losses read).

The first layer is the exception: members share the batch's tile features, so the Linear of their
`TileProjection` (1,024 → hidden on every tile: most of a step's work) runs for all G members as
one matmul against the concatenated weights, X @ [W_1 … W_G], instead of G batched small ones on
G copies of X; backward is one matmul for all G weight gradients, and none for the frozen features.
The members continue from their slice of its output under vmap (`RobustMIL.forward(projected=)`).

Members whose early stopping fired are left out of the computation (`members`: the indices still
training): a pack whose members stop one by one costs what its live members cost, not its size.
Their rows of the stacked parameters get zero gradients (the indexing's backward), and the
optimizer's `active` mask keeps them as they are.
"""

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from raypath.mil.batch import Batch
from raypath.mil.models import TileProjection
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
        self.projection = _projection_names(self.base)

    def _vector(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.get_default_dtype(), device=self.device)

    @property
    def size(self) -> int:
        return len(self.tau)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def _members(self, members: torch.Tensor | None) -> tuple[dict, dict, dict, torch.Tensor]:
        """(params, buffers, loss weights, τ) of the members `members` (indices; None = all)."""
        if members is None or len(members) == self.size:
            return self.params, self.buffers, self.weights, self.tau
        members = members.to(self.device)
        return (_rows(self.params, members), _rows(self.buffers, members), _rows(self.weights, members),
                self.tau.index_select(0, members))

    def projected(self, features: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """(G, B, N, hidden): every member's first Linear on the shared features, as one matmul (a
        view of its (B, N, G·hidden) output); None for a backbone without a `TileProjection`."""
        if self.projection is None:
            return None
        weight, bias = (params[name] for name in self.projection)
        members, hidden, in_dim = weight.shape
        joint = torch.nn.functional.linear(features, weight.reshape(members * hidden, in_dim),
                                           bias.reshape(members * hidden))
        return joint.unflatten(-1, (members, hidden)).movedim(-2, 0)

    def _member_loss(
        self, params: dict, buffers: dict, weights: dict, tau: torch.Tensor, batch: Batch,
        projected: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        self.base.tau = tau
        state = {f"model.{k}": v for k, v in {**params, **buffers}.items()}
        _, losses = functional_call(self.objective, state, (batch, projected))
        return total_loss(losses, weights), losses

    def loss(self, batch: Batch, *, members: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(M,) weighted totals and (M,) unweighted losses by name of the M members `members`
        (indices; None = all G), for one shared batch."""
        original = self.base.tau
        batch = Batch(*(field.to(self.device) for field in batch))
        params, buffers, weights, tau = self._members(members)
        projected = self.projected(batch.features, params)
        try:
            return vmap(self._member_loss, in_dims=(0, 0, 0, 0, None, _member_dim(projected)),
                        randomness="different")(params, buffers, weights, tau, batch, projected)
        finally:
            self.base.tau = original

    def _member_forward(
        self, params: dict, buffers: dict, features: torch.Tensor, mask: torch.Tensor,
        projected: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        output = functional_call(self.base, {**params, **buffers}, (features, mask), {"projected": projected})
        return output.prediction, output.embedding

    @torch.no_grad()
    def predict(
        self, collator: Collator, slides: np.ndarray, *, config: TrainConfig,
        members: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(M, n, outputs) predictions and (M, n, hidden) embeddings of the members `members` (None =
        all G), as `predict` gives per model."""
        params, buffers, _, _ = self._members(members)
        was_training = self.base.training
        self.base.eval()
        predictions, embeddings = [], []
        batches = collator.eval_batches(slides, max_bags=config.eval_batch_bags,
                                        max_tiles=config.eval_max_tiles, tile_budget=config.eval_batch_tiles)
        for batch in batches:
            features, mask = batch.features.to(self.device), batch.mask.to(self.device)
            projected = self.projected(features, params)
            forward = vmap(self._member_forward, in_dims=(0, 0, None, None, _member_dim(projected)))
            prediction, embedding = forward(params, buffers, features, mask, projected)
            predictions.append(prediction.cpu())
            embeddings.append(embedding.cpu())
        self.base.train(was_training)
        return torch.cat(predictions, dim=1), torch.cat(embeddings, dim=1)


def _rows(tensors: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, index) for k, v in tensors.items()}


def _member_dim(projected: torch.Tensor | None) -> int | None:
    return None if projected is None else 0


def _projection_names(model: RobustMIL) -> tuple[str, str] | None:
    """Stacked-parameter names of the backbone's `TileProjection` Linear (weight, bias), if it has one
    and a `pool` to continue from its output."""
    project = getattr(model.backbone, "project", None)
    if not isinstance(project, TileProjection) or not hasattr(model.backbone, "pool"):
        return None
    return "backbone.project.0.weight", "backbone.project.0.bias"
