"""The driver side of a data-parallel run: one Ray Train `TorchTrainer` per call, resumable by name.

`fit` needs a Ray instance started by `raypath.cluster.connect` (the one way raypath starts or joins
Ray: a private local instance, the submitted job's cluster, or a named address) and raises if there
is none, rather than starting one itself: only the command knows which cluster the user meant, and
a silent `ray.init` here would attach to whatever cluster happens to run on the host.

Runs live in `<storage>/<name>`. Ray Train (v2) restores a run from the checkpoint-manager snapshot
it keeps there whenever a trainer with the same storage path and name starts, so calling `fit` again
after the driver was killed continues from the latest checkpoint (`load_checkpoint` in the loop
sees it); `resume=False` removes the earlier run first, so the loop starts from scratch. (Train v2,
the default in Ray 2.60, raises on `TorchTrainer.can_restore/restore` and `resume_from_checkpoint`:
restoring by name is its one way to resume.)
"""

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import ray
from ray.train import CheckpointConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from raypath.distributed.config import DistributedConfig

log = logging.getLogger(__name__)

SNAPSHOT = "checkpoint_manager_snapshot.json"  # what Ray Train restores a run from


def run_directory(*, storage: Path, name: str) -> Path:
    """Where Ray Train keeps run `name`: checkpoints and the snapshot it restores from."""
    return Path(storage).expanduser().resolve() / name


def has_previous_run(*, storage: Path, name: str) -> bool:
    """Whether a run of this name left a checkpoint record under `storage` (a restart resumes it)."""
    return (run_directory(storage=storage, name=name) / SNAPSHOT).is_file()


def fit(
    *,
    loop: Callable[[dict], None],
    loop_config: dict,
    settings: DistributedConfig,
    storage: Path,
    name: str,
    resume: bool = True,
) -> Result:
    """Run `loop(loop_config)` on `settings.workers` workers and return Ray Train's result.

    Raises `RuntimeError` when Ray is not initialised (call `raypath.cluster.connect` first) and
    `ray.train.TrainingFailedError` when the run fails beyond `settings.max_failures` restarts.
    """
    if not ray.is_initialized():
        raise RuntimeError("distributed.fit needs Ray: call raypath.cluster.connect(address) first "
                           "(it starts a private local instance or joins the job's cluster)")
    directory = run_directory(storage=storage, name=name)
    if has_previous_run(storage=storage, name=name):
        if resume:
            log.info("resuming %s from its latest checkpoint", directory)
        else:
            log.warning("resume=False: removing the earlier run %s", directory)
            shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    trainer = TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=settings.workers, use_gpu=settings.use_gpu,
                                     resources_per_worker={"CPU": settings.cpus_per_worker}),
        torch_config=TorchConfig(backend=settings.resolved_backend()),
        run_config=RunConfig(
            storage_path=str(directory.parent),
            name=name,
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=settings.keep_checkpoints),
        ),
    )
    result = trainer.fit()
    log.info("%s: finished; latest checkpoint %s", name, result.checkpoint and result.checkpoint.path)
    return result
