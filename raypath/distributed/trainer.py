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

import errno
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import ray
from ray.train import CheckpointConfig, FailureConfig, Result, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from raypath.distributed.config import DistributedConfig
from raypath.errors import is_disk_full

log = logging.getLogger(__name__)

SNAPSHOT = "checkpoint_manager_snapshot.json"  # what Ray Train restores a run from


def run_directory(*, storage: Path, name: str) -> Path:
    """Where Ray Train keeps run `name`: checkpoints and the snapshot it restores from."""
    return Path(storage).expanduser().resolve() / name


def has_previous_run(*, storage: Path, name: str) -> bool:
    """Whether a run of this name left a checkpoint record under `storage` (a restart resumes it)."""
    return (run_directory(storage=storage, name=name) / SNAPSHOT).is_file()


def recorded_checkpoints(directory: Path) -> set[str]:
    """Names of the checkpoint directories Ray Train recorded in the run's snapshot (complete ones)."""
    snapshot = directory / SNAPSHOT
    if not snapshot.is_file():
        return set()
    data = json.loads(snapshot.read_text())
    results = [*data.get("checkpoint_results", []), data.get("latest_checkpoint_result") or {}]
    return {r["checkpoint_dir_name"] for r in results if r.get("checkpoint_dir_name")}


def remove_unrecorded_checkpoints(directory: Path) -> None:
    """Checkpoint directories Ray Train never recorded were cut off while being written (a full disk, a
    killed worker): removed, so no half checkpoint stays under a checkpoint's name."""
    recorded = recorded_checkpoints(directory)
    for path in sorted(directory.glob("checkpoint_*")):
        if path.is_dir() and path.name not in recorded:
            log.warning("removing %s: an unfinished checkpoint (Ray Train never recorded it)", path)
            shutil.rmtree(path, ignore_errors=True)


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
            remove_unrecorded_checkpoints(directory)
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
    try:
        result = trainer.fit()
    except Exception as exc:
        if is_disk_full(exc):
            remove_unrecorded_checkpoints(directory)
            raise OSError(errno.ENOSPC, "no space left on device for this run's checkpoints; the ones "
                          "completed before are kept: free space and run the same command again to resume",
                          str(directory)) from None
        raise
    log.info("%s: finished; latest checkpoint %s", name, result.checkpoint and result.checkpoint.path)
    return result
