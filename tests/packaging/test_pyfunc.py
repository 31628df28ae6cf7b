"""A trained model as an MLflow pyfunc: it loads without pickle and predicts exactly what the
network computes, with the training precision, evaluation sampling and decision rule of its spec."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from raypath.mil.robust import build_robust_mil
from raypath.packaging.network import decision, load_backbone, predict_bag
from raypath.packaging.package import save_model
from raypath.packaging.spec import ModelSpec

DIM = 8
PROVENANCE = {"encoder": "tiny-uni", "weights_hash": "w1", "tiling_hash": "t1", "embed_dim": DIM}


def _trained(tmp_path, **spec_fields):
    torch.manual_seed(0)
    model = build_robust_mil(task="binary", kind="gated", in_dim=DIM, n_outputs=1, hidden=6, attention_dim=4,
                             dropout=0.0, weights={"infonce": 1.0, "adversarial": 1.0}, n_scanners=2).eval()
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    spec = ModelSpec(task="binary", n_outputs=1, in_dim=DIM, provenance=PROVENANCE,
                     model={"kind": "gated", "hidden": 6, "attention_dim": 4, "dropout": 0.0,
                            "projection_dim": 64}, **spec_fields)
    return model, weights, spec


def _tiles(rng, counts: dict[str, int]) -> pd.DataFrame:
    rows = [{"slide_id": slide, "features": rng.standard_normal(DIM).astype(np.float32).tolist()}
            for slide, count in counts.items() for _ in range(count)]
    return pd.DataFrame(rows)


def test_saved_model_loads_and_predicts_what_the_network_computes(tmp_path):
    model, weights, spec = _trained(tmp_path)
    directory = save_model(tmp_path / "mlmodel", weights=weights, spec=spec)
    assert not list(directory.rglob("*.pkl")), "no pickle in the model"
    loaded = mlflow.pyfunc.load_model(str(directory))
    tiles = _tiles(np.random.default_rng(1), {"a": 5, "b": 3})
    out = loaded.predict(tiles)
    assert out["slide_id"].tolist() == ["a", "b"]
    for _, row in out.iterrows():
        features = torch.tensor(np.stack(tiles.loc[tiles["slide_id"] == row["slide_id"], "features"]),
                                dtype=torch.float32)
        with torch.no_grad():
            expected = model(features[None], torch.ones(1, len(features), dtype=torch.bool))
        assert row["score"] == pytest.approx(float(torch.sigmoid(expected.prediction[0, 0])), abs=1e-6)
        np.testing.assert_allclose(row["attention"], expected.attention[0].numpy() * len(features), rtol=1e-5)
        assert row["decision"] == int(row["score"] >= 0.5)


def test_precision_and_sampling_follow_the_spec(tmp_path):
    _, weights, spec = _trained(tmp_path, feature_storage="float16", eval_max_tiles=4)
    backbone = load_backbone(spec, weights)
    features = np.random.default_rng(2).standard_normal((10, DIM)).astype(np.float32)
    scores, attention = predict_bag(backbone, spec, features)
    kept = [0, 2, 5, 7]  # evenly spaced: floor(i * 10 / 4)
    assert np.isnan(attention).sum() == 6 and np.isfinite(attention[kept]).all()
    rounded = features[kept].astype(np.float16).astype(np.float32)
    again, _ = predict_bag(backbone, spec.model_copy(update={"feature_storage": "float32"}), rounded)
    np.testing.assert_allclose(scores, again, rtol=1e-6)
    with pytest.raises(ValueError, match="expects"):
        predict_bag(backbone, spec, features[:, :3])


def test_decisions_by_task():
    binary = ModelSpec(task="binary", n_outputs=1, in_dim=1, model={}, provenance={}, threshold=0.3)
    survival = ModelSpec(task="survival", n_outputs=1, in_dim=1, model={}, provenance={}, risk_cut=1.0)
    multiclass = ModelSpec(task="multiclass", n_outputs=3, in_dim=1, model={}, provenance={})
    assert decision(binary, np.array([0.35])) == 1 and decision(survival, np.array([0.5])) == 0
    assert decision(multiclass, np.array([0.2, 0.5, 0.3])) == 1


def test_spec_names_provenance_differences():
    spec = ModelSpec(task="binary", n_outputs=1, in_dim=DIM, model={}, provenance=PROVENANCE)
    assert spec.feature_mismatch({**PROVENANCE}) == {}
    assert spec.feature_mismatch({**PROVENANCE, "weights_hash": "w2"}) == {"weights_hash": ("w1", "w2")}


def test_a_missing_model_directory_is_named(tmp_path):
    from raypath.packaging.package import download_model

    with pytest.raises(FileNotFoundError, match="nothere/model: no such model directory"):
        download_model("nothere/model", tracking_uri=None, into=tmp_path)
    directory = save_model(tmp_path / "saved", weights=_trained(tmp_path)[1], spec=_trained(tmp_path)[2])
    assert download_model(str(directory), tracking_uri=None, into=tmp_path)[0] == directory
