"""Build the Tune experiment of a sweep phase, or restore it when its directory already exists.

The search phase uses the packing Optuna searcher and batch-synchronous halving; the replicate
phase hands out a fixed list of packs. Both log to MLflow through the driver callback and retry
failed packs (`FailureConfig`). Tune's state files are sealed as they are saved and checked before
a restore (`raypath.sweep.seal`); a restored experiment keeps its run config and searcher.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from raypath.sweep.callback import MlflowSweepCallback
from raypath.sweep.config import SweepConfig
from raypath.sweep.packing import PACK_METRIC, PackedOptunaSearcher, control_configs, pack_plan
from raypath.sweep.progress import ProgressCallback
from raypath.sweep.schedulers import BatchHalving, RungBook, milestones
from raypath.sweep.seal import SEALS_DIR, SealCallback, StateSeal
from raypath.sweep.searcher_state import PackListSearcher, StagingSearcher
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys, to_optuna
from raypath.tracking.runs import stable_hash

log = logging.getLogger(__name__)


def trial_dirname(trial: Any) -> str:
    """Short trial directories: Tune's default name embeds the whole (long) pack config."""
    return f"pack_{trial.trial_id}"


def phase_seal(config: SweepConfig, *, fm: str, phase: str) -> StateSeal:
    """The seal of one phase's experiment directory `<storage>/<sweep_id>-<fm>-<phase>`."""
    return StateSeal(seals=str((Path(config.output_dir) / SEALS_DIR).resolve()),
                     storage=config.tune_storage(), experiment=f"{config.sweep_id}-{fm}-{phase}")


def search_packs(config: SweepConfig) -> list[tuple[bool, int]]:
    """(control pack?, size) of every search pack, as the searcher will issue them."""
    n_baseline = control_configs(space=list(config.space), num_configs=config.num_samples,
                                 baseline_share=config.baseline_share)
    return pack_plan(num_configs=config.num_samples, pack_size=config.pack_size, n_baseline=n_baseline,
                     width=config.tail_width())


def search_plan(config: SweepConfig, *, train: dict, fingerprint: str) -> str:
    """Digest of everything that decides what a search trains: a restored search must match it."""
    return stable_hash({
        "space": {k: v.model_dump() for k, v in config.space.items()}, "train": train,
        "objectives": [o.model_dump() for o in config.objectives], "sampler": config.sampler,
        "num_samples": config.num_samples, "baseline_share": config.baseline_share,
        "pack_size": config.pack_size, "batch": config.batch_packs(),
        "tail_width": config.tail_width(), "asha": config.asha.model_dump(),
        "seed": config.seed, "fingerprint": fingerprint}, length=32)


def replicate_plan(packs: Sequence[dict], *, train: dict, fingerprint: str) -> str:
    """Digest of a replicate grid (its members' keys name configuration, seed and position)."""
    return stable_hash({"packs": [[m["key"] for m in p["pack"]] for p in packs], "train": train,
                        "fingerprint": fingerprint}, length=32)


def _scheduler(config: SweepConfig, rungs: RungBook) -> TrialScheduler:
    if not config.asha.enabled:
        return FIFOScheduler()
    # max_t one past the last epoch: at max_t a pack would be stopped before its final evaluation
    # report (sent with the same epoch count after training ends).
    return BatchHalving(book=rungs, metric=PACK_METRIC, mode=config.objectives[0].mode,
                        rungs=milestones(grace_period=min(config.asha.grace_period, config.train.epochs),
                                         reduction_factor=config.asha.reduction_factor,
                                         max_t=config.train.epochs + 1),
                        reduction_factor=config.asha.reduction_factor)


def _searcher(config: SweepConfig, fm: str, rungs: RungBook) -> PackedOptunaSearcher:
    objectives = config.objectives
    return PackedOptunaSearcher(
        space=to_optuna(config.space), metrics=[o.metric for o in objectives],
        modes=[o.mode for o in objectives],
        sampler=config.sampler, num_configs=config.num_samples, pack_size=config.pack_size,
        pack_keys=pack_keys(config.space), baseline=baseline_params(config.space, config.train),
        sweep_id=config.sweep_id, fm=fm, seed=config.seed, robust_keys=ROBUST_KEYS,
        baseline_share=config.baseline_share, batch_packs=config.batch_packs(), rungs=rungs,
        tail_width=config.tail_width())


def check_restorable(seal: StateSeal, *, plan: str | None) -> None:
    """Refuse a phase directory written for another plan, or whose state files fail the seal."""
    recorded = seal.plan()
    if plan is not None and recorded is not None and recorded != plan:
        raise ValueError(f"{seal.path} holds a sweep phase started with another config (one of: space, "
                         "objectives, sampler, num_samples, baseline_share, pack_size, search_batch or "
                         "max_concurrent_trials, taper_tail, asha, seed, the train config, the features); "
                         "rerun with the config it was started with, use a new sweep_id, or remove "
                         f"{seal.path} to start that phase again")
    seal.verify()


def build_tuner(
    config: SweepConfig, *, fm: str, phase: str, trainable: Any, tracking: MlflowSweepCallback,
    packs: list[dict] | None, plan: str,
) -> tune.Tuner:
    """A new Tuner for the phase, or the restored one when its experiment directory exists."""
    seal = phase_seal(config, fm=fm, phase=phase)
    if tune.Tuner.can_restore(seal.path):
        if config.resume == "never":
            raise FileExistsError(f"sweep phase {seal.path} exists and resume is 'never'; use a new sweep_id")
        check_restorable(seal, plan=plan)
        log.info("%s: restoring the interrupted experiment %s", phase, seal.path)
        return tune.Tuner.restore(seal.path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=False)
    search = phase == "search"
    rungs = RungBook()
    searcher: StagingSearcher = _searcher(config, fm, rungs) if search else PackListSearcher(packs or [])
    searcher.on_save = seal.note_staging
    total_packs = len(search_packs(config)) if search else len(packs or [])
    tune_config = tune.TuneConfig(
        search_alg=searcher,
        scheduler=_scheduler(config, rungs) if search else FIFOScheduler(),
        num_samples=total_packs,
        max_concurrent_trials=config.resources.max_concurrent_trials,
        reuse_actors=True,
        trial_dirname_creator=trial_dirname,
    )
    total = config.num_samples if search else sum(len(p["pack"]) for p in packs or [])
    callbacks = [tracking, ProgressCallback(total=total, description=f"{fm} {phase}"), JsonLoggerCallback(),
                 SealCallback(seal)]
    run_config = tune.RunConfig(
        name=seal.experiment,
        storage_path=config.tune_storage(),
        callbacks=callbacks,
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
    )
    seal.start(plan)
    tuner = tune.Tuner(trainable, param_space={}, tune_config=tune_config, run_config=run_config)
    seal.seal(seal.path, ["tuner.pkl"])
    return tuner
