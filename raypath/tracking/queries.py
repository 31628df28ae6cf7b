"""Reading runs back from MLflow: a sweep's experiments, its phase runs, its trial runs as a table,
one run's tags, params and artifacts, a model's registered versions.

The sweep, `compare`, reruns and fine-tuning read MLflow only through these, so what a run records
(`raypath.tracking.runs`) and how it is read back live in one package.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType
from mlflow.exceptions import MlflowException

from raypath.tracking.runs import (
    TAG_BASELINE,
    TAG_CAVEAT,
    TAG_CONFIG,
    TAG_KEY,
    TAG_KIND,
    TAG_PARAMS,
    TAG_PHASE,
    TAG_SEED,
    TAG_UNDEFINED,
)

TrackingClient = MlflowClient  # what the stages hold: one client for tracking and the registry


def tracking_client(uri: str) -> TrackingClient:
    """A client on one store for runs and registered models alike (the embedded SQLite holds both)."""
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def sweep_experiments(client: TrackingClient, *, sweep_id: str) -> dict[str, str]:
    """{fm: experiment_id} of a sweep, from the experiment names the sweep created."""
    prefix = f"raypath/{sweep_id}/"
    return {e.name.removeprefix(prefix): e.experiment_id
            for e in client.search_experiments() if e.name.startswith(prefix)}


def experiment_tags(client: TrackingClient, experiment_id: str) -> dict[str, str]:
    return dict(client.get_experiment(experiment_id).tags)


def experiment_name_of(client: TrackingClient, experiment_id: str) -> str:
    return client.get_experiment(experiment_id).name


def phase_runs(client: TrackingClient, experiment_id: str) -> dict[str, Run]:
    """The parent run of each phase, by phase name."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'phase'",
                              run_view_type=ViewType.ACTIVE_ONLY, max_results=100)
    return {r.data.tags.get(TAG_PHASE): r for r in runs}


def runs_frame(client: TrackingClient, experiment_id: str, *, phase: str | None = None) -> pd.DataFrame:
    """One row per active trial run: run_id, status, key, config_key, baseline, seed, params, metrics..."""
    query = f"tags.`{TAG_KIND}` = 'trial'" + (f" and tags.`{TAG_PHASE}` = '{phase}'" if phase else "")
    runs = client.search_runs([experiment_id], filter_string=query, run_view_type=ViewType.ACTIVE_ONLY,
                              max_results=50000)
    rows = [_trial_row(run) for run in runs]
    frame = pd.DataFrame(rows)
    return frame.sort_values(["key", "run_id"], kind="stable").reset_index(drop=True) if rows else frame


def _trial_row(run: Run) -> dict[str, Any]:
    tags = run.data.tags
    return {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "key": tags.get(TAG_KEY),
        "config_key": tags.get(TAG_CONFIG),
        "phase": tags.get(TAG_PHASE),
        "baseline": tags.get(TAG_BASELINE) == "true",
        "seed": int(tags.get(TAG_SEED, -1)),
        "fold": int(tags.get("raypath.fold", -1)),
        "params": json.loads(tags.get(TAG_PARAMS, "{}")),
        "undefined": _prefixed(tags, TAG_UNDEFINED),
        "caveats": _prefixed(tags, TAG_CAVEAT),
        **run.data.metrics,
    }


def _prefixed(tags: dict[str, str], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v for k, v in tags.items() if k.startswith(prefix)}


def run_tags(client: TrackingClient, run_id: str) -> dict[str, str]:
    return dict(client.get_run(run_id).data.tags)


def run_params(client: TrackingClient, run_id: str) -> dict[str, str]:
    return dict(client.get_run(run_id).data.params)


def annotate_run(client: TrackingClient, run_id: str, *, tags: dict[str, str], files: list[Path]) -> None:
    """Tags and files added to a run another process opened (its ledger is not at hand)."""
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    for path in files:
        client.log_artifact(run_id, str(path))


def download_artifacts(client: TrackingClient, run_id: str, path: str, *, into: Path) -> Path:
    """A run's artifact folder (or file) copied under `into`."""
    return Path(client.download_artifacts(run_id, path, str(into)))


def registered_versions(client: TrackingClient, name: str) -> list[Any]:
    """The versions of a registered model; none when the model was never registered."""
    try:
        return list(client.search_model_versions(f"name = '{name}'"))
    except MlflowException:
        return []
