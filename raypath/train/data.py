"""Training data from the previous stages' outputs: the feature store (through the node-local cache),
labels, an optional splits file and registration.

The tables are small and read (and validated against the store's slides) once, before any training
starts; the features are never read into memory: `open_training_data` maps the node's cache, so a
process that trains on a cohort of any size holds only the batches it is working on.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from raypath.cohort import CohortError, load_labels
from raypath.cohort.splits import load_splits
from raypath.mil.bags import BagSet, locations_from_pairs
from raypath.mil.cache import CacheInfo, Storage, cache_directory, cached_array, open_cache
from raypath.paths import is_remote
from raypath.slides.registration import read_registration, registration_transforms, tile_pairs
from raypath.store import FeatureStore
from raypath.train.config import TrainConfig
from raypath.train.leakage import LeakageAudit, audit_split
from raypath.train.setup import split_slides
from raypath.train.split_policy import SplitPlan, plan_split

log = logging.getLogger(__name__)
SHOWN = 5  # ids named in a coverage error


@dataclass(frozen=True)
class TrainingTables:
    """Per-patient labels, optional splits and the registration table, validated."""

    labels: pd.DataFrame
    splits: pd.DataFrame | None = None
    registration: pd.DataFrame | None = None


def read_tables(*, labels: Path, splits: Path | None = None,
                registration: Path | None = None) -> TrainingTables:
    """Read and validate the tables; a malformed row fails here, naming file, line and column."""
    return TrainingTables(labels=load_labels(labels, patients=None),
                          splits=None if splits is None else load_splits(splits),
                          registration=None if registration is None else read_registration(registration))


def slide_table(store: FeatureStore, *, entries: list | None = None) -> pd.DataFrame:
    """The store's slides with features (ids, patient, specimen, scanner), read from footers only
    (or from `entries` the caller already read)."""
    entries = [e for e in (store.slide_entries() if entries is None else entries) if e.n_tiles > 0]
    columns = ("slide_id", "patient_id", "specimen_id", "scanner")
    return pd.DataFrame([[getattr(e, c) for c in columns] for e in entries], columns=list(columns), dtype=str)


def decide_split(config: TrainConfig, slides: pd.DataFrame, tables: TrainingTables, *, labels: Path,
                 splits: Path | None = None) -> tuple[TrainConfig, SplitPlan, LeakageAudit]:
    """The split policy on these slides: `config` with its split decided, the plan, and the audit of
    the split every training process will compute (raises on bad splits before any work)."""
    plan = plan_split(config.split, labels=tables.labels, labels_path=labels, splits=tables.splits,
                      splits_path=splits, patients=slides["patient_id"], scanners=slides["scanner"])
    decided = config.model_copy(update={"split": plan.config})
    frame = slides[["slide_id", "patient_id", "specimen_id", "scanner"]].merge(
        tables.labels, on="patient_id", how="left", suffixes=("", "_label"))
    if plan.assignment is not None:
        frame = frame.drop(columns=["split"], errors="ignore").merge(plan.assignment, on="patient_id",
                                                                      how="left")
    audit = audit_split(frame, split_slides(decided, frame), held_out=plan.config.held_out_scanners)
    log.info("split: %s; %s", plan.origin, audit.describe())
    return decided, plan, audit


def check_coverage(patients: pd.Series, tables: TrainingTables, *, features: str, labels: str,
                   unmatched_labels: Literal["error", "warn"] = "error") -> None:
    """Every patient with features has a label row, and label rows name patients with features.

    Label rows without features are an error by default (a typo in the ids), or a warning where the
    label table is knowingly a superset (e.g. a clinical table of patients never scanned).
    """
    have = set(patients.astype(str))
    labelled = set(tables.labels["patient_id"].astype(str))
    unlabelled = sorted(have - labelled)
    if unlabelled:
        raise CohortError(f"{labels}: {len(unlabelled)} patients with features under {features} have no "
                          f"label row, e.g. {unlabelled[:SHOWN]}")
    unmatched = sorted(labelled - have)
    if unmatched and (unmatched_labels == "error" or len(unmatched) == len(labelled)):
        raise CohortError(f"{labels}: {len(unmatched)} of {len(labelled)} labelled patients have no features "
                          f"under {features}, e.g. {unmatched[:SHOWN]} (set unmatched_labels: warn if the "
                          "label table is knowingly larger than the cohort)")
    if unmatched:
        log.warning("%s: %d labelled patients have no features, e.g. %s", labels, len(unmatched),
                    unmatched[:SHOWN])


def registered_locations(bagset: BagSet, registration: pd.DataFrame) -> np.ndarray:
    """Tile location ids (index of the matching tile in the specimen's reference scan, −1 = none)."""
    transforms = registration_transforms(registration)
    row_of = {s: i for i, s in enumerate(bagset.slides["slide_id"])}
    pairs: dict[str, tuple[str, np.ndarray]] = {}
    for slide_id, (reference, transform) in transforms.items():
        if slide_id not in row_of or reference not in row_of or reference not in transforms:
            continue
        a, b = row_of[reference], row_of[slide_id]
        extents = (float(bagset.slides.at[a, "extent_l0"]), float(bagset.slides.at[b, "extent_l0"]))
        pairs[slide_id] = (reference, tile_pairs(
            coords_a=np.asarray(bagset.coords[bagset.offsets[a]: bagset.offsets[a + 1]]),
            coords_b=np.asarray(bagset.coords[bagset.offsets[b]: bagset.offsets[b + 1]]),
            transform_a=transforms[reference][1], transform_b=transform, extent_l0=extents))
    log.info("registered tile pairs for %d of %d slides", len(pairs), bagset.n_slides)
    return locations_from_pairs(bagset, pairs)


def open_training_data(store: FeatureStore, tables: TrainingTables, *, cache_root: Path,
                       storage: Storage = "float16", fingerprint: str | None = None) -> BagSet:
    """The store's bags from the node-local cache with labels, splits and tile locations attached."""
    directory = cache_directory(cache_root, store, storage=storage, fingerprint=fingerprint)
    bags = open_cache(store, root=cache_root, storage=storage, fingerprint=fingerprint)
    return attach_tables(bags, tables, cache=directory)


def attach_tables(bags: BagSet, tables: TrainingTables, *, cache: Path) -> BagSet:
    """Labels and splits joined by patient; tile locations from the registration, computed once per
    cache and registration table (`locations-<hash>.npy` in the cache directory, memory-mapped)."""
    bagset = bags.with_columns(tables.labels, on="patient_id")
    if tables.splits is not None:
        bagset = bagset.with_columns(tables.splits, on="patient_id")
    if tables.registration is not None:
        rows = pd.util.hash_pandas_object(tables.registration, index=False).to_numpy()
        locations = cached_array(cache / f"locations-{_digest(rows)}.npy",
                                 lambda: registered_locations(bagset, tables.registration))
        bagset = bagset.with_locations(locations)
    return bagset


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(values.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingSource:
    """Everything a training process needs to open the training data on whichever node it runs:
    paths, the validated tables and the store's fingerprint (kilobytes, cheap to send to workers)."""

    root: str
    encoder: str
    tiling_hash: str
    fingerprint: str
    tables: TrainingTables
    cache_dir: str  # may contain '{node}'
    storage: Storage

    def store(self) -> FeatureStore:
        return FeatureStore(self.root, encoder=self.encoder, tiling_hash=self.tiling_hash)

    def cache_root(self, *, node: str) -> Path:
        """This node's cache root: `cache_dir` with `{node}` filled in."""
        return Path(self.cache_dir.replace("{node}", node))

    def provenance(self, *, node: str) -> dict:
        """The features' provenance (encoder, weights, tiling) as this node's cache recorded it."""
        directory = cache_directory(self.cache_root(node=node), self.store(), storage=self.storage,
                                    fingerprint=self.fingerprint)
        return CacheInfo.read(directory).provenance

    def open(self, *, node: str) -> BagSet:
        """The bags from this node's cache (built on first use), tables attached."""
        return open_training_data(self.store(), self.tables, cache_root=self.cache_root(node=node),
                                  storage=self.storage, fingerprint=self.fingerprint)


def _source(store: FeatureStore, tables: TrainingTables, *, cache_dir: str,
            storage: Storage) -> TrainingSource:
    root = store.root if is_remote(store.root) else str(Path(store.root).resolve())
    return TrainingSource(root=root, encoder=store.encoder, tiling_hash=store.tiling_hash,
                          fingerprint=store.fingerprint(), tables=tables,
                          cache_dir=str(Path(cache_dir).resolve()), storage=storage)


def training_source(*, store: FeatureStore, labels: Path, cache_dir: str, splits: Path | None = None,
                    registration: Path | None = None, storage: Storage = "float16",
                    unmatched_labels: Literal["error", "warn"] = "error") -> TrainingSource:
    """Tables read and checked against the store's slides (before any features are read), and the
    store fingerprinted: what every training process of a run opens its data from. Local paths are
    made absolute: workers run in other directories."""
    tables = read_tables(labels=labels, splits=splits, registration=registration)
    patients = pd.Series([entry.patient_id for entry in store.slide_entries()], dtype=str)
    check_coverage(patients, tables, features=store.directory, labels=str(labels),
                   unmatched_labels=unmatched_labels)
    return _source(store, tables, cache_dir=cache_dir, storage=storage)


@dataclass(frozen=True)
class TrainingInputs:
    """A training command's checked inputs: the data source, the config with its split decided,
    the split plan (where the split comes from) and the leakage audit of that split."""

    source: TrainingSource
    config: TrainConfig
    split: SplitPlan
    audit: LeakageAudit


def training_inputs(config: TrainConfig, *, store: FeatureStore, labels: Path, cache_dir: str,
                    splits: Path | None = None, registration: Path | None = None,
                    storage: Storage = "float16",
                    unmatched_labels: Literal["error", "warn"] = "error") -> TrainingInputs:
    """`training_source` plus the split policy and leakage audit, all before any features are read:
    bad tables, a splits file that does not match the features, or a leaking split raise here."""
    tables = read_tables(labels=labels, splits=splits, registration=registration)
    slides = slide_table(store)
    check_coverage(slides["patient_id"], tables, features=store.directory, labels=str(labels),
                   unmatched_labels=unmatched_labels)
    decided, plan, audit = decide_split(config, slides, tables, labels=labels, splits=splits)
    return TrainingInputs(source=_source(store, tables, cache_dir=cache_dir, storage=storage), config=decided,
                          split=plan, audit=audit)


def load_training_data(*, store: FeatureStore, labels: Path, cache_root: Path, splits: Path | None = None,
                       registration: Path | None = None, storage: Storage = "float16",
                       unmatched_labels: Literal["error", "warn"] = "error") -> BagSet:
    """The training data of a single process: `training_source` opened from the cache at `cache_root`."""
    source = training_source(store=store, labels=labels, cache_dir=str(cache_root), splits=splits,
                             registration=registration, storage=storage, unmatched_labels=unmatched_labels)
    return source.open(node="")
