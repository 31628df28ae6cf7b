"""MLflow logging: experiment "fm-robustness", one parent run per FM, one child per correction."""

import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def default_uri(out: Path) -> str:
    """A local SQLite store inside the report folder, so a run needs no server."""
    return f"sqlite:///{(out / 'mlflow.db').resolve()}"


def _metrics(rows: pd.DataFrame) -> dict[str, float]:
    """`<level>.<metric>` for every finite numeric cell of one correction's rows."""
    records = rows.select_dtypes("number").to_dict("records")
    return {f"{level}.{name}": float(value) for level, record in zip(rows["level"], records, strict=True)
            for name, value in record.items() if pd.notna(value)}


def _use_experiment(mlflow, name: str, *, artifact_root: Path) -> None:
    """Create the experiment if needed. With a SQLite store MLflow would put artifacts in
    ./mlruns of whatever directory the process runs in; keep them next to the report instead."""
    if mlflow.get_experiment_by_name(name) is None:
        local = mlflow.get_tracking_uri().startswith("sqlite:")
        mlflow.create_experiment(name, artifact_location=artifact_root.resolve().as_uri() if local else None)
    mlflow.set_experiment(name)


def log_to_mlflow(table: pd.DataFrame, *, artifacts: list[Path], uri: str, experiment: str,
                  params: dict[str, str]) -> None:
    """Nested runs so FMs compare side by side and each correction keeps the same metric names."""
    import mlflow  # imported here: loading MLflow costs seconds and tracking is optional

    mlflow.set_tracking_uri(uri)
    _use_experiment(mlflow, experiment, artifact_root=artifacts[0].parent / "mlartifacts")
    for fm, fm_rows in table.groupby("fm", sort=True):
        with mlflow.start_run(run_name=str(fm)):
            mlflow.set_tags({"fm": str(fm), "kind": "fm-robustness"})
            mlflow.log_params(params)
            for path in artifacts:
                mlflow.log_artifact(str(path))
            for correction, rows in fm_rows.groupby("correction", sort=False):
                with mlflow.start_run(run_name=str(rows["row"].iloc[0]), nested=True):
                    mlflow.set_tags({"fm": str(fm), "correction": str(correction)})
                    mlflow.log_metrics(_metrics(rows))
    log.info("logged %d FMs to MLflow experiment %r at %s", table["fm"].nunique(), experiment, uri)
