"""MLflow logging: experiment "fm-robustness", one parent run per FM, one child per correction."""

import logging
import time
from pathlib import Path

import pandas as pd

from raypath.config import default_tracking_uri
from raypath.tracking.experiments import model_training_experiment
from raypath.tracking.store import ready_store

log = logging.getLogger(__name__)


def default_uri(out: Path) -> str:
    """The default store of every command (mlflow.db in its --out), so a run needs no server."""
    return default_tracking_uri(out)


def _metrics(rows: pd.DataFrame) -> dict[str, float]:
    """`<level>.<metric>` for every finite numeric cell of one correction's rows."""
    records = rows.select_dtypes("number").to_dict("records")
    return {f"{level}.{name}": float(value) for level, record in zip(rows["level"], records, strict=True)
            for name, value in record.items() if pd.notna(value)}


def _experiment_id(client, name: str, *, artifact_root: Path) -> str:
    """Create the experiment if needed. With a SQLite store MLflow would put artifacts in
    ./mlruns of whatever directory the process runs in; keep them next to the report instead."""
    location = artifact_root.resolve().as_uri() if client.tracking_uri.startswith("sqlite:") else None
    return model_training_experiment(client, name, artifact_location=location)


def log_to_mlflow(table: pd.DataFrame, *, artifacts: list[Path], uri: str, experiment: str,
                  params: dict[str, str]) -> None:
    """Nested runs so FMs compare side by side and each correction keeps the same metric names.
    An explicit client: the process-wide tracking URI stays as it was (a later log in the same
    process must not land in this store)."""
    from mlflow import MlflowClient  # imported here: loading MLflow costs seconds and tracking is optional
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=ready_store(uri))
    experiment_id = _experiment_id(client, experiment, artifact_root=artifacts[0].parent / "mlartifacts")
    for fm, fm_rows in table.groupby("fm", sort=True):
        parent = client.create_run(experiment_id, run_name=str(fm),
                                   tags={"fm": str(fm), "kind": "fm-robustness"})
        parent_id = parent.info.run_id
        client.log_batch(parent_id, params=[Param(k, str(v)) for k, v in params.items()])
        for path in artifacts:
            client.log_artifact(parent_id, str(path))
        for correction, rows in fm_rows.groupby("correction", sort=False):
            child = client.create_run(experiment_id, run_name=str(rows["row"].iloc[0]),
                                      tags={"fm": str(fm), "correction": str(correction),
                                            "mlflow.parentRunId": parent_id})
            now = int(time.time() * 1000)
            client.log_batch(child.info.run_id,
                             metrics=[Metric(k, v, now, 0) for k, v in _metrics(rows).items()])
            client.set_terminated(child.info.run_id)
        client.set_terminated(parent_id)
    log.info("logged %d FMs to MLflow experiment %r at %s", table["fm"].nunique(), experiment, uri)
