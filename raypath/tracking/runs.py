"""MLflow bookkeeping for sweeps: one experiment per sweep and FM, a parent run per phase, and one
nested child run per trained configuration.

Only the Tune driver talks to MLflow (through `MlflowSweepCallback`), so an embedded SQLite store has
a single writer and never reports "database is locked"; on a cluster the same code points at a
`mlflow server` URI. Every run carries a stable key tag (hash of sweep id, FM, configuration, seed
and position): a trial Tune starts again (a retry, or after a restore) replaces the run of its key,
so MLflow holds exactly one run per key, the one whose results Tune and Optuna used; runs left
RUNNING by a killed driver are closed as KILLED. Only finite metrics are logged.
"""

import hashlib
import importlib.metadata
import json
import logging
import math
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag, ViewType

from raypath.tracking.experiments import model_training_experiment
from raypath.tracking.store import ready_store

log = logging.getLogger(__name__)

TAG_SWEEP, TAG_FM, TAG_KEY, TAG_CONFIG = (
    "raypath.sweep_id",
    "raypath.fm",
    "raypath.trial_key",
    "raypath.config_key",
)
TAG_BASELINE, TAG_PHASE, TAG_SEED = "raypath.baseline", "raypath.phase", "raypath.seed"
TAG_PARAMS = "raypath.params"  # the searched values as JSON, typed (MLflow params are strings)
TAG_UNDEFINED = "raypath.undefined."  # + metric name: why that metric is NaN (not logged)
TAG_CAVEAT = "raypath.caveat."  # + metric name: what a logged value stands on (a subset, few samples)
TAG_KIND = "raypath.kind"  # "trial" (a trained configuration), "phase" (its parent) or "report"
TAG_PARENT = "mlflow.parentRunId"
TAG_PACKAGES = "raypath.packages"  # Python and package versions (JSON)
PACKAGES = ("torch", "numpy", "pandas", "scipy", "scikit-learn", "pyarrow", "ray", "optuna", "mlflow")
_MAX_PARAM_CHARS = 6000
_BATCH = 100  # MLflow's per-request limit on params


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages the numbers depend on."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def flatten(data: Mapping[str, Any], *, prefix: str = "") -> dict[str, str]:
    """Nested config as `section.field` -> text, the form MLflow's params table and plots take."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list | tuple) else str(value)
    return flat


def finite(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Only the metrics that exist: NaN or infinite values (undefined on this data) are left out."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


def stable_hash(payload: Mapping[str, Any], *, length: int = 16) -> str:
    """Order-independent hash of a JSON-able mapping; floats are written with repr precision."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def config_key(*, sweep_id: str, fm: str, params: Mapping[str, Any]) -> str:
    """Key of a configuration regardless of seed: groups seed replicates for confidence intervals."""
    return stable_hash({"sweep_id": sweep_id, "fm": fm, "params": dict(params)})


def trial_key(*, sweep_id: str, fm: str, params: Mapping[str, Any], seed: int, phase: str, index: int) -> str:
    """Key of one trained configuration: the same trial on a resumed sweep gets the same key.

    `index` (the member's position in its phase) keeps two identical suggestions apart.
    """
    return stable_hash(
        {
            "sweep_id": sweep_id,
            "fm": fm,
            "params": dict(params),
            "seed": int(seed),
            "phase": phase,
            "index": int(index),
        }
    )


def phase_key(*, sweep_id: str, fm: str, phase: str) -> str:
    """Key of a phase's parent run (one per sweep, FM and phase)."""
    return stable_hash({"sweep_id": sweep_id, "fm": fm, "phase": phase})


def experiment_name(*, sweep_id: str, fm: str) -> str:
    """One MLflow experiment per sweep and FM, so FMs are compared side by side, never mixed."""
    return f"raypath/{sweep_id}/{fm}"


