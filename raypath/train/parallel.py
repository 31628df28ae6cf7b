"""Data parallelism for the one training engine, in plain torch.distributed (no Ray here).

Every rank holds the same parameters and draws the same batch order; a step takes one batch per
rank, averages the gradients over ranks, and applies the same update everywhere, so parameters stay
identical without ever being sent. With the loss a mean over slides and equal-sized batches, the
averaged gradient of W batches of K specimens is the gradient of their union: W workers with
`batch_specimens` K train like one process with W*K. Ray Train sets up the process group; the
`raypath.distributed` package runs this on its workers.

`DataParallel` is also the group's place, shards, seeds and collectives for the fine-tuning loop,
which averages gradients through DDP/FSDP instead (sharding the FM needs FSDP, and DDP is its
replicated twin); the engine averages by hand because that keeps `raypath.train` free of Ray and a
group of W exactly one process with W*K.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

Item = TypeVar("Item")


def split_evenly(items: Sequence[Item], *, rank: int, world_size: int) -> list[Item]:
    """Items rank, rank + W, rank + 2W, ... of `items`, padded by repeating the first ones so every
    rank gets ceil(n / W): equal step counts keep collectives from waiting on a rank with no data."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a group of {world_size}")
    if not items:
        return []
    per_rank = -(-len(items) // world_size)
    padded = [items[i % len(items)] for i in range(per_rank * world_size)]
    return padded[rank::world_size]


def average(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor averaged over all ranks, in one all-reduce of a flat buffer (one collective per
    step, not one per parameter); identity without a process group."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [t.clone() for t in tensors]
    flat = torch.cat([t.detach().reshape(-1).to(torch.get_default_dtype()) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    out, start = [], 0
    for t in tensors:
        out.append(flat[start:start + t.numel()].reshape(t.shape).to(t.dtype))
        start += t.numel()
    return out


@dataclass(frozen=True)
class DataParallel:
    """This process's place among the replicas training one model (or pack): which data it takes
    and how gradients, metrics and decisions are made identical on every rank. Collectives send
    tensors from `device` (NCCL reduces only GPU tensors) and return them where they came from."""

    rank: int
    world_size: int
    seed: int
    device: torch.device | str = "cpu"

    def take(self, batches: Sequence[Item]) -> list[Item]:
        """This rank's batches of an epoch's list (same list on every rank)."""
        return split_evenly(batches, rank=self.rank, world_size=self.world_size)

    def shard(self, items: Sequence[Item], *, epoch: int) -> list[Item]:
        """This rank's share of a (seed, epoch)-seeded permutation of `items`: every rank draws the
        same permutation and takes an equal, disjoint share (padded as `split_evenly` pads)."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(items))
        return self.take([items[i] for i in order])

    def average(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Each tensor averaged over all ranks (identical on every rank), on its own device."""
        averaged = average([t.to(self.device) for t in tensors])
        return [a.to(t.device) for a, t in zip(averaged, tensors, strict=True)]

    def epoch_seed(self, epoch: int) -> int:
        """A per-rank, per-epoch seed for tile sampling and dropout. Ranks draw from their own
        generators (a shared one would drift apart between ranks, and with it the batch order), and
        seeding per epoch makes a restarted group draw what it would have drawn."""
        return int(np.random.SeedSequence([self.seed, self.rank, epoch]).generate_state(1)[0])

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's value of `tensor` on every rank (rank 0 decides, e.g. which members go on or
        whether the group stops), on the tensor's own device."""
        if self.world_size == 1:
            return tensor
        sent = tensor.to(self.device)
        dist.broadcast(sent, src=0)
        return sent.to(tensor.device)
