"""The sweep driver: per FM, an Optuna search phase with early stopping, then seed replicates of the winners.

Each phase is one Tune experiment under `<storage>/<sweep_id>-<fm>-<phase>`. Running the same
command again restores an interrupted phase with `Tuner.restore` (unfinished packs restart from
scratch, the searcher's JSON state continues the same search), once its state files passed the
seal (`raypath.sweep.seal`), and skips finished ones in seconds. A phase that did not complete
(SIGINT, SIGTERM) ends the command with the phase and how far it got (`raypath.sweep.phases`):
nothing is replicated from an incomplete search, and replicates of an earlier, different search
are discarded. The driver is the only MLflow writer (`MlflowSweepCallback`).
"""

import json
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
    effective_train,
    experiment_tags,
    fm_store,
    sweep_tables,
    trial_data,
)
from raypath.sweep.phases import (
    TAG_COMPLETE,
    TAG_DONE,
    TAG_PHASES,
    TAG_TOTAL,
    StopRequest,
    SweepStoppedError,
    graceful_stop,
)
from raypath.sweep.replicates import replicate_packs, replicate_units
from raypath.sweep.rerun import data_record
from raypath.sweep.seal import owner_only_writes
from raypath.sweep.selection import best_baseline, select_robust
from raypath.sweep.space import ROBUST_KEYS, baseline_params, pack_keys
from raypath.sweep.summary import earlier_wall, phase_summary
from raypath.sweep.trainable import run_pack
from raypath.sweep.tuner import (
    build_tuner,
    check_restorable,
    phase_seal,
    replicate_plan,
    search_packs,
    search_plan,
)
from raypath.tracking.inputs import code_tags, feature_dataset
from raypath.tracking.queries import runs_frame
from raypath.tracking.runs import TAG_PACKAGES, RunLedger, experiment_name, package_versions, phase_key
from raypath.tracking.store import ready_store
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
    first_error: str | None = None  # the last line of the first failed pack's error


def _trainable(config: SweepConfig, *, data: TrainingSource, phase: str) -> object:
    train = effective_train(config)
    resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
    return tune.with_resources(
        tune.with_parameters(
            run_pack,
            data=data,
            train=train.model_dump(mode="json"),
            metric=config.objectives[0].metric,
            mode=config.objectives[0].mode,
            save_models=phase == "replicates",
            # Search trials log validation metrics only (MlflowSweepCallback): test is not computed.
            final_splits=("val", "test") if phase == "replicates" else ("val",),
            device="cuda" if config.resources.gpus_per_trial > 0 else "cpu",
        ),
        resources,
    )


def _close_phase(config: SweepConfig, *, fm: str, phase: str, ledger: RunLedger, stop: StopRequest,
                 complete: bool, total: int, wall_s: float) -> None:
    """Record in MLflow whether the phase completed and its summary (`raypath.sweep.summary`); raise
    (with where it stopped) when it did not complete."""
    if not complete:
        ledger.close_stale()
    frame = runs_frame(ledger.client, ledger.experiment_id, phase=phase)
    ended = 0 if frame.empty else int(frame["status"].isin(["FINISHED", "FAILED"]).sum())
    done = total if complete else ended
    key = phase_key(sweep_id=config.sweep_id, fm=fm, phase=phase)
    parent = ledger.find(key)
    metrics, best = phase_summary(frame, objectives=config.objectives, tie=config.replicates.tie_tolerance,
                                  wall_s=wall_s + (earlier_wall(parent.data.metrics) if parent else 0.0))
    ledger.close_phase(key, complete=complete, metrics=metrics,
                       tags={TAG_COMPLETE: str(complete).lower(), TAG_DONE: str(done), TAG_TOTAL: str(total),
                             **best})
    if complete:
        return
    if stop.signal:
        raise stop.stopped(f"{fm} {phase}", done=done, total=total)
    raise SweepStoppedError(f"{fm} {phase} ended after {done} of {total} configurations without Tune "
                            "finishing it; nothing was replicated, compared or registered from it. Run the "
                            "same command again to continue it.")


