"""What an MLflow training run records about its inputs: the code that trained and the feature store.

Shared by `raypath train`, the sweep and fine-tuning so that every run of every command carries the
same provenance tags and the same dataset entry.
"""

import json
import subprocess
from pathlib import Path

from mlflow.entities import Dataset

import raypath
from raypath.store import code_hash
from raypath.train.data import TrainingSource

FeatureDataset = Dataset  # the MLflow dataset entry of a feature store, as runs record it


def feature_dataset(data: TrainingSource) -> FeatureDataset:
    """The feature store as an MLflow dataset: FM card, weights and tiling hash in its profile."""
    store = data.store()
    first = store.slide_entry(store.slide_ids()[0]).metadata
    profile = {k: first.get(k) for k in ("encoder", "weights_hash", "tiling_hash", "embed_dim", "tiling")}
    profile["card"] = first.get("card", {}).get("name")
    return Dataset(name=f"{store.encoder}/{store.tiling_hash}", digest=data.fingerprint[:16],
                   source_type="raypath-feature-store", source=json.dumps({"uri": store.directory}),
                   profile=json.dumps(profile, default=str))


def code_tags() -> dict[str, str]:
    """The code that trained: raypath's version, its source hash and, in a git checkout, the commit."""
    tags = {"raypath.version": raypath.__version__, "raypath.code_hash": code_hash()}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(raypath.__file__).parent, text=True,
                                capture_output=True, timeout=10, check=True).stdout.strip()
        tags["mlflow.source.git.commit"] = commit
    except (OSError, subprocess.SubprocessError):
        pass
    return tags
