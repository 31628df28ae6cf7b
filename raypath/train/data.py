"""Assemble a training BagSet from the previous stages' outputs: feature store, labels, optional
splits file and registration. Reads everything once; the loop never touches the disk again."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from raypath.cohort import load_labels
from raypath.mil.bags import BagSet, load_bagset, locations_from_pairs
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


def read_labels(path: Path) -> pd.DataFrame:
    """labels.csv keyed by patient_id, validated so a bad row fails before any training starts."""
    return load_labels(path, patients=None)


def read_splits(path: Path) -> pd.DataFrame:
    """splits.csv: patient_id, split (train/val/test), e.g. the simulator's confounded design."""
    table = pd.read_csv(path, dtype={"patient_id": str, "split": str})
    missing = {"patient_id", "split"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return table[["patient_id", "split"]]


def registered_locations(bagset: BagSet, registration: Path) -> np.ndarray:
    """Tile location ids from registration.parquet via the registered tile pairs."""
    from raypath.slides.registration import load_registration, tile_pairs

    transforms = load_registration(registration)
    row_of = {s: i for i, s in enumerate(bagset.slides["slide_id"])}
    pairs: dict[str, tuple[str, np.ndarray]] = {}
    for slide_id, (reference, transform) in transforms.items():
        if slide_id not in row_of or reference not in row_of or reference not in transforms:
            continue
        a, b = row_of[reference], row_of[slide_id]
        extents = (float(bagset.slides.at[a, "extent_l0"]), float(bagset.slides.at[b, "extent_l0"]))
        pairs[slide_id] = (reference, tile_pairs(
            coords_a=bagset.coords[bagset.offsets[a]: bagset.offsets[a + 1]],
            coords_b=bagset.coords[bagset.offsets[b]: bagset.offsets[b + 1]],
            transform_a=transforms[reference][1], transform_b=transform, extent_l0=extents))
    log.info("registered tile pairs for %d of %d slides", len(pairs), bagset.n_slides)
    return locations_from_pairs(bagset, pairs)


def load_training_data(
    *, store: FeatureStore, labels: Path, splits: Path | None = None, registration: Path | None = None,
    dtype: type = np.float32,
) -> BagSet:
    """Bags of every slide in `store` with labels (and split, tile locations) attached."""
    bagset = load_bagset(store, dtype=dtype).with_columns(read_labels(labels), on="patient_id")
    if splits is not None:
        bagset = bagset.with_columns(read_splits(splits), on="patient_id")
    if registration is not None:
        bagset = bagset.with_locations(registered_locations(bagset, registration))
    return bagset
