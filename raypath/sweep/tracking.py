"""MLflow bookkeeping for sweeps: one experiment per sweep and FM, one run per trained configuration.

Only the Tune driver talks to MLflow (through `MlflowSweepCallback`), so an embedded SQLite store has
a single writer and never reports "database is locked"; on a cluster the same code points at a
`mlflow server` URI. Every run carries a stable `trial_key` tag (hash of sweep id, FM, configuration
and seed): before creating a run the ledger looks the key up, so a resumed sweep reuses or replaces
runs instead of duplicating them, and runs left RUNNING by a killed driver are closed as KILLED.
"""

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType

log = logging.getLogger(__name__)

TAG_SWEEP, TAG_FM, TAG_KEY, TAG_CONFIG = (
    "raypath.sweep_id",
    "raypath.fm",
    "raypath.trial_key",
    "raypath.config_key",
)
TAG_BASELINE, TAG_PHASE, TAG_SEED = "raypath.baseline", "raypath.phase", "raypath.seed"
TAG_PARAMS = "raypath.params"  # the searched values as JSON, typed (MLflow params are strings)
_MAX_PARAM_CHARS = 6000


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

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        """Create the experiment on first use (workers never do: they do not talk to MLflow)."""
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)
            )
        return self._experiment_id

    def tag_experiment(self, tags: Mapping[str, Any]) -> None:
        """Experiment-level facts later stages need (feature location, train config, task)."""
        for key, value in tags.items():
            self.client.set_experiment_tag(self.experiment_id, key, str(value))

    def find(self, key: str) -> Any | None:
        """The active run carrying this trial key, if any."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{TAG_KEY}` = '{key}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=2,
        )
        return runs[0] if runs else None

    def start(self, *, key: str, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str | None:
        """Open the run of `key`; None when it already finished (a resumed sweep must not redo it).

        A run of the same key that did not finish (killed driver, retried trial) is deleted and
        replaced, so its partial metric history never mixes with the new attempt's.
        """
        existing = self.find(key)
        if existing is not None and existing.info.status == "FINISHED":
            return None
        attempt = 1
        if existing is not None:
            attempt = int(existing.data.tags.get("raypath.attempt", "1")) + 1
            self.client.delete_run(existing.info.run_id)
        run = self.client.create_run(
            self.experiment_id, run_name=name, tags={**tags, TAG_KEY: key, "raypath.attempt": str(attempt)}
        )
        batch = [Param(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in sorted(params.items())]
        self.client.log_batch(run.info.run_id, params=batch)
        return run.info.run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int) -> None:
        """One batched write per run and epoch (SQLite-friendly: one transaction)."""
        stamp = int(time.time() * 1000)
        batch = [Metric(k, float(v), stamp, step) for k, v in metrics.items() if v is not None]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def end(self, run_id: str, *, status: str) -> None:
        """Close a run as FINISHED, FAILED or KILLED."""
        RunStatus.from_string(status)
        self.client.set_terminated(run_id, status=status)

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
            log.warning(
                "%s: marked %d runs left RUNNING by an interrupted sweep as KILLED",
                self.experiment,
                len(stale),
            )
        return len(stale)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles callbacks into the experiment state; the client is rebuilt on restore."""
        return {**self.__dict__, "_client": None, "_experiment_id": None}
