"""finetune -> registered pyfunc -> `raypath predict` on new slides: the scores the in-memory model
gives, from the slides (tiles read and embedded with base FM + adapter) and from tile images."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from finetunekit import finetune_config, synthetic_cohort

from raypath.cli import main
from raypath.finetune.data import open_data
from raypath.finetune.evaluate import predict_slides, restore
from raypath.finetune.publish import tracking_uri
from raypath.finetune.run import absolute, finish, prepare_run, train
from raypath.mil.losses import task_scores
from raypath.packaging.package import download_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_predict_on_new_slides_matches_the_in_memory_model(local_ray, ft_cohort, tmp_path):
    config = absolute(finetune_config(ft_cohort, tmp_path / "out", epochs=1, name="trip"))
    loop_config = prepare_run(config)
    result = train(config, loop_config)
    summary = finish(config, loop_config, result)
    assert summary.model_uri == "models:/raypath-finetune-trip/1"
    uri = tracking_uri(config)
    # the same command again on the finished run (nothing left to train): the registered version is
    # the one that already holds these weights, no second run or version
    again = finish(config, loop_config, result)
    assert again.model_uri == summary.model_uri and again.run_id == summary.run_id
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    assert len(client.search_model_versions("name = 'raypath-finetune-trip'")) == 1

    new = synthetic_cohort(tmp_path / "new", seed=11, specimens=2)
    process_wide = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    code = main(["predict", "--model", "models:/raypath-finetune-trip@champion", "--tracking-uri", uri,
                 "--manifest", str(new / "manifest.csv"), "--out", str(tmp_path / "pred"),
                 "--set", "heatmap_top=1", "--set", "extract.batch_size=16"])
    assert code == 0
    # predict reads the store it is given and leaves the process's MLflow settings alone, so a later
    # compare or register in this process cannot write into this store
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == process_wide
    predicted = pd.read_csv(tmp_path / "pred" / "predictions.csv").set_index("slide_id")

    # The in-memory model: the checkpoint's best weights on a fresh base FM, the new slides planned
    # and embedded.
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / "state.pt", weights_only=True)
    new_config = config.model_copy(update={"manifest": new / "manifest.csv", "labels": new / "labels.csv",
                                           "registration": None, "losses": config.losses.model_copy(
                                               update={"tile_consistency": 0.0}), "fm_tile_consistency": 0.0})
    data = open_data(new_config, Path(prepare_run(new_config)["plan"]))
    model = restore(config, data, state["best"])
    slides = np.arange(data.prepared.bagset.n_slides)
    expected = task_scores("binary", predict_slides(model, data, slides, eval_tiles=None)[0]).numpy()
    ids = data.prepared.bagset.slides["slide_id"].tolist()
    assert sorted(ids) == sorted(predicted.index) and len(ids) == 4
    np.testing.assert_allclose(predicted.loc[ids, "score"].to_numpy(), expected, rtol=0, atol=1e-5)
    assert predicted["tiles"].to_numpy().min() > 10
    stores = [p.name for p in (tmp_path / "pred" / "features").iterdir() if p.is_dir() and p.name[0] != "_"]
    assert stores == [f"tiny-uni+lora-{_spec(uri).adapter.adapter_hash[:12]}"]
    assert list((tmp_path / "pred" / "heatmaps").glob("*.png"))

    # The registered pyfunc takes tile images of one slide and gives the same score.
    local, _ = download_model("models:/raypath-finetune-trip/1", tracking_uri=uri, into=tmp_path / "model")
    loaded = mlflow.pyfunc.load_model(str(local))
    images = data.source.tiles(0, np.arange(int(np.diff(data.prepared.bagset.offsets)[0])))
    frame = pd.DataFrame({"slide_id": ids[0], "image": [tile.tobytes() for tile in images]})
    out = loaded.predict(frame)
    assert out["score"].iloc[0] == pytest.approx(float(expected[0]), abs=1e-5)


def _spec(uri: str):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return download_model("models:/raypath-finetune-trip/1", tracking_uri=uri, into=Path(tmp))[1]
