"""The Tune callback that mirrors packed trials into MLflow from the driver process.

A Tune trial trains a *pack* of configurations (see `raypath.train.engine`); each member becomes its
own MLflow run, nested under one parent run per FM and phase (`<fm>/<phase>`), named by what it
is (`robust infonce=0.3 seed 1 (search 0007)`, see `run_label`), with
every hyperparameter it trained with as a param (the flattened train config, FM, seed, baseline
flag, pack), the feature store as a dataset input, the code and package versions as tags, and the
recipe to train it again (`raypath.sweep.rerun`). Search trials log validation (and training)
metrics only: test metrics are logged where nothing is selected on them (replicates). Trials report
`{"epoch": e, "members": [{"key": ..., "metrics": {...}}, ...]}`; replicate checkpoints hold one
folder per member key with its weights, spec and predictions, logged as the run's MLflow
LoggedModel `model` (a pyfunc; `runs:/<run id>/model`) and a predictions table (`predictions/`).
The driver closes each phase's parent run.
"""

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray.tune import Callback

from raypath.packaging.logged import log_model
from raypath.packaging.spec import ModelSpec
from raypath.sweep.packing import member_settings
from raypath.sweep.rerun import TAG_RERUN, member_record
from raypath.sweep.space import apply_params
from raypath.tracking.inputs import FeatureDataset
from raypath.tracking.runs import (
    TAG_BASELINE,
    TAG_CAVEAT,
    TAG_CONFIG,
    TAG_FM,
    TAG_KIND,
    TAG_PARAMS,
    TAG_PHASE,
    TAG_SEED,
    TAG_SWEEP,
    TAG_UNDEFINED,
    RunLedger,
    flatten,
    phase_key,
)
from raypath.tracking.train_run import run_label
from raypath.train.config import TrainConfig

log = logging.getLogger(__name__)


