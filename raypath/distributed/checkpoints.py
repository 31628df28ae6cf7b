"""Ray Train checkpoints for any training loop on the workers: save, report, load, and the rule of
which epochs keep one.

Every rank must call `save_checkpoint` or `report` at the same points (Ray Train's report is a
collective): rank 0 attaches the state, the others only their metrics. States go through
`torch.save` and come back through `torch.load(weights_only=True)`, so they hold tensors and plain
Python values only (nothing that unpickles into code).
"""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray.train
import torch

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


def save_checkpoint(state: dict, *, metrics: dict, epoch: int) -> None:
    """Report this epoch's metrics; rank 0 also writes `state` as a Ray Train checkpoint."""
    metrics = {**metrics, "epoch": epoch}
    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, Path(tmp) / STATE_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def report(metrics: dict, *, epoch: int) -> None:
    """Report this epoch's metrics without a checkpoint (every rank, as with `save_checkpoint`)."""
    ray.train.report({**metrics, "epoch": epoch})


def load_checkpoint() -> dict | None:
    """The state of the latest checkpoint of this run (after a restart or a resumed driver), or None."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, weights_only=True, map_location="cpu")
    log.info("rank %d: resuming from %s (epoch %s)", ray.train.get_context().get_world_rank(),
             checkpoint.path, state.get("epoch"))
    return state


@dataclass
class RayCheckpoints:
    """The engine's `Checkpoints` on Ray Train: every rank reports each epoch, and every `every`
    epochs (and at the last) rank 0's report carries the state; `member` names the pack member
    whose metrics are reported."""

    every: int
    last_epoch: int
    member: str = "model"

    def due(self, epoch: int) -> bool:
        """Whether `epoch` keeps a checkpoint: every `every` epochs and the last."""
        return (epoch + 1) % self.every == 0 or epoch >= self.last_epoch

    def load(self) -> dict | None:
        return load_checkpoint()

    def save(self, state: dict, *, metrics: dict[str, dict[str, float]], epoch: int) -> None:
        flat = {k: v for k, v in metrics.get(self.member, {}).items() if isinstance(v, float | int)}
        if self.due(epoch):
            save_checkpoint(state, metrics=flat, epoch=epoch)
        else:
            report(flat, epoch=epoch)
