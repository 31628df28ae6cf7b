"""What a sweep reads before Tune starts, and what each trial receives to open its data.

The driver reads the small tables (labels, splits, registration), checks them against the store's
slides and fingerprints the store: all before Ray starts. Trials get a `TrainingSource` (paths,
tables, fingerprint: kilobytes), open the node-local feature cache and read only the tiles they
sample; the driver never holds the cohort.
"""

import json
from pathlib import Path

import pandas as pd

from raypath.cohort import load_labels
from raypath.config import did_you_mean
from raypath.paths import is_remote, join
from raypath.store import (
    FeatureStore,
    check_encoder,
    check_provenance,
    store_encoders,
    tiling_hashes,
)
from raypath.sweep.config import SweepConfig
from raypath.sweep.replicates import replicate_units
from raypath.tracking.runs import TAG_FM, TAG_SWEEP
from raypath.train.config import TrainConfig
from raypath.train.data import (
    TrainingSource,
    TrainingTables,
    check_coverage,
    decide_split,
    read_tables,
    slide_table,
)
from raypath.train.leakage import LeakageAudit, write_audit
from raypath.train.split_policy import split_config


def effective_train(config: SweepConfig) -> TrainConfig:
    """The base train config as trials run it: the split as the split policy decides it (a splits
    file, else the labels' split column, else random; folds replicates split the patients
    themselves), the cohort's held-out scanners added, threads = CPUs per trial."""
    f, split = config.features, config.train.split
    if config.replicates.mode == "folds" and split.source == "auto":
        split = split.model_copy(update={"source": "random"})  # asked for: folds make their own splits
    decided = split_config(split, labels=load_labels(f.labels, patients=None), labels_path=f.labels,
                           splits_given=f.splits is not None)
    return config.train.model_copy(update={"num_threads": max(1, int(config.resources.cpus_per_trial)),
                                           "split": decided})


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
    """Check the store's provenance (features filed under another FM's name would otherwise fail in
    every trial), the tables against its slides, and audit the split every trial will compute
    (`leakage_path`), all before Ray or any trial starts; then describe the data."""
    entries = store.slide_entries()
    if entries:
        check_provenance([entry.metadata for entry in entries], where=store.directory)
        check_encoder(entries[0].metadata, store=store)
    slides = slide_table(store, entries=entries)
    check_coverage(slides["patient_id"], tables, features=store.directory, labels=str(config.features.labels),
                   unmatched_labels=config.features.unmatched_labels)
    base = config.train.model_copy(update={"split": effective_train(config).split})
    _, plan, audit = decide_split(base, slides, tables, labels=config.features.labels,
                                  splits=config.features.splits)
    audits = {"search": audit, **_fold_audits(config, base, slides, tables)}
    write_audit({"split": plan.tags(), "audits": {name: a.to_dict() for name, a in audits.items()}},
                leakage_path(config, store.encoder))
    for found in audits.values():
        found.check()  # a leaking split fails the sweep here, before Ray starts
    cache = config.features.cache
    cache_dir = cache.dir if cache.dir else str((config.output_dir / "cache").resolve())
    return TrainingSource(root=store.root, encoder=store.encoder, tiling_hash=store.tiling_hash,
                     fingerprint=store.fingerprint(), tables=tables, cache_dir=cache_dir,
                     storage=cache.storage)


def leakage_path(config: SweepConfig, fm: str) -> Path:
    """Where a sweep keeps the leakage audit of an FM's split(s)."""
    return Path(config.output_dir) / "leakage" / f"{config.sweep_id}-{fm}.json"


def _fold_audits(config: SweepConfig, base: TrainConfig, slides: pd.DataFrame,
                 tables: TrainingTables) -> dict[str, LeakageAudit]:
    """Folds replicates each test on another fold: every fold's split is audited too."""
    if config.replicates.mode != "folds" or not config.replicates.seeds:
        return {}
    out = {}
    for _, overrides in replicate_units(mode="folds", count=config.replicates.seeds, base_seed=config.seed):
        split = base.split.model_copy(update={k.removeprefix("split."): v for k, v in overrides.items()})
        _, _, audit = decide_split(base.model_copy(update={"split": split}), slides, tables,
                                   labels=config.features.labels, splits=config.features.splits)
        out[f"fold {split.fold}"] = audit
    return out


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
        **_leakage_tags(config, store.encoder),
    }


def _leakage_tags(config: SweepConfig, fm: str) -> dict[str, str]:
    """The split's origin and the leakage audit (as `trial_data` wrote it) for the report."""
    path = leakage_path(config, fm)
    if not path.is_file():
        return {}
    recorded = json.loads(path.read_text())
    passed = all(a["passed"] for a in recorded["audits"].values())
    return {**recorded["split"], "raypath.leakage": "passed" if passed else "FAILED",
            "raypath.leakage.audit": json.dumps(recorded["audits"]["search"], sort_keys=True)}
