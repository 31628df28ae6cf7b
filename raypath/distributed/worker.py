"""What a training loop calls inside each Ray Train worker: the model wrapper, its place in the
group, its share of the data, checkpoints and collectives.

Every rank must call `save_checkpoint` at the same points (Ray Train's report is a collective):
rank 0 attaches the state, the others only their metrics. States go through `torch.save` and come
back through `torch.load(weights_only=True)`, so they hold tensors and plain Python values only
(nothing that unpickles into code).
"""

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn

from raypath.train.parallel import average, split_evenly

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


def rank() -> int:
    """This worker's rank in the group (0 in a plain process)."""
    return ray.train.get_context().get_world_rank()


def world_size() -> int:
    """Workers in the group."""
    return ray.train.get_context().get_world_size()


def prepare(model: nn.Module, *, strategy: str) -> nn.Module:
    """`model` on this worker's device, wrapped for data parallelism.

    ddp: Ray's `prepare_model` (DistributedDataParallel; gradients averaged in backward).
    fsdp: torch's FSDP2 `fully_shard` over a one-dimensional mesh of all workers; parameters become
    sharded DTensors and are gathered per forward, so a model larger than one worker's memory fits.
    """
    if strategy == "ddp":
        return ray.train.torch.prepare_model(model)
    if strategy == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        device = ray.train.torch.get_device()
        model = model.to(device)
        mesh = init_device_mesh(device.type, (world_size(),))
        return fully_shard(model, mesh=mesh)
    raise ValueError(f"unknown strategy {strategy!r} (ddp or fsdp)")


def shard(items: Sequence, *, seed: int, epoch: int) -> list:
    """This rank's share of a (seed, epoch)-seeded permutation of `items`.

    Every rank draws the same permutation and takes an equal number of items, disjoint between
    ranks; when the count does not divide, the first items are repeated, so every rank runs the same
    number of steps and no collective waits for a rank that has run out of data.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(items))
    return [items[i] for i in split_evenly(list(order), rank=rank(), world_size=world_size())]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all ranks (a new CPU tensor; identical on every rank). Sent from
    the worker's device: NCCL reduces only GPU tensors."""
    return average([tensor.to(ray.train.torch.get_device())])[0].cpu()


def decided_by_rank_zero(flag: bool) -> bool:
    """Rank 0's `flag` on every rank: rank 0 validates and decides, e.g. whether the group stops."""
    tensor = torch.tensor([int(flag)], device=ray.train.torch.get_device())
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def save_checkpoint(state: dict, *, metrics: dict, epoch: int) -> None:
    """Report this epoch's metrics; rank 0 also writes `state` as a Ray Train checkpoint."""
    metrics = {**metrics, "epoch": epoch}
    if rank() != 0:
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
    log.info("rank %d: resuming from %s (epoch %s)", rank(), checkpoint.path, state.get("epoch"))
    return state


