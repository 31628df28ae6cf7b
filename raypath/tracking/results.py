"""Put comparison results into MLflow: a report run per FM, and the chosen model in the registry."""

import logging
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from raypath.packaging.package import run_model_id
from raypath.tracking.runs import TAG_FM, TAG_KIND, TAG_PHASE, TAG_SWEEP, RunLedger, stable_hash

log = logging.getLogger(__name__)
CHAMPION = "champion"


def log_report(ledger: RunLedger, *, sweep_id: str, fm: str, directory: Path) -> str:
    """One 'report' run per sweep and FM holding the report files; a rerun replaces it."""
    key = stable_hash({"sweep_id": sweep_id, "fm": fm, "phase": "report"})
    run_id = ledger.start(key=key, name=f"{fm}/report", params={},
                          tags={TAG_SWEEP: sweep_id, TAG_FM: fm, TAG_PHASE: "report", TAG_KIND: "report"})
    ledger.client.log_artifacts(run_id, str(directory), artifact_path="report")
    ledger.end(run_id, status="FINISHED")
    return run_id


def register_model(client: MlflowClient, *, name: str, run_id: str, description: str,
                   tags: Mapping[str, str], alias: str = CHAMPION) -> str:
    """Register the run's logged model (source `models:/<model id>`, so the version links to it; a
    run from before logged models: `runs:/<run_id>/model`) under `name` (once per run), tag the
    version and point `alias` at it, so `models:/<name>@<alias>` always loads the current choice."""
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
    model_id = run_model_id(client, run_id)
    source = f"models:/{model_id}" if model_id else f"runs:/{run_id}/model"
    if not existing:
        # An embedded (SQLite) registry looks `models:/<id>` up in MLflow's process-wide tracking
        # store (MLflow's own TODO), so that store is this client's for the call, then restored.
        with _use_tracking_uri(client.tracking_uri):
            existing = [client.create_model_version(name, source=source, run_id=run_id,
                                                    description=description, model_id=model_id)]
    version = existing[0].version
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))
    point_alias(client, name=name, alias=alias, version=str(version))
    log.info("registered %s version %s (alias %s) from run %s", name, version, alias, run_id)
    return str(version)


def point_alias(client: MlflowClient, *, name: str, alias: str, version: str) -> None:
    """`models:/<name>@<alias>` loads `version` from now on."""
    client.set_registered_model_alias(name, alias, str(version))
