"""What a sweep phase reads and records before Tune starts: features, base train config, MLflow tags."""

from pathlib import Path
from typing import Any

from raypath.mil.bags import BagSet
from raypath.paths import is_remote, join
from raypath.store import FeatureStore, tiling_hashes
from raypath.sweep.config import SweepConfig
from raypath.sweep.tracking import TAG_FM, TAG_SWEEP
from raypath.train.config import TrainConfig
from raypath.train.data import load_training_data


def effective_train(config: SweepConfig) -> TrainConfig:
    """The base train config as trials run it: split from the splits file, threads = CPUs per trial."""
    update: dict[str, Any] = {"num_threads": max(1, int(config.resources.cpus_per_trial))}
    if config.features.splits is not None:
        update["split"] = config.train.split.model_copy(update={"source": "column"})
    return config.train.model_copy(update=update)


def fm_store(config: SweepConfig, fm: str) -> FeatureStore:
    """The FM's feature store; the tiling hash may be left out when only one exists."""
    f = config.features
    hashes = [f.tiling_hash] if f.tiling_hash else tiling_hashes(f.root, encoder=fm)
    if len(hashes) != 1:
        raise ValueError(f"{join(f.root, fm)}: expected one tiling-hash directory, found {hashes}; "
                         "set features.tiling_hash")
    return FeatureStore(f.root, encoder=fm, tiling_hash=hashes[0])


def load_fm_data(config: SweepConfig, store: FeatureStore) -> BagSet:
    """Read one FM's features once in the driver; labels are validated before any trial starts."""
    f = config.features
    return load_training_data(store=store, labels=f.labels, splits=f.splits, registration=f.registration)


def experiment_tags(config: SweepConfig, store: FeatureStore) -> dict[str, str]:
    """What `raypath compare` needs besides the runs: where the features are, how trials trained."""
    train = effective_train(config)
    return {
        TAG_SWEEP: config.sweep_id,
        TAG_FM: store.encoder,
        "raypath.features_root": store.root if is_remote(store.root) else str(Path(store.root).resolve()),
        "raypath.tiling_hash": store.tiling_hash,
        "raypath.task": train.task,
        "raypath.train": train.model_dump_json(),
    }
