"""The sweep driver: per FM, an Optuna + ASHA search phase, then seed replicates of the winners.

Each phase is one Tune experiment under `<storage>/<sweep_id>-<fm>-<phase>`. Running the same
command again restores an interrupted phase with `Tuner.restore` (unfinished packs restart from
scratch, the searcher's pickled Optuna study continues) and skips finished ones in seconds, so a
sweep always ends with exactly the requested number of trained configurations. The driver is the
only MLflow writer (`MlflowSweepCallback`).
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ray import tune

from raypath.cluster import connect
from raypath.sweep.callback import MlflowSweepCallback
from raypath.sweep.config import SweepConfig
from raypath.sweep.inputs import (
    code_tags,
    effective_train,
    experiment_tags,
    feature_dataset,
    fm_store,
    sweep_tables,
    trial_data,
)
from raypath.sweep.replicates import replicate_packs, replicate_units
from raypath.sweep.selection import best_baseline, runs_frame, select_robust
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys
from raypath.sweep.tracking import RunLedger, experiment_name
from raypath.sweep.trainable import run_pack
from raypath.sweep.tuner import build_tuner
from raypath.train.data import TrainingSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseOutcome:
    """What one phase of one FM did: counts from Tune's results, and Tune's own timings."""

    fm: str
    phase: str
    path: str
    trials: int  # trained configurations (pack members)
    packs: int
    errored_packs: int
    wall_s: float
    trainable_s: float  # Σ time_total_s over packs: time spent inside trainables
    startup_s: float  # from fit() to the first trainable starting (Ray workers, imports, data hand-off)


def run_phase(
    config: SweepConfig,
    *,
    fm: str,
    phase: str,
    data: TrainingSource,
    ledger: RunLedger,
    packs: list[dict] | None = None,
) -> PhaseOutcome:
    """Run (or resume) one phase to completion and count what Tune finished."""
    train = effective_train(config)
    tracking = MlflowSweepCallback(ledger=ledger, sweep_id=config.sweep_id, fm=fm, phase=phase,
                                   train=train.model_dump(mode="json"), dataset=feature_dataset(data),
                                   tags=code_tags())
    resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
    trainable = tune.with_resources(
        tune.with_parameters(
            run_pack,
            data=data,
            train=train.model_dump(mode="json"),
            metric=config.objectives[0].metric,
            mode=config.objectives[0].mode,
            save_models=phase == "replicates",
            device="cuda" if config.resources.gpus_per_trial > 0 else "cpu",
        ),
        resources,
    )
    started, started_at = time.monotonic(), time.time()
    grid = build_tuner(config, fm=fm, phase=phase, trainable=trainable, tracking=tracking, packs=packs).fit()
    wall = time.monotonic() - started
    members = sum(len(r.config["pack"]) for r in grid if r.config)
    errored = sum(1 for r in grid if r.error is not None)
    trainable_s = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in grid)
    timed = [r.metrics for r in grid if r.metrics and {"timestamp", "time_total_s"} <= r.metrics.keys()]
    starts = [m["timestamp"] - m["time_total_s"] for m in timed]
    outcome = PhaseOutcome(
        fm=fm,
        phase=phase,
        path=str(grid.experiment_path),
        trials=members,
        packs=len(grid),
        errored_packs=errored,
        wall_s=wall,
        trainable_s=trainable_s,
        startup_s=max(0.0, min(starts) - started_at) if starts else 0.0,
    )
    log.info(
        "%s %s: %d configurations in %d packs (%d errored) in %.1f s",
        fm,
        phase,
        members,
        len(grid),
        errored,
        wall,
    )
    return outcome


def _replicates(config: SweepConfig, fm: str, ledger: RunLedger) -> list[dict]:
    frame = runs_frame(ledger.client, ledger.experiment_id, phase="search")
    robust = select_robust(
        frame,
        objectives=config.objectives,
        top_k=config.replicates.top_k,
        tolerance=config.replicates.accuracy_tolerance,
    )
    baseline = (best_baseline(frame, accuracy=config.objectives[0].metric)
                or baseline_params(config.space, config.train))
    units = replicate_units(mode=config.replicates.mode, count=config.replicates.seeds, base_seed=config.seed)
    return replicate_packs(
        configs=[baseline, *robust],
        units=units,
        pack_keys=pack_keys(config.space),
        pack_size=config.pack_size,
        sweep_id=config.sweep_id,
        fm=fm,
        robust_keys=ROBUST_KEYS,
    )


def run_sweep(config: SweepConfig) -> list[PhaseOutcome]:
    """Every FM: search, then replicates; returns one outcome per phase run."""
    # Only the JSON logger (results for the ResultGrid) is kept: the automatic CSV and TensorBoard
    # loggers cannot represent the nested per-member results. Must be set before Tune builds them.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Bad tables, unknown FMs and labels that do not cover the features fail here, before Ray starts.
    tables = sweep_tables(config)
    stores = {fm: fm_store(config, fm) for fm in config.features.fms}
    inputs = {fm: trial_data(config, store, tables) for fm, store in stores.items()}
    connect(config.ray_address, log_to_driver=False, settings=config.ray)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    outcomes = []
    for fm, store in stores.items():
        data = inputs[fm]
        ledger = RunLedger(
            tracking_uri=config.tracking_uri(),
            experiment=experiment_name(sweep_id=config.sweep_id, fm=fm),
            artifact_location=config.artifact_location(),
        )
        ledger.tag_experiment(experiment_tags(config, store))
        outcomes.append(run_phase(config, fm=fm, phase="search", data=data, ledger=ledger))
        if config.replicates.seeds:
            packs = _replicates(config, fm, ledger)
            outcomes.append(
                run_phase(config, fm=fm, phase="replicates", data=data, ledger=ledger, packs=packs)
            )
    return outcomes