def run_phase(
    config: SweepConfig,
    *,
    fm: str,
    phase: str,
    data: TrainingSource,
    ledger: RunLedger,
    stop: StopRequest,
    plan: str,
    packs: list[dict] | None = None,
) -> PhaseOutcome:
    """Run (or resume) one phase to completion and count what Tune finished; a phase that stopped
    early is recorded as incomplete and raised (`SweepStoppedError`)."""
    train = effective_train(config)
    tables = {"labels": config.features.labels, "splits": config.features.splits,
              "registration": config.features.registration}
    tracking = MlflowSweepCallback(ledger=ledger, sweep_id=config.sweep_id, fm=fm, phase=phase,
                                   train=train.model_dump(mode="json"), dataset=feature_dataset(data),
                                   tags={**code_tags(), TAG_PACKAGES: json.dumps(package_versions())},
                                   data=data_record(data, tables=tables))
    tuner = build_tuner(config, fm=fm, phase=phase, trainable=_trainable(config, data=data, phase=phase),
                        tracking=tracking, packs=packs, plan=plan)
    started, started_at = time.monotonic(), time.time()
    stop.in_phase = True
    try:
        grid = tuner.fit()
    finally:
        stop.in_phase = False
    wall = time.monotonic() - started
    expected = len(search_packs(config)) if phase == "search" else len(packs or [])
    total = config.num_samples if phase == "search" else sum(len(p["pack"]) for p in packs or [])
    complete = len(grid) == expected and grid.num_terminated + grid.num_errors == expected
    _close_phase(config, fm=fm, phase=phase, ledger=ledger, stop=stop, complete=complete, total=total,
                 wall_s=wall)
    members = sum(len(r.config["pack"]) for r in grid if r.config)
    errors = [r.error for r in grid if r.error is not None]
    trainable_s = sum(float((r.metrics or {}).get("time_total_s", 0.0)) for r in grid)
    timed = [r.metrics for r in grid if r.metrics and {"timestamp", "time_total_s"} <= r.metrics.keys()]
    starts = [m["timestamp"] - m["time_total_s"] for m in timed]
    outcome = PhaseOutcome(
        fm=fm,
        phase=phase,
        path=str(grid.experiment_path),
        trials=members,
        packs=len(grid),
        errored_packs=len(errors),
        wall_s=wall,
        trainable_s=trainable_s,
        startup_s=max(0.0, min(starts) - started_at) if starts else 0.0,
        first_error=str(errors[0]).strip().splitlines()[-1] if errors else None,
    )
    log.info("%s %s: %d configurations in %d packs (%d errored) in %.1f s", fm, phase, members, len(grid),
             len(errors), wall)
    return outcome


def _require_results(config: SweepConfig, outcome: PhaseOutcome, ledger: RunLedger) -> None:
    """A search in which no trial reported its objective ends here, saying so (not in selection)."""
    accuracy = config.objectives[0].metric
    frame = runs_frame(ledger.client, ledger.experiment_id, phase="search")
    if not frame.empty and accuracy in frame and frame[accuracy].notna().any():
        return
    failed = f"{outcome.errored_packs} of {outcome.packs} packs failed after their retries"
    error = f"; the first error: {outcome.first_error}" if outcome.first_error else ""
    reported = sorted(c for c in frame.columns if c.startswith("val/")) if not frame.empty else []
    named = f"; trials report {', '.join(reported[:6])} (check objectives)" if reported else ""
    raise SweepStoppedError(f"{outcome.fm} search: no trial reported {accuracy} ({failed}{error}{named}); "
                            f"each failed trial's error.txt is under {outcome.path}")


