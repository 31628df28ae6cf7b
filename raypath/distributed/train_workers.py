"""`raypath train --workers N`: one MIL model on frozen features, trained data-parallel by the one
engine (`train_pack`, a pack of one) inside each Ray Train worker.

Each worker opens the training data from its node's feature cache (built once per node under a
file lock), takes its share of every epoch's specimen batches and averages gradients with the
others by hand (`raypath.train.parallel`, not DDP: the engine stays plain torch, and two workers
with batch K train exactly as one process with 2K). After every epoch all ranks report; rank 0
attaches the whole engine state every `checkpoint_every` epochs (`RayCheckpoints`), so a restarted
worker group or a resumed driver continues from it. Rank 0 validates, logs to the tracker (MLflow)
and writes the same outputs as a single-process `raypath train`.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import ray
import ray.train.torch

from raypath.cluster import connect
from raypath.config import RaySettings
from raypath.distributed.checkpoints import RayCheckpoints
from raypath.distributed.config import DistributedConfig
from raypath.distributed.trainer import fit
from raypath.distributed.worker import data_parallel
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingSource
from raypath.train.engine import PackMember, train_pack
from raypath.train.outputs import write_outputs

log = logging.getLogger(__name__)

KEY = "model"  # the pack's one member


class Tracker(Protocol):
    """Where rank 0 logs (e.g. `raypath.tracking.train_run.TrainRun`, an MLflow run)."""

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        """One epoch's metrics."""

    def finish(self, *, metrics: dict[str, float], undefined: dict[str, str], out: Path | None,
               step: int, caveats: dict[str, str] | None = None) -> None:
        """The final metrics and the output files; ends the run."""


@dataclass(frozen=True)
class MilJob:
    """What every worker receives (kilobytes: paths, tables, settings; never features)."""

    source: TrainingSource
    config: TrainConfig
    seed: int
    out: Path | None = None
    checkpoint_every: int = 1
    tracker: Tracker | None = None  # rank 0 logs every epoch and the end
    use_gpu: bool = False
    epoch_hooks: tuple[Callable[..., None], ...] = ()
    """Called on every rank after each epoch, before its checkpoint, as `hook(epoch=, rank=)`
    (monitoring; the tests inject worker failures with one)."""


def mil_loop(loop_config: dict) -> None:
    """Ray Train worker entry point: `loop_config["job"]` is a `MilJob`."""
    job: MilJob = loop_config["job"]
    node = ray.get_runtime_context().get_node_id()[:16]
    data = job.source.open(node=node)
    device = ray.train.torch.get_device() if job.use_gpu else "cpu"
    parallel = data_parallel(seed=job.seed, device=device)
    checkpoints = RayCheckpoints(every=job.checkpoint_every, last_epoch=job.config.epochs - 1, member=KEY)

    def on_epoch(epoch: int, reported: dict[str, dict[str, float]]) -> None:
        for hook in job.epoch_hooks:
            hook(epoch=epoch, rank=parallel.rank)
        if job.tracker is not None and KEY in reported:
            job.tracker(epoch, reported[KEY])

    results = train_pack(members=[PackMember(key=KEY, config=job.config)], data=data, seed=job.seed,
                         on_epoch=on_epoch, parallel=parallel, checkpoints=checkpoints, device=device)
    if parallel.rank != 0:
        return
    result = results[KEY]
    if job.out is not None:
        write_outputs(result, config=job.config, out=job.out, provenance=job.source.provenance(node=node),
                      storage=job.source.storage, training={"seed": job.seed, "workers": parallel.world_size})
        log.info("rank 0 wrote %s (best epoch %d)", job.out, result.best_epoch)
    if job.tracker is not None:
        job.tracker.finish(metrics=result.metrics, undefined=result.undefined, out=job.out,
                           step=len(result.history), caveats=result.caveats)


def train_on_workers(*, job: MilJob, settings: DistributedConfig, storage: Path, name: str,
                     address: str | None = None, resume: bool = True,
                     ray_settings: RaySettings | None = None) -> dict[str, float]:
    """Train `job` on `settings.workers` workers (joining or starting Ray through `connect`) and
    return rank 0's final metrics (read back from `job.out`, which must be set)."""
    if job.out is None:
        raise ValueError("a data-parallel run writes its outputs from rank 0: set MilJob.out")
    connect(address, settings=ray_settings)
    fit(loop=mil_loop, loop_config={"job": job}, settings=settings, storage=storage, name=name, resume=resume)
    return json.loads((job.out / "metrics.json").read_text())

