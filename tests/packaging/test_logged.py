"""Models logged as MLflow 3 LoggedModels: the run's Models column lists the model, the registry
version links to it, `runs:/<run>/model` and `models:/<name>@<alias>` still load it, and its
requirements resolve without raypath (the model carries raypath's code)."""

import mlflow
import numpy as np
from mlflow import MlflowClient

from raypath.packaging.logged import log_model
from raypath.packaging.package import download_model, run_model_id
from raypath.tracking.results import register_model
from tests.packaging.test_pyfunc import _tiles, _trained


def test_a_logged_model_belongs_to_its_run_and_the_registered_version_links_to_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("raypath/s/tiny-uni", artifact_location=(tmp_path / "a").as_uri())
    run_id = client.create_run(experiment, run_name="robust infonce=1 seed 0").info.run_id
    _, weights, spec = _trained(tmp_path)
    model_id = log_model(client, run_id=run_id, weights=weights, spec=spec)

    (model,) = client.search_logged_models(experiment_ids=[experiment])
    assert (model.model_id, model.source_run_id, model.name, model.status.to_proto()) == (
        model_id, run_id, "model", 2)  # READY
    assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [model_id]
    assert run_model_id(client, run_id) == model_id
    version = register_model(client, name="raypath-s-tiny-uni", run_id=run_id, description="d", tags={})
    registered = client.get_model_version("raypath-s-tiny-uni", version)
    assert registered.source == f"models:/{model_id}" and registered.run_id == run_id
    assert mlflow.get_tracking_uri() != uri  # the process-wide store is left as it was

    tiles = _tiles(np.random.default_rng(1), {"a": 4, "b": 2})
    scores = []
    for n, source in enumerate((f"runs:/{run_id}/model", "models:/raypath-s-tiny-uni@champion")):
        local, read = download_model(source, tracking_uri=uri, into=tmp_path / f"d{n}")
        assert read == spec and (local / "code" / "raypath" / "packaging" / "pyfunc.py").is_file()
        requirements = (local / "requirements.txt").read_text().split()
        assert not [r for r in requirements if r.startswith("raypath")]
        assert {"torch", "safetensors", "pandas", "numpy"} <= {r.split("==")[0] for r in requirements}
        scores.append(mlflow.pyfunc.load_model(str(local)).predict(tiles)["score"].to_numpy())
    np.testing.assert_array_equal(scores[0], scores[1])
