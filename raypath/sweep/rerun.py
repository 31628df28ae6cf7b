"""What it takes to train a swept configuration again, recorded with its MLflow run, and the retraining.

Every trial run carries `raypath.rerun` (JSON): the train config its pack started from, every
member of the pack with its settings and the run's position in it (members train together, so the
pack is part of the recipe), the seed, the feature store (root, FM, tiling hash, fingerprint, cache
precision) and the tables (path and SHA-256). `raypath.packages` holds the Python and package
versions, and the code version tags (`raypath.version`, `raypath.code_hash`, the git commit) sit
beside them. `Rerun.from_run(client, run_id).retrain(...)` trains that run again from this record
alone and refuses features or tables that changed since.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raypath.store import FeatureStore
from raypath.sweep.packing import member_settings
from raypath.sweep.space import apply_params
from raypath.tracking.queries import TrackingClient, run_tags
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingSource, training_source
from raypath.train.engine import PackMember, TrainResult, train_pack

TAG_RERUN = "raypath.rerun"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def data_record(data: TrainingSource, *, tables: Mapping[str, Path | None]) -> dict[str, Any]:
    """The features and tables a sweep's trials read (tables by absolute path and content digest)."""
    return {"features": {"root": data.root, "encoder": data.encoder, "tiling_hash": data.tiling_hash,
                         "fingerprint": data.fingerprint, "storage": data.storage},
            "tables": {name: {"path": str(Path(path).resolve()), "sha256": file_sha256(path)}
                       for name, path in tables.items() if path is not None}}


def member_record(*, train: Mapping[str, Any], pack: Sequence[Mapping[str, Any]], position: int,
                  data: Mapping[str, Any]) -> str:
    """The `raypath.rerun` tag of the pack member at `position`."""
    members = [{"key": m["key"], "settings": member_settings(m)} for m in pack]
    return json.dumps({"train": dict(train), "seed": int(pack[position]["seed"]), "position": position,
                       "pack": members, **data}, sort_keys=True)


@dataclass(frozen=True)
class Rerun:
    """One recorded trial run, ready to be trained again."""

    record: dict[str, Any]

    @classmethod
    def from_run(cls, client: TrackingClient, run_id: str) -> "Rerun":
        tags = run_tags(client, run_id)
        if TAG_RERUN not in tags:
            raise ValueError(f"run {run_id} has no {TAG_RERUN} tag (not a sweep trial of this raypath)")
        return cls(json.loads(tags[TAG_RERUN]))

    def source(self, *, cache_dir: Path) -> TrainingSource:
        """The recorded training data, refused when the features or a table changed since."""
        features, tables = self.record["features"], self.record["tables"]
        for name, table in tables.items():
            if file_sha256(Path(table["path"])) != table["sha256"]:
                raise ValueError(f"{table['path']} ({name}) changed since the run trained on it")
        store = FeatureStore(features["root"], encoder=features["encoder"],
                             tiling_hash=features["tiling_hash"])
        source = training_source(store=store, labels=Path(tables["labels"]["path"]), cache_dir=str(cache_dir),
                                 splits=_path(tables, "splits"), registration=_path(tables, "registration"),
                                 storage=features["storage"], unmatched_labels="warn")
        if source.fingerprint != features["fingerprint"]:
            raise ValueError(f"the features under {store.directory} changed since the run trained on them")
        return source

    def retrain(self, *, cache_dir: Path) -> TrainResult:
        """Train the recorded pack again (same members, seed and data); the recorded member's result."""
        base = TrainConfig.model_validate(self.record["train"])
        members = [PackMember(key=m["key"], config=apply_params(base, m["settings"]))
                   for m in self.record["pack"]]
        bags = self.source(cache_dir=cache_dir).open(node="")
        results = train_pack(members=members, data=bags, seed=int(self.record["seed"]))
        return results[self.record["pack"][self.record["position"]]["key"]]


def _path(tables: Mapping[str, Any], name: str) -> Path | None:
    return Path(tables[name]["path"]) if name in tables else None
