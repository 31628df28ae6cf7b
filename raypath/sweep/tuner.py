"""Build the Tune experiment of a sweep phase, or restore it when its directory already exists.

The search phase uses the packing Optuna searcher and ASHA; the replicate phase is a plain grid of
packs. Both log to MLflow through the driver callback and retry failed packs (`FailureConfig`).
A restored experiment keeps its pickled run config (callbacks, failure policy) and searcher.
"""

import logging
from typing import Any

from ray import tune
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from raypath.paths import join
from raypath.sweep.callback import MlflowSweepCallback
from raypath.sweep.config import SweepConfig
from raypath.sweep.packing import PACK_METRIC, PackedOptunaSearcher
from raypath.sweep.progress import ProgressCallback
from raypath.sweep.schedulers import ArmASHA
from raypath.sweep.space import ROBUST_KEYS, baseline_params, make_sampler, pack_keys, to_optuna

log = logging.getLogger(__name__)


def trial_dirname(trial: Any) -> str:
    """Short trial directories: Tune's default name embeds the whole (long) pack config."""
    return f"pack_{trial.trial_id}"


def _scheduler(config: SweepConfig) -> TrialScheduler:
    if not config.asha.enabled:
        return FIFOScheduler()
    # max_t one past the last epoch: at max_t ASHA stops a trial, which would cut off its final
    # evaluation report (sent with the same epoch count after training ends). One ladder per arm:
    # the tuned control is early-stopped only by control packs.
    return ArmASHA(
        time_attr="epoch",
        metric=PACK_METRIC,
        mode=config.objectives[0].mode,
        max_t=config.train.epochs + 1,
        grace_period=min(config.asha.grace_period, config.train.epochs),
        reduction_factor=config.asha.reduction_factor,
    )


def _searcher(config: SweepConfig, fm: str) -> PackedOptunaSearcher:
    objectives = config.objectives
    return PackedOptunaSearcher(
        space=to_optuna(config.space),
        metrics=[o.metric for o in objectives],
        modes=[o.mode for o in objectives],
        sampler=make_sampler(config.sampler, seed=config.seed, n_objectives=len(objectives)),
        num_configs=config.num_samples,
        pack_size=config.pack_size,
        pack_keys=pack_keys(config.space),
        baseline=baseline_params(config.space, config.train),
        sweep_id=config.sweep_id,
        fm=fm,
        seed=config.seed,
        robust_keys=ROBUST_KEYS,
        baseline_share=config.baseline_share,
        baseline_sampler=make_sampler(config.sampler, seed=config.seed + 1, n_objectives=len(objectives)),
    )


def build_tuner(
    config: SweepConfig, *, fm: str, phase: str, trainable: Any, tracking: MlflowSweepCallback,
    packs: list[dict] | None,
) -> tune.Tuner:
    """A new Tuner for the phase, or the restored one when its experiment directory exists."""
    name = f"{config.sweep_id}-{fm}-{phase}"
    path = join(config.tune_storage(), name)
    if tune.Tuner.can_restore(path):
        if config.resume == "never":
            raise FileExistsError(f"sweep phase {path} exists and resume is 'never'; use a new sweep_id")
        log.info("%s: restoring the interrupted experiment %s", phase, path)
        return tune.Tuner.restore(
            path, trainable=trainable, resume_unfinished=True, resume_errored=False, restart_errored=False
        )
    search = phase == "search"
    searcher = _searcher(config, fm) if search else None
    tune_config = tune.TuneConfig(
        search_alg=searcher,
        scheduler=_scheduler(config) if search else FIFOScheduler(),
        num_samples=searcher.packs if searcher else 1,
        max_concurrent_trials=config.resources.max_concurrent_trials,
        reuse_actors=True,
        trial_dirname_creator=trial_dirname,
    )
    total = config.num_samples if search else sum(len(p["pack"]) for p in packs or [])
    callbacks = [
        tracking,
        ProgressCallback(total=total, description=f"{fm} {phase}"),
        JsonLoggerCallback(),
    ]
    run_config = tune.RunConfig(
        name=name,
        storage_path=config.tune_storage(),
        callbacks=callbacks,
        verbose=0,
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
    )
    space = {} if search else {"phase": phase, "pack": tune.grid_search([p["pack"] for p in packs or []])}
    return tune.Tuner(trainable, param_space=space, tune_config=tune_config, run_config=run_config)
