"""The pyfunc entry MLflow runs when loading a raypath model ("models from code": no pickle)."""

import mlflow

from raypath.packaging.pyfunc import MILPyfunc

mlflow.models.set_model(MILPyfunc())
