"""Settings of one data-parallel Ray Train run (`raypath train --workers N`, `raypath finetune`)."""

from typing import Literal

from pydantic import Field

from raypath.config import StrictModel


class DistributedConfig(StrictModel):
    """How many workers train one model, on what, and how failures and checkpoints are handled.

    One section for every data-parallel command, so the frozen-feature MIL trainer and the
    fine-tuning trainer read the same keys and behave alike under failures and restarts.
    """

    workers: int = Field(1, ge=1, description="Ray Train workers (processes) training one model")
    use_gpu: bool = Field(False, description="one GPU per worker")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp = replicated parameters, averaged gradients; fsdp = sharded parameters "
                           "(for models too large to replicate, e.g. ViT-g foundation models)")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        "auto", description="collective backend; auto = nccl with GPUs, gloo on CPUs")
    max_failures: int = Field(0, ge=-1, description="worker-group restarts from the latest checkpoint "
                                                    "after a worker fails (-1 = unlimited)")
    checkpoint_every: int = Field(1, ge=1, description="epochs between checkpoints")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept in the run directory")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs reserved for each worker")

    def resolved_backend(self) -> Literal["gloo", "nccl"]:
        """The collective backend: an explicit choice, else nccl with GPUs and gloo without."""
        if self.backend != "auto":
            return self.backend
        return "nccl" if self.use_gpu else "gloo"