class MlflowSweepCallback(Callback):
    """Open, fill and close one MLflow run per pack member under the phase's parent run."""

    def __init__(self, *, ledger: RunLedger, sweep_id: str, fm: str, phase: str, train: Mapping[str, Any],
                 dataset: FeatureDataset, tags: Mapping[str, str], data: Mapping[str, Any]) -> None:
        self.ledger, self.sweep_id, self.fm, self.phase = ledger, sweep_id, fm, phase
        self.train, self.dataset, self.tags, self.data = dict(train), dataset, dict(tags), dict(data)
        self._parent: str | None = None
        self._runs: dict[str, dict[str, str]] = {}
        self._final: set[str] = set()
        self._queued: list[tuple[dict[str, str], int, list[dict[str, Any]]]] = []  # results not yet written

    def setup(self, **info: Any) -> None:
        """No trial of this sweep is alive before the driver starts: anything RUNNING was killed."""
        self.ledger.close_stale()
        key = phase_key(sweep_id=self.sweep_id, fm=self.fm, phase=self.phase)
        self._parent = self.ledger.open_parent(key=key, name=f"{self.fm}/{self.phase}", tags=self._common())
        self.ledger.log_params(self._parent, {**flatten(self.train), "fm": self.fm, "phase": self.phase})
        self.ledger.log_dataset(self._parent, self.dataset)

    def _common(self) -> dict[str, str]:
        return {TAG_SWEEP: self.sweep_id, TAG_FM: self.fm, TAG_PHASE: self.phase, **self.tags}

    def _config(self, member: dict[str, Any]) -> TrainConfig:
        return apply_params(TrainConfig.model_validate(self.train), member_settings(member))

    def _params(self, member: dict[str, Any], trial: Any) -> dict[str, str]:
        """Every trained hyperparameter: the member's full train config plus what identifies it."""
        return {**flatten(self._config(member).model_dump(mode="json")), "fm": self.fm,
                "seed": str(member["seed"]), "baseline": str(bool(member["baseline"])).lower(),
                "phase": self.phase, "pack": trial.trial_id, "sweep_id": self.sweep_id}

    def _name(self, member: dict[str, Any]) -> str:
        """What the run is (`raypath train`'s label: baseline or robust, loss weights, seed, fold) and
        its position in the phase (`robust infonce=0.3 seed 1 (search 0007)`)."""
        fold = member.get("overrides", {}).get("split.fold")
        label = run_label(self._config(member), seed=int(member["seed"]),
                          fold=None if fold is None else int(fold))
        return f"{label} ({self.phase} {member['index']:04d})"

    def _open(self, trial: Any) -> dict[str, str]:
        if trial.trial_id not in self._runs:
            runs = {}
            pack = trial.config["pack"]
            for position, member in enumerate(pack):
                tags = {**self._common(), TAG_KIND: "trial", TAG_CONFIG: member["config_key"],
                        TAG_BASELINE: str(bool(member["baseline"])).lower(), TAG_SEED: str(member["seed"]),
                        TAG_PARAMS: json.dumps(member["params"], sort_keys=True),
                        TAG_RERUN: member_record(train=self.train, pack=pack, position=position,
                                                 data=self.data),
                        "raypath.tune_trial": trial.trial_id}
                if "split.fold" in member.get("overrides", {}):
                    tags["raypath.fold"] = str(member["overrides"]["split.fold"])
                runs[member["key"]] = self.ledger.start(
                    key=member["key"], name=self._name(member),
                    params=self._params(member, trial), tags=tags, parent=self._parent)
                self.ledger.log_dataset(runs[member["key"]], self.dataset)
            self._runs[trial.trial_id] = runs
        return self._runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._runs.pop(trial.trial_id, None)
        self._final.discard(trial.trial_id)
        self._open(trial)

    def _loggable(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Search trials are selected on validation data: their test metrics are not logged."""
        if self.phase == "search":
            return {k: v for k, v in metrics.items() if not k.startswith("test/")}
        return dict(metrics)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Queue the members' metrics; they are written at the end of Tune's step (`on_step_end`).

        Tune holds the trial until its callbacks have seen the result, so writing here (8 runs, one
        SQLite transaction each) made every epoch of every trial wait for the database."""
        runs = self._open(trial)
        if result.get("final"):
            self._final.add(trial.trial_id)
        self._queued.append((runs, int(result.get("epoch", 0)), result.get("members", [])))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._flush()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._flush()

    def _flush(self) -> None:
        """Write the queued results in the order they arrived."""
        queued, self._queued = self._queued, []
        for runs, epoch, members in queued:
            for member in members:
                run_id = runs.get(member["key"])
                if run_id is not None:
                    self._write(run_id, member, epoch=epoch)

    def _write(self, run_id: str, member: Mapping[str, Any], *, epoch: int) -> None:
        self.ledger.log_metrics(run_id, self._loggable(member["metrics"]), step=epoch)
        undefined = self._loggable(member.get("undefined", {}))
        if undefined:  # why a metric is missing, for the report to say
            self.ledger.set_tags(run_id, {f"{TAG_UNDEFINED}{k}": v for k, v in undefined.items()})
        caveats = self._loggable(member.get("caveats", {}))
        if caveats:  # what a value stands on (a subset of scanners, few specimens)
            self.ledger.set_tags(run_id, {f"{TAG_CAVEAT}{k}": v for k, v in caveats.items()})

    def _close(self, trial: Any, status: str) -> None:
        self._flush()  # a run ends after everything it reported
        completed = trial.trial_id in self._final
        for run_id in self._runs.pop(trial.trial_id, {}).values():
            tags = {"raypath.completed": str(completed).lower()}
            if status == "FINISHED" and not completed:
                tags["raypath.stopped_by"] = "asha"
            self.ledger.set_tags(run_id, tags)
            self.ledger.end(run_id, status=status)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._close(trial, "FAILED")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A retried trial's runs end FAILED; the retry replaces them under the same keys."""
        self._close(trial, "FAILED")

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        """Each member's weights as the run's MLflow LoggedModel (a pyfunc), and its per-slide predictions."""
        self._flush()
        runs = self._open(trial)
        with checkpoint.as_directory() as directory:
            for key, run_id in runs.items():
                member_dir = Path(directory) / key
                if not (member_dir / "model.json").exists():
                    continue
                log_model(self.ledger.client, run_id=run_id, weights=member_dir / "model.safetensors",
                          spec=ModelSpec.read(member_dir / "model.json"))
                self.ledger.log_artifact(run_id, member_dir / "predictions.parquet", folder="predictions")

    def __getstate__(self) -> dict[str, Any]:
        """Open-run bookkeeping is per driver process; a restored driver rebuilds it."""
        return {**self.__dict__, "_runs": {}, "_final": set(), "_parent": None, "_queued": []}
