"""Feature-level simulated cohort: fast, with known truth, in the feature store's shape.

Each specimen has tissue tiles (prototype + tile variation) shared by all its scans, so the same
tissue location means the same biology on every scanner. Tumour tiles add a class direction and
a risk direction. A scan multiplies by its scanner's gain, adds the scanner's shift (optionally
also one per scanner and tissue type, which no per-scanner location/scale correction undoes) and
fresh noise. Confounding: in train/val a specimen's primary scanner follows its class with probability
``confounding`` (else uniform), and only ``paired_fraction`` of them are rescanned on every
training scanner; test specimens are scanned on all scanners, held-out ones included.

Scans are generated one at a time (`simulate_scans`), so a cohort larger than memory streams to the
feature store; `simulate_cohort` collects the same scans into arrays for small in-memory uses.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from raypath.simulate.config import SimulateConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortTables:
    """Per-patient and per-specimen tables of a simulated cohort (no features)."""

    labels: pd.DataFrame  # patient_id, label, time, event
    splits: pd.DataFrame  # patient_id, split
    truth: pd.DataFrame  # specimen_id, risk, split, scanners
    grid: np.ndarray  # (tiles, 2) level-0 coords of tissue locations (same for every scan)
    n_scans: int


@dataclass(frozen=True)
class SimulatedScan:
    """One slide: identity, tile features (t, d) and each tile's true tissue location."""

    slide: dict[str, Any]  # slide_id, specimen_id, patient_id, scanner, extent_l0
    features: np.ndarray
    locations: np.ndarray


@dataclass(frozen=True)
class SimulatedCohort:
    """All scans in one contiguous array (slides in generation order) plus the tables."""

    features: np.ndarray  # (T, d) float32
    offsets: np.ndarray  # (S + 1,) int64
    slides: pd.DataFrame  # slide_id, specimen_id, patient_id, scanner, extent_l0
    coords: np.ndarray  # (T, 2) level-0 coords
    locations: np.ndarray  # (T,) true tissue location
    tables: CohortTables

    @property
    def labels(self) -> pd.DataFrame:
        return self.tables.labels

    @property
    def splits(self) -> pd.DataFrame:
        return self.tables.splits

    @property
    def truth(self) -> pd.DataFrame:
        return self.tables.truth