class RunLedger:
    """Runs of one experiment keyed by trial key; the only object that creates or ends runs."""

    def __init__(self, *, tracking_uri: str, experiment: str, artifact_location: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._stamps: dict[str, int] = {}  # last metric timestamp per run

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            uri = ready_store(self.tracking_uri)  # an embedded store is created or upgraded whole
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        """Create the experiment on first use (workers never do: they do not talk to MLflow)."""
        if self._experiment_id is None:
            self._experiment_id = model_training_experiment(self.client, self.experiment,
                                                            artifact_location=self.artifact_location)
        return self._experiment_id

    def tag_experiment(self, tags: Mapping[str, Any]) -> None:
        """Experiment-level facts later stages need (feature location, train config, task)."""
        for key, value in tags.items():
            self.client.set_experiment_tag(self.experiment_id, key, str(value))

    def find(self, key: str) -> Any | None:
        """The active run carrying this key, if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_KEY}` = '{key}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=2,
        )
        return runs[0] if runs else None

    def open_parent(self, *, key: str, name: str, tags: Mapping[str, str]) -> str:
        """The parent run of a phase: reopened (RUNNING again) when a restored sweep continues it."""
        existing = self.find(key)
        if existing is not None:
            self.client.update_run(existing.info.run_id, status="RUNNING")
            return existing.info.run_id
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={**tags, TAG_KEY: key, TAG_KIND: "phase"})
        return run.info.run_id

    def start(self, *, key: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str],
              parent: str | None = None) -> str:
        """A fresh run for `key`, replacing any earlier one (a retried or restarted trial): the run
        MLflow keeps is always the attempt whose results Tune and Optuna received."""
        existing = self.find(key)
        attempt = 1
        if existing is not None:
            attempt = int(existing.data.tags.get("raypath.attempt", "1")) + 1
            self.client.delete_run(existing.info.run_id)
        extra = {TAG_PARENT: parent} if parent else {}
        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={**tags, **extra, TAG_KEY: key, "raypath.attempt": str(attempt)})
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        items = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
        for start in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[start:start + _BATCH])

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int) -> None:
        """One batched write per run and epoch (SQLite-friendly: one transaction); finite values only.

        Timestamps rise strictly per run: the final evaluation shares the last epoch's step, and
        MLflow's latest value is the one with the highest (step, timestamp), so two writes in one
        millisecond must not leave the choice to the values.
        """
        stamp = max(int(time.time() * 1000), self._stamps.get(run_id, 0) + 1)
        self._stamps[run_id] = stamp
        batch = [Metric(k, v, stamp, step) for k, v in finite(metrics).items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_dataset(self, run_id: str, dataset: Dataset, *, context: str = "training") -> None:
        """The feature store the run trained on, as an MLflow dataset input."""
        tags = [InputTag("mlflow.data.context", context)]
        self.client.log_inputs(run_id, [DatasetInput(dataset, tags=tags)])

    def log_artifact(self, run_id: str, path: Path, *, folder: str | None = None) -> None:
        """One file among the run's artifacts (under `folder`)."""
        self.client.log_artifact(run_id, str(path), artifact_path=folder)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end(self, run_id: str, *, status: str) -> None:
        """Close a run as FINISHED, FAILED or KILLED."""
        RunStatus.from_string(status)
        self.client.set_terminated(run_id, status=status)

    def close_phase(self, key: str, *, tags: Mapping[str, str], complete: bool,
                    metrics: Mapping[str, float] | None = None) -> None:
        """End a phase's parent run: FINISHED when complete, else KILLED; `tags` say how far it got,
        `metrics` sum the phase up (MLflow charts a parent from these)."""
        run = self.find(key)
        if run is not None:
            self.set_tags(run.info.run_id, tags)
            self.log_metrics(run.info.run_id, metrics or {}, step=0)
            self.end(run.info.run_id, status="FINISHED" if complete else "KILLED")

    def delete_phase(self, phase: str) -> int:
        """Delete every run of a phase (its parent and trials): results that must not be used."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{TAG_PHASE}` = '{phase}'",
                                       run_view_type=ViewType.ACTIVE_ONLY, max_results=50000)
        for run in runs:
            self.client.delete_run(run.info.run_id)
        return len(runs)

    def close_stale(self) -> int:
        """Mark RUNNING runs as KILLED: called by the driver before (re)starting, when none can be live."""
        stale = self.client.search_runs(
            [self.experiment_id],
            filter_string="attributes.status = 'RUNNING'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=50000,
        )
        for run in stale:
            self.client.set_terminated(run.info.run_id, status="KILLED")
        if stale:
            log.warning("%s: marked %d runs left RUNNING by an interrupted sweep as KILLED", self.experiment,
                        len(stale))
        return len(stale)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles callbacks into the experiment state; the client is rebuilt on restore."""
        return {**self.__dict__, "_client": None, "_experiment_id": None, "_stamps": {}}
