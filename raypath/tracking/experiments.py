"""MLflow experiments as raypath creates them: model-training experiments.

MLflow 3's UI opens an experiment without a kind on its GenAI view (traces, "Detect issues"), where
runs and their metrics are one click away; the `mlflow.experimentKind` tag set to
`custom_model_development` opens it on its training runs instead. MLflow 3.18's UI decides by a
global GenAI / Model training switch first (GenAI unless chosen), so the links raypath prints also
carry `UI_TRAINING_VIEW`, which selects the training view.
"""

from mlflow import MlflowClient

KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
UI_TRAINING_VIEW = "workflowType=machine_learning"


def model_training_experiment(client: MlflowClient, name: str, *,
                              artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created as a model-training experiment when missing (an existing
    one without a kind is tagged as one)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        return client.create_experiment(name, artifact_location=artifact_location,
                                        tags={KIND_TAG: MODEL_TRAINING})
    if KIND_TAG not in found.tags:
        client.set_experiment_tag(found.experiment_id, KIND_TAG, MODEL_TRAINING)
    return found.experiment_id
