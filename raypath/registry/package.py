"""Write a trained model as an MLflow pyfunc model directory, and read one back from any model URI."""

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

import raypath
from raypath.registry import model_code
from raypath.registry.adapted import embed_frame, load_encoder
from raypath.registry.network import load_backbone
from raypath.registry.pyfunc import predict_frame
from raypath.registry.spec import ModelSpec


def input_example(spec: ModelSpec, *, tiles: int = 3) -> pd.DataFrame:
    """Two slides of a few random tiles (features, or tile images for a finetuned model): shows the
    input's shape in the MLmodel."""
    rng = np.random.default_rng(0)
    if spec.kind == "finetuned":
        side = int(spec.provenance["tiling"]["tile_px"])
        return pd.DataFrame({"slide_id": ["slide-a"] * tiles + ["slide-b"] * tiles,
                             "image": [rng.integers(0, 256, side * side * 3, dtype=np.uint8).tobytes()
                                       for _ in range(2 * tiles)]})
    return pd.DataFrame({"slide_id": ["slide-a"] * tiles + ["slide-b"] * tiles,
                         "features": [rng.standard_normal(spec.in_dim).astype(np.float32).tolist()
                                      for _ in range(2 * tiles)]})


def save_model(directory: Path, *, weights: Path, spec: ModelSpec, adapter: Path | None = None) -> Path:
    """`directory` becomes an MLflow model: MLmodel, signature, input example, weights, spec (and the
    adapter of a finetuned model; its base FM weights are named in the spec, not copied)."""
    if (spec.kind == "finetuned") != (adapter is not None):
        raise ValueError("a finetuned model is saved with its adapter file, and only a finetuned one")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = spec.write(Path(tmp) / "model.json")
        example = input_example(spec)
        features = example if adapter is None else embed_frame(load_encoder(spec, adapter), spec, example)
        output = predict_frame(load_backbone(spec, weights), spec, features)
        with warnings.catch_warnings():  # `decision` is a class index and never missing: an int is right
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(example, output)
        mlflow.pyfunc.save_model(
            path=str(directory), python_model=model_code.__file__,
            artifacts={"weights": str(weights), "spec": str(spec_path),
                       **({"adapter": str(adapter)} if adapter is not None else {})},
            signature=signature, input_example=example,
            pip_requirements=[f"raypath=={raypath.__version__}", "torch", "safetensors", "pandas", "numpy",
                              *(["timm", "peft"] if adapter is not None else [])],
            metadata={"raypath_spec_version": spec.version, "raypath_kind": spec.kind,
                      "fm": spec.provenance.get("encoder")})
    return directory


def package_outputs(out: Path) -> Path:
    """`out/model`: the MLflow model of a `raypath train` output directory (its model.safetensors and
    model.json), so `raypath predict --model <out>/model` works without a tracking store. Built
    beside and renamed into place: a reader never sees half a package."""
    final = out / "model"
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=out))
    try:
        spec = ModelSpec.read(out / "model.json")
        save_model(staging / "model", weights=out / "model.safetensors", spec=spec)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging / "model", final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def registered_source(model_uri: str, *, tracking_uri: str | None) -> str:
    """Where `models:/name@alias`, `models:/name/3` or `models:/name/Stage` is stored, looked up in
    the given store only. MLflow resolves `models:/` against the process-wide registry URI, and
    setting that would make a later compare or register in the same process write into this store."""
    if not model_uri.startswith("models:/"):
        return model_uri
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, at, alias = model_uri.removeprefix("models:/").partition("@")
    if at:
        version = client.get_model_version_by_alias(name, alias).version
    else:
        name, _, ref = name.rpartition("/")
        version = ref if ref.isdigit() else client.get_latest_versions(name, stages=[ref])[0].version
    return client.get_model_version_download_uri(name, str(version))


def download_model(model_uri: str, *, tracking_uri: str | None, into: Path) -> tuple[Path, ModelSpec]:
    """(local model directory, its spec) of `models:/name@alias`, `models:/name/3`, `runs:/id/model`
    or a local path."""
    if Path(model_uri).is_dir():
        local = Path(model_uri)
    elif "://" not in model_uri and not model_uri.startswith(("models:/", "runs:/")):
        raise FileNotFoundError(f"{model_uri}: no such model directory (nor a models:/, runs:/ or "
                                "scheme:// model URI)")
    else:
        source = registered_source(model_uri, tracking_uri=tracking_uri)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(into),
                                                         tracking_uri=tracking_uri))
    spec_files = list(local.glob("artifacts/model.json"))
    if not (local / "MLmodel").exists() or not spec_files:
        raise FileNotFoundError(f"{model_uri} is not a raypath model (no MLmodel with artifacts/model.json)")
    return local, ModelSpec.read(spec_files[0])
