"""What a sweep reads before Tune starts, and what each trial receives to open its data.

The driver reads the small tables (labels, splits, registration), checks them against the store's
slides and fingerprints the store: all before Ray starts. Trials get a `TrainingSource` (paths,
tables, fingerprint: kilobytes), open the node-local feature cache and read only the tiles they
sample; the driver never holds the cohort.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Dataset

import raypath
from raypath.config import did_you_mean
from raypath.paths import is_remote, join
from raypath.store import (
    FeatureStore,
    check_encoder,
    check_provenance,
    code_hash,
    store_encoders,
    tiling_hashes,
)
from raypath.sweep.config import SweepConfig
from raypath.sweep.tracking import TAG_FM, TAG_SWEEP
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingSource, TrainingTables, check_coverage, read_tables


def effective_train(config: SweepConfig) -> TrainConfig:
    """The base train config as trials run it: split from the splits file, threads = CPUs per trial."""
    update: dict[str, Any] = {"num_threads": max(1, int(config.resources.cpus_per_trial))}
    if config.features.splits is not None:
        update["split"] = config.train.split.model_copy(update={"source": "column"})
    return config.train.model_copy(update=update)


def fm_store(config: SweepConfig, fm: str) -> FeatureStore:
    """The FM's feature store; the tiling hash may be left out when only one exists."""
    f = config.features
    found = store_encoders(f.root)
    if fm not in found:
        raise ValueError(f"no features of FM {fm!r} under {f.root}{did_you_mean(fm, found)}; found {found}")
    hashes = [f.tiling_hash] if f.tiling_hash else tiling_hashes(f.root, encoder=fm)
    if len(hashes) != 1:
        raise ValueError(f"{join(f.root, fm)}: expected one tiling-hash directory, found {hashes}; "
                         "set features.tiling_hash")
    return FeatureStore(f.root, encoder=fm, tiling_hash=hashes[0])


def sweep_tables(config: SweepConfig) -> TrainingTables:
    """Labels, splits and registration, read and validated once by the driver."""
    f = config.features
    return read_tables(labels=f.labels, splits=f.splits, registration=f.registration)


def trial_data(config: SweepConfig, store: FeatureStore, tables: TrainingTables) -> TrainingSource:
    """Check the store's provenance and the tables against its slides (before Ray or any trial starts:
    features filed under another FM's name would otherwise fail in every trial), and describe the data."""
    entries = store.slide_entries()
    if entries:
        check_provenance([entry.metadata for entry in entries], where=store.directory)
        check_encoder(entries[0].metadata, store=store)
    patients = pd.Series([entry.patient_id for entry in entries], dtype=str)
    check_coverage(patients, tables, features=store.directory, labels=str(config.features.labels),
                   unmatched_labels=config.features.unmatched_labels)
    cache = config.features.cache
    cache_dir = cache.dir if cache.dir else str((config.output_dir / "cache").resolve())
    return TrainingSource(root=store.root, encoder=store.encoder, tiling_hash=store.tiling_hash,
                     fingerprint=store.fingerprint(), tables=tables, cache_dir=cache_dir,
                     storage=cache.storage)


def feature_dataset(data: TrainingSource) -> Dataset:
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


def experiment_tags(config: SweepConfig, store: FeatureStore) -> dict[str, str]:
    """What `raypath compare` needs besides the runs: where the features are, how trials trained."""
    train = effective_train(config)
    return {
        TAG_SWEEP: config.sweep_id,
        TAG_FM: store.encoder,
        "raypath.features_root": store.root if is_remote(store.root) else str(Path(store.root).resolve()),
        "raypath.tiling_hash": store.tiling_hash,
        "raypath.weights_hash": str(store.slide_entry(store.slide_ids()[0]).metadata.get("weights_hash")),
        "raypath.task": train.task,
        "raypath.train": train.model_dump_json(),
    }
