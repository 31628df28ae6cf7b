"""Where a training run stands after an epoch, as a checkpoint it can continue from.

A restarted run (a failed worker, a killed driver) must continue exactly where it stopped: the
stacked parameters, AdamW's moments and step counts, every member's early-stopping record, best
weights and history, which members are still training, the batch generator's state (so the next
epoch draws the batches it would have drawn) and torch's own generators (dropout). The state holds
tensors and plain values only, so it loads with `torch.load(weights_only=True)`.
"""

from dataclasses import dataclass
from typing import Protocol

import torch

from raypath.train.stacked import StackedAdamW
from raypath.train.stopping import EarlyStopping


class Checkpoints(Protocol):
    """Where the engine saves its state after an epoch and finds it again when it starts."""

    def load(self) -> dict | None:
        """The latest saved state, or None for a fresh start."""

    def save(self, state: dict, *, metrics: dict[str, dict[str, float]], epoch: int) -> None:
        """Keep `state` (called after every epoch, on every rank of a data-parallel run)."""


@dataclass
class Progress:
    """Per-member bookkeeping across epochs, and the next epoch to run."""

    stoppers: list[EarlyStopping]
    best: list[dict[str, torch.Tensor]]
    history: list[list[dict[str, float]]]
    active: torch.Tensor
    next_epoch: int = 0


def snapshot(progress: Progress, *, params: dict[str, torch.Tensor], optimizer: StackedAdamW,
             generator: torch.Generator) -> dict:
    """The whole training state after epoch `progress.next_epoch - 1` (CPU tensors, plain values)."""
    return {
        "epoch": progress.next_epoch - 1,
        "params": {k: v.detach().cpu() for k, v in params.items()},
        "optimizer": {k: ({n: t.cpu() for n, t in v.items()} if isinstance(v, dict) else v.cpu())
                      for k, v in optimizer.state_dict().items()},
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),  # dropout draws
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "stoppers": [s.state_dict() for s in progress.stoppers],
        "best": progress.best,
        "history": progress.history,
        "active": progress.active.cpu(),
    }


@torch.no_grad()
def restore(state: dict, progress: Progress, *, params: dict[str, torch.Tensor], optimizer: StackedAdamW,
            generator: torch.Generator) -> None:
    """Put a `snapshot` back into a freshly built run: it continues with epoch `state['epoch'] + 1`."""
    for name, value in state["params"].items():
        params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    for stopper, saved in zip(progress.stoppers, state["stoppers"], strict=True):
        stopper.load_state_dict(saved)
    progress.best, progress.history = list(state["best"]), [list(h) for h in state["history"]]
    progress.active = state["active"].to(progress.active.device)
    progress.next_epoch = int(state["epoch"]) + 1
