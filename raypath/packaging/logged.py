"""A trained model logged to its run as an MLflow 3 LoggedModel: listed in the run's Models column,
with its own page, and the source a registry version links to.

The model is named `model`, so `runs:/<run id>/model` keeps resolving (MLflow looks the run's
logged models up by name). The explicit client (not the fluent `mlflow.pyfunc.log_model`) writes it
into the store the caller names: setting MLflow's process-wide tracking URI would make a later
command in the same process write into this store.
"""

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import Model

from raypath.packaging.package import MODEL_NAME, run_model_id, save_model
from raypath.packaging.spec import ModelSpec

__all__ = ["MODEL_NAME", "log_model", "run_model_id"]


def log_model(client: MlflowClient, *, run_id: str, weights: Path, spec: ModelSpec,
              adapter: Path | None = None, step: int = 0) -> str:
    """Log the pyfunc model of these weights as the run's LoggedModel; returns its model id."""
    run = client.get_run(run_id)
    model = client.create_logged_model(run.info.experiment_id, name=MODEL_NAME, source_run_id=run_id,
                                       model_type=f"raypath-{spec.kind}", params=dict(run.data.params),
                                       tags={"raypath.fm": str(spec.provenance.get("encoder"))})
    try:
        with tempfile.TemporaryDirectory() as tmp:
            described = Model(artifact_path=model.artifact_location, run_id=run_id, model_id=model.model_id,
                              model_uuid=model.model_id)
            directory = save_model(Path(tmp) / MODEL_NAME, weights=weights, spec=spec, adapter=adapter,
                                   mlflow_model=described)
            client.log_model_artifacts(model.model_id, str(directory))
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    return model.model_id

