"""Write a trained model as an MLflow pyfunc model directory, and read one back from any model URI."""

import importlib.metadata
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature

import raypath
from raypath.config import did_you_mean
from raypath.packaging import model_code
from raypath.packaging.adapted import embed_frame, load_encoder
from raypath.packaging.network import load_backbone
from raypath.packaging.pyfunc import predict_frame
from raypath.packaging.spec import ModelSpec
from raypath.publish import publish_directory


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


# Distributions the pyfunc's code (raypath's modules it imports, bundled with the model) imports; a
# finetuned model also embeds tiles. Pinned to the versions it was saved with; MLflow adds itself.
SERVING = ("numpy", "pandas", "pyarrow", "pydantic", "pyyaml", "tqdm", "torch", "safetensors", "scipy",
           "pillow", "tifffile", "imagecodecs", "simplejpeg", "openslide-python", "openslide-bin")
SERVING_FINETUNED = ("timm", "peft", "huggingface-hub")


def serving_requirements(*, finetuned: bool) -> list[str]:
    """pip requirements a fresh environment resolves from a package index (no raypath: the model
    carries its code), each pinned to the installed release (a local label such as `+cpu` dropped)."""
    names = [*SERVING, *(SERVING_FINETUNED if finetuned else ())]
    return [_pinned(name) for name in names]


def _pinned(name: str) -> str:
    try:
        return f"{name}=={importlib.metadata.version(name).split('+')[0]}"
    except importlib.metadata.PackageNotFoundError:
        return name


def save_model(directory: Path, *, weights: Path, spec: ModelSpec, adapter: Path | None = None,
               mlflow_model: Model | None = None) -> Path:
    """`directory` becomes an MLflow model: MLmodel, signature, input example, weights, spec (and the
    adapter of a finetuned model; its base FM weights are named in the spec, not copied), raypath's
    code (`code/raypath`) and requirements that resolve without it. `mlflow_model` carries the
    logged model's id when the directory is logged as one (`raypath.packaging.logged`)."""
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
            signature=signature, input_example=example, mlflow_model=mlflow_model,
            code_paths=[str(Path(raypath.__file__).parent)],
            pip_requirements=serving_requirements(finetuned=adapter is not None),
            metadata={"raypath_spec_version": spec.version, "raypath_kind": spec.kind,
                      "fm": spec.provenance.get("encoder")})
    return directory


def package_outputs(out: Path) -> Path:
    """`out/model`: the MLflow model of a `raypath train` output directory (its model.safetensors and
    model.json), so `raypath predict --model <out>/model` works without a tracking store. Built
    beside and renamed into place: a reader never sees half a package."""
    final = out / "model"
    spec = ModelSpec.read(out / "model.json")
    weights = out / "model.safetensors"
    publish_directory(final, lambda staging: save_model(staging, weights=weights, spec=spec))
    return final


MODEL_NAME = "model"  # a run's logged model: `runs:/<run id>/model`


def run_model_id(client: MlflowClient, run_id: str) -> str | None:
    """The id of the model a run logged (the newest, if it logged several), or None."""
    experiment = client.get_run(run_id).info.experiment_id
    query = f"name = '{MODEL_NAME}' AND source_run_id = '{run_id}'"
    models = client.search_logged_models(experiment_ids=[experiment], filter_string=query,
                                         order_by=[{"field_name": "creation_time", "ascending": False}])
    return models[0].model_id if models else None


class ModelNotFoundError(ValueError):
    """A model URI that names no registered model, version, alias or run in the given store."""


def registered_source(model_uri: str, *, tracking_uri: str | None) -> str:
    """Where `models:/name@alias`, `models:/name/3` or `models:/name/Stage` is stored, looked up in
    the given store only. MLflow resolves `models:/` against the process-wide registry URI, and
    setting that would make a later compare or register in the same process write into this store.
    A run, name, version, alias or stage the store lacks is named with what it holds instead; a run's
    logged model is its artifact location."""
    if not model_uri.startswith(("models:/", "runs:/")):
        return model_uri
    client = MlflowClient(tracking_uri=existing_store(tracking_uri), registry_uri=tracking_uri)
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
        _found(lambda: client.get_run(run_id), f"{model_uri}: no run {run_id!r} in {tracking_uri}")
        model_id = run_model_id(client, run_id) if path.strip("/") == MODEL_NAME else None
        # the logged model's own location: MLflow resolves a run's logged model in its process-wide store
        return client.get_logged_model(model_id).artifact_location if model_id else model_uri
    return client.get_model_version_download_uri(*_registered_version(client, model_uri, store=tracking_uri))


def _registered_version(client: MlflowClient, model_uri: str, *, store: str | None) -> tuple[str, str]:
    """(name, version) that `models:/name@alias|version|stage` points at, or ModelNotFoundError."""
    name, at, alias = model_uri.removeprefix("models:/").partition("@")
    name, ref = (name, alias) if at else name.rpartition("/")[::2]
    names = _names(client)
    model = _found(lambda: client.get_registered_model(name), f"{model_uri}: no registered model {name!r} "
                   f"in {store}{did_you_mean(name, names)}; registered: {names}")
    versions = _versions(client, name)
    if at:
        version = model.aliases.get(alias)
    elif ref.isdigit():
        version = ref if ref in versions else None
    else:
        version = next((v.version for v in client.get_latest_versions(name, stages=[ref])), None)
    if version is None:
        kind = "alias" if at else "version" if ref.isdigit() else "stage"
        aliases = ", ".join(f"{a} -> {v}" for a, v in sorted(model.aliases.items())) or "none"
        raise ModelNotFoundError(f"{model_uri}: model {name!r} has no {kind} {ref!r}"
                                 f"{did_you_mean(ref, model.aliases) if at else ''}; its versions: "
                                 f"{', '.join(versions) or 'none'}; its aliases: {aliases}")
    return name, str(version)


def existing_store(tracking_uri: str | None) -> str | None:
    """The tracking URI, refused when it names a SQLite file that does not exist (MLflow would create
    an empty store there and then report every model missing)."""
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///").partition("?")[0])
        if not path.is_file():
            raise FileNotFoundError(f"no MLflow store at {path} (from --tracking-uri {tracking_uri})")
    return tracking_uri


def _found(lookup, message: str):
    """`lookup()`, with MLflow's missing-resource error turned into one line naming what is missing."""
    try:
        return lookup()
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ModelNotFoundError(message) from None


def _names(client: MlflowClient) -> list[str]:
    return sorted(model.name for model in client.search_registered_models(max_results=50))


def _versions(client: MlflowClient, name: str) -> list[str]:
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{name}'")), key=int)


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
