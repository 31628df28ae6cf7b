"""Optuna studies rebuilt from data: the searcher keeps its trials as JSON records, never a pickle.

Each batch of a search is asked of a fresh in-memory study holding a fixed set of earlier trials
(`raypath.sweep.packing` says which: finished ones with their results, the batch still running as
running trials), with a sampler seeded from (sweep seed, batch, arm). What a batch suggests is then
a function of those records and nothing else: not of the order in which concurrent trials
finished, nor of whether the driver was restarted in between.
"""

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from raypath.sweep.space import make_sampler


def batch_seed(*, seed: int, batch: int, arm: str) -> int:
    """The sampler seed of one arm's asks in one batch (32 bits, as numpy wants)."""
    digest = hashlib.sha256(json.dumps([seed, batch, arm]).encode()).hexdigest()
    return int(digest[:8], 16)


def _jsonable(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """System attributes that JSON keeps as they are (NSGA-II's generation, enqueued parameters)."""
    kept = {}
    for key, value in attrs.items():
        try:
            if json.loads(json.dumps(value)) == value:
                kept[key] = value
        except (TypeError, ValueError):
            continue
    return kept


def asked_record(trial: optuna.trial.Trial) -> dict[str, Any]:
    """What to remember of an asked trial until its result is told: its parameters and attributes."""
    frozen = trial.study.get_trials(deepcopy=False)[trial.number]
    return {"params": dict(trial.params), "system_attrs": _jsonable(frozen.system_attrs)}


def told_record(asked: Mapping[str, Any], values: Sequence[float] | None) -> dict[str, Any]:
    """An asked trial with its objective values (None: failed, no usable value)."""
    return {**asked, "values": None if values is None else [float(v) for v in values]}


def _state(record: Mapping[str, Any]) -> TrialState:
    if "values" not in record:
        return TrialState.RUNNING
    return TrialState.FAIL if record["values"] is None else TrialState.COMPLETE


def rebuild_study(records: Sequence[Mapping[str, Any]], *, space: Mapping[str, BaseDistribution],
                  directions: Sequence[str], sampler_kind: str, seed: int) -> optuna.Study:
    """An in-memory study holding the records in order (told ones with their values, records
    without values as running trials), with a freshly seeded sampler."""
    sampler = make_sampler(sampler_kind, seed=seed, n_objectives=len(directions))
    optuna_log = logging.getLogger("optuna")
    level = optuna_log.level
    optuna_log.setLevel(logging.WARNING)  # one throwaway study per batch: no "new study created" lines
    try:
        study = optuna.create_study(directions=list(directions), sampler=sampler)
    finally:
        optuna_log.setLevel(level)
    study.add_trials([
        optuna.trial.create_trial(
            state=_state(r), params=r["params"], distributions={k: space[k] for k in r["params"]},
            values=r.get("values"), system_attrs=r.get("system_attrs", {}))
        for r in records
    ])
    return study