def _specimen_plan(config: SimulateConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Per specimen: class, risk, survival, split, primary scanner and scanned set."""
    n = config.n_specimens
    label = rng.permutation(np.arange(n) % config.n_classes)
    risk = config.label_risk_coupling * (label - label.mean()) + rng.standard_normal(n)
    time = rng.exponential(10.0 * np.exp(-risk))
    censor_rate = config.censoring / (1 - config.censoring) / 10.0
    censor = rng.exponential(1.0 / censor_rate, n) if config.censoring > 0 else np.full(n, np.inf)
    order = rng.permutation(n)
    n_test, n_val = round(config.test_fraction * n), round(config.val_fraction * n)
    split = np.empty(n, dtype=object)
    split[order[:n_test]], split[order[n_test:n_test + n_val]], split[order[n_test + n_val:]] = \
        "test", "val", "train"
    return pd.DataFrame({
        "specimen_id": [f"S{i:04d}" for i in range(n)], "patient_id": [f"P{i:04d}" for i in range(n)],
        "label": label, "risk": risk, "time": np.minimum(time, censor).round(3),
        "event": (time <= censor).astype(int), "split": split,
    })


def _scans(config: SimulateConfig, plan: pd.DataFrame, rng: np.random.Generator) -> list[list[str]]:
    """Which scanners scanned each specimen (confounded in train/val, complete in test)."""
    train_scanners = [s for s in config.scanners if s not in config.held_out_scanners]
    scans = []
    for label, split in zip(plan["label"], plan["split"], strict=True):
        if split == "test":
            scans.append(list(config.scanners))
            continue
        preferred = train_scanners[label % len(train_scanners)]
        primary = preferred if rng.random() < config.confounding else rng.choice(train_scanners)
        paired = rng.random() < config.paired_fraction
        scans.append(list(train_scanners) if paired else [str(primary)])
    return scans


@dataclass(frozen=True)
class _Scanners:
    """Per-scanner technical effects: additive shift, per-tissue-type shift and gain."""

    shift: dict[str, np.ndarray]
    tissue_shift: dict[str, np.ndarray]
    gain: dict[str, np.ndarray]


def _scanner_effects(config: SimulateConfig, rng: np.random.Generator) -> _Scanners:
    d = config.dim
    shift = {s: (config.scanner_shift * rng.standard_normal(d)).astype(np.float32) for s in config.scanners}
    tissue_shift = {s: (config.scanner_tissue_shift * rng.standard_normal((config.tissue_types, d)))
                    .astype(np.float32) for s in config.scanners}
    gain = {s: np.clip(1 + config.scanner_scale * rng.standard_normal(d), 0.2, None).astype(np.float32)
            for s in config.scanners}
    return _Scanners(shift=shift, tissue_shift=tissue_shift, gain=gain)


def simulate_scans(config: SimulateConfig) -> tuple[CohortTables, Iterator[SimulatedScan]]:
    """The cohort's tables now and its scans lazily, one (t, d) block at a time, in a fixed order."""
    rng = np.random.default_rng(config.seed)
    plan = _specimen_plan(config, rng)
    scans = _scans(config, plan, rng)
    basis = np.linalg.qr(rng.standard_normal((config.dim, config.n_classes + 1)))[0].T.astype(np.float32)
    prototypes = rng.standard_normal((config.tissue_types, config.dim)).astype(np.float32)
    effects = _scanner_effects(config, rng)
    truth = plan[["specimen_id", "risk", "split"]].assign(scanners=[",".join(sorted(s)) for s in scans])
    tables = CohortTables(labels=plan[["patient_id", "label", "time", "event"]],
                          splits=plan[["patient_id", "split"]], truth=truth,
                          grid=_grid(config.tiles, config.extent_l0), n_scans=sum(len(s) for s in scans))
    generator = _generate(config, plan, scans, rng=rng, basis=basis, prototypes=prototypes, effects=effects)
    return tables, generator


def _generate(config: SimulateConfig, plan: pd.DataFrame, scans: list[list[str]], *,
              rng: np.random.Generator, basis: np.ndarray, prototypes: np.ndarray,
              effects: _Scanners) -> Iterator[SimulatedScan]:
    t, d = config.tiles, config.dim
    class_dirs, risk_dir = basis[:-1], basis[-1]
    for spec, scanners in zip(plan.itertuples(), scans, strict=True):
        types = rng.integers(0, config.tissue_types, t)
        tissue = prototypes[types]
        tissue = tissue + config.tissue_noise * rng.standard_normal((t, d), dtype=np.float32)
        tumour = rng.random(t) < config.tumour_fraction
        signal = (config.label_strength * class_dirs[spec.label]
                  + config.survival_strength * spec.risk * risk_dir)
        tissue[tumour] += signal.astype(np.float32)
        for scanner in sorted(scanners):
            order = rng.permutation(t)  # tile_index differs from tissue location on purpose
            block = (tissue[order] * effects.gain[scanner] + effects.shift[scanner]
                     + effects.tissue_shift[scanner][types[order]])
            block += config.noise * rng.standard_normal((t, d), dtype=np.float32)
            slide = {"slide_id": f"{spec.specimen_id}_{scanner}", "specimen_id": spec.specimen_id,
                     "patient_id": spec.patient_id, "scanner": scanner, "extent_l0": config.extent_l0}
            yield SimulatedScan(slide=slide, features=block, locations=order)


def simulate_cohort(config: SimulateConfig) -> SimulatedCohort:
    """Generate the whole cohort in memory (one preallocated array); for small cohorts and tests."""
    tables, scans = simulate_scans(config)
    t = config.tiles
    features = np.empty((tables.n_scans * t, config.dim), dtype=np.float32)
    locations = np.empty(tables.n_scans * t, dtype=np.int64)
    rows = []
    for index, scan in enumerate(scans):
        features[index * t:(index + 1) * t] = scan.features
        locations[index * t:(index + 1) * t] = scan.locations
        rows.append(scan.slide)
    log.info("simulated %d specimens, %d bags of %d x %d", config.n_specimens, tables.n_scans, t, config.dim)
    return SimulatedCohort(features=features, offsets=np.arange(tables.n_scans + 1, dtype=np.int64) * t,
                           slides=pd.DataFrame(rows), coords=tables.grid[locations], locations=locations,
                           tables=tables)


def _grid(tiles: int, extent: int) -> np.ndarray:
    """Level-0 top-left corners of tissue locations on a square-ish grid."""
    side = int(np.ceil(np.sqrt(tiles)))
    index = np.arange(tiles)
    return np.stack([index % side, index // side], axis=1).astype(np.int64) * extent