def _replicates(config: SweepConfig, fm: str, ledger: RunLedger) -> list[dict]:
    frame = runs_frame(ledger.client, ledger.experiment_id, phase="search")
    robust = select_robust(
        frame,
        objectives=config.objectives,
        top_k=config.replicates.top_k,
        tolerance=config.replicates.accuracy_tolerance,
        tie=config.replicates.tie_tolerance,
    )
    tie = config.replicates.tie_tolerance
    baseline = (best_baseline(frame, accuracy=config.objectives[0].metric, tie=tie)
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


def _discard_stale_replicates(config: SweepConfig, *, fm: str, ledger: RunLedger, packs: list[dict],
                              plan: str) -> None:
    """Replicates of another selection (an earlier, shorter search) are deleted, never reused."""
    seal = phase_seal(config, fm=fm, phase="replicates")
    keys = {m["key"] for p in packs for m in p["pack"]}
    frame = runs_frame(ledger.client, ledger.experiment_id, phase="replicates")
    stale_runs = not frame.empty and not set(frame["key"]) <= keys
    stale_dir = tune.Tuner.can_restore(seal.path) and seal.plan() != plan
    if stale_runs or stale_dir:
        log.warning("%s: discarding the replicates of an earlier search (%d MLflow runs and %s): the "
                    "complete search selected other configurations", fm, ledger.delete_phase("replicates"),
                    seal.path)
        seal.remove()


def _check_phase_directories(config: SweepConfig, plans: dict[str, str]) -> None:
    """Existing phase directories are restorable (config unchanged, state files sealed): before Ray."""
    for fm, plan in plans.items():
        for phase in ("search", "replicates"):
            seal = phase_seal(config, fm=fm, phase=phase)
            if not tune.Tuner.can_restore(seal.path):
                continue
            if config.resume == "never":
                raise FileExistsError(f"sweep phase {seal.path} exists and resume is 'never'; use a new "
                                      "sweep_id")
            if phase == "search" or seal.plan() is not None:  # unsealed replicates are discarded, unread
                check_restorable(seal, plan=plan if phase == "search" else None)


def _run_fm(config: SweepConfig, *, fm: str, data: TrainingSource, ledger: RunLedger, stop: StopRequest,
            plan: str) -> list[PhaseOutcome]:
    """Search, then (when configured) the replicates of what the complete search selected."""
    if stop.signal:
        raise stop.stopped(f"{fm} search")
    search = run_phase(config, fm=fm, phase="search", data=data, ledger=ledger, stop=stop, plan=plan)
    _require_results(config, search, ledger)
    if not config.replicates.seeds:
        return [search]
    packs = _replicates(config, fm, ledger)
    train = effective_train(config).model_dump(mode="json")
    replicates = replicate_plan(packs, train=train, fingerprint=data.fingerprint)
    _discard_stale_replicates(config, fm=fm, ledger=ledger, packs=packs, plan=replicates)
    if stop.signal:
        raise stop.stopped(f"{fm} replicates")
    return [search, run_phase(config, fm=fm, phase="replicates", data=data, ledger=ledger, stop=stop,
                              plan=replicates, packs=packs)]


def run_sweep(config: SweepConfig) -> list[PhaseOutcome]:
    """Every FM: search, then replicates; returns one outcome per phase run, or raises
    `SweepStoppedError` naming the phase that did not complete."""
    # Only the JSON logger (results for the ResultGrid) is kept: the automatic CSV and TensorBoard
    # loggers cannot represent the nested per-member results. Must be set before Tune builds them.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # SIGINT ends a phase through `graceful_stop`
    # Bad tables, unknown FMs, labels that do not cover the features, a changed config or untrusted
    # state under an existing phase directory fail here, before Ray starts.
    tables = sweep_tables(config)
    stores = {fm: fm_store(config, fm) for fm in config.features.fms}
    inputs = {fm: trial_data(config, store, tables) for fm, store in stores.items()}
    train = effective_train(config).model_dump(mode="json")
    plans = {fm: search_plan(config, train=train, fingerprint=data.fingerprint)
             for fm, data in inputs.items()}
    _check_phase_directories(config, plans)
    ready_store(config.tracking_uri())  # made or upgraded whole before Ray starts
    connect(config.ray_address, log_to_driver=False, settings=config.ray)
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    phases = "search,replicates" if config.replicates.seeds else "search"
    outcomes = []
    with owner_only_writes(), graceful_stop() as stop:
        for fm, store in stores.items():
            ledger = RunLedger(
                tracking_uri=config.tracking_uri(),
                experiment=experiment_name(sweep_id=config.sweep_id, fm=fm),
                artifact_location=config.artifact_location(),
            )
            ledger.tag_experiment({**experiment_tags(config, store), TAG_PHASES: phases})
            outcomes += _run_fm(config, fm=fm, data=inputs[fm], ledger=ledger, stop=stop, plan=plans[fm])
    return outcomes
