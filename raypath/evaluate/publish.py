"""Put comparison results into MLflow: a report run per FM, and the best model in the registry."""

import logging
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from raypath.sweep.tracking import TAG_FM, TAG_PHASE, TAG_SWEEP, RunLedger, stable_hash

log = logging.getLogger(__name__)


def log_report(ledger: RunLedger, *, sweep_id: str, fm: str, directory: Path) -> str:
    """One 'report' run per sweep and FM holding the report files; a rerun replaces it."""
    key = stable_hash({"sweep_id": sweep_id, "fm": fm, "phase": "report"})
    existing = ledger.find(key)
    if existing is not None:
        ledger.client.delete_run(existing.info.run_id)
    run_id = ledger.start(
        key=key, name=f"report-{fm}", params={}, tags={TAG_SWEEP: sweep_id, TAG_FM: fm, TAG_PHASE: "report"}
    )
    assert run_id is not None  # the previous report run was just deleted
    ledger.client.log_artifacts(run_id, str(directory), artifact_path="report")
    ledger.end(run_id, status="FINISHED")
    return run_id


def register_best(client: MlflowClient, *, name: str, run_id: str, description: str) -> str:
    """Register `runs:/<run_id>/model` under `name`; the same run is never registered twice."""
    try:
        client.create_registered_model(name, description=description)
    except MlflowException as exc:
        if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
            raise
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.run_id == run_id:
            return str(version.version)
    version = client.create_model_version(
        name, source=f"runs:/{run_id}/model", run_id=run_id, description=description
    )
    log.info("registered %s version %s from run %s", name, version.version, run_id)
    return str(version.version)
