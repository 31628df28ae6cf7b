"""What a training loop calls inside each Ray Train worker to join the group: its place in it
(`data_parallel`: rank, shards, seeds, collectives) and the model wrapper (`prepare`).

Two ways of averaging gradients run on these workers, each where it is needed: the MIL engine
averages by hand through `DataParallel` (which keeps `raypath.train` free of Ray and makes W workers
equal one process with W times the batch), the fine-tuning loop through DDP/FSDP from `prepare`
(FSDP shards a foundation model too large for one worker's memory). Checkpoints are in
`raypath.distributed.checkpoints`.
"""

import ray.train
import ray.train.torch
import torch
from torch import nn

from raypath.train.parallel import DataParallel


def data_parallel(*, seed: int, device: torch.device | str | None = None) -> DataParallel:
    """This worker's place in the Ray Train group; collectives send from `device` (default: the
    worker's device, the one `prepare` puts the model on)."""
    context = ray.train.get_context()
    return DataParallel(rank=context.get_world_rank(), world_size=context.get_world_size(), seed=seed,
                        device=ray.train.torch.get_device() if device is None else device)


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
        mesh = init_device_mesh(device.type, (ray.train.get_context().get_world_size(),))
        return fully_shard(model, mesh=mesh)
    raise ValueError(f"unknown strategy {strategy!r} (ddp or fsdp)")
