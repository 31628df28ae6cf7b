"""Feature-level simulated cohort: fast, with known truth, in the feature store's shape.

Each specimen has tissue tiles (prototype + tile variation) shared by all its scans, so the same
tissue location means the same biology on every scanner. Tumour tiles add a class direction and
a risk direction. A scan multiplies by its scanner's gain, adds the scanner's shift (optionally
also one per scanner and tissue type, which no per-scanner location/scale correction undoes) and
fresh noise. Confounding: in train/val a specimen's primary scanner follows its class with probability
``confounding`` (else uniform), and only ``paired_fraction`` of them are rescanned on every
training scanner; test specimens are scanned on all scanners, held-out ones included.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from raypath.config.simulate import SimulateConfig
from raypath.mil.bags import BagSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatedCohort:
    """Bags in memory (locations = true tissue location) and per-patient tables."""

    bagset: BagSet
    labels: pd.DataFrame  # patient_id, label, time, event
    splits: pd.DataFrame  # patient_id, split
    truth: pd.DataFrame  # specimen_id, risk, primary_scanner, split
    grid: np.ndarray  # (tiles, 2) level-0 coords of tissue locations (same for every scan)


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


def simulate_cohort(config: SimulateConfig) -> SimulatedCohort:
    """Generate the cohort in memory; a loop over specimens fills one preallocated array."""
    rng = np.random.default_rng(config.seed)
    d, t = config.dim, config.tiles
    plan = _specimen_plan(config, rng)
    scans = _scans(config, plan, rng)
    basis = np.linalg.qr(rng.standard_normal((d, config.n_classes + 1)))[0].T.astype(np.float32)
    class_dirs, risk_dir = basis[:-1], basis[-1]
    prototypes = rng.standard_normal((config.tissue_types, d)).astype(np.float32)
    shift = {s: (config.scanner_shift * rng.standard_normal(d)).astype(np.float32) for s in config.scanners}
    tissue_shift = {s: (config.scanner_tissue_shift * rng.standard_normal((config.tissue_types, d)))
                    .astype(np.float32) for s in config.scanners}
    gain = {s: np.clip(1 + config.scanner_scale * rng.standard_normal(d), 0.2, None).astype(np.float32)
            for s in config.scanners}
    n_bags = sum(len(s) for s in scans)
    features = np.empty((n_bags * t, d), dtype=np.float32)
    rows, locations = [], np.empty(n_bags * t, dtype=np.int64)
    bag = 0
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
            block = tissue[order] * gain[scanner] + shift[scanner] + tissue_shift[scanner][types[order]]
            block += config.noise * rng.standard_normal((t, d), dtype=np.float32)
            features[bag * t:(bag + 1) * t] = block
            locations[bag * t:(bag + 1) * t] = order
            rows.append({"slide_id": f"{spec.specimen_id}_{scanner}", "specimen_id": spec.specimen_id,
                         "patient_id": spec.patient_id, "scanner": scanner, "extent_l0": config.extent_l0})
            bag += 1
    grid = _grid(t, config.extent_l0)
    bagset = BagSet(features=features, offsets=np.arange(n_bags + 1, dtype=np.int64) * t,
                    slides=pd.DataFrame(rows), coords=grid[locations], locations=locations)
    truth = plan[["specimen_id", "risk", "split"]].assign(scanners=[",".join(sorted(s)) for s in scans])
    log.info("simulated %d specimens, %d bags of %d x %d", len(plan), n_bags, t, d)
    return SimulatedCohort(bagset=bagset, labels=plan[["patient_id", "label", "time", "event"]],
                           splits=plan[["patient_id", "split"]], truth=truth, grid=grid)


def _grid(tiles: int, extent: int) -> np.ndarray:
    """Level-0 top-left corners of tissue locations on a square-ish grid."""
    side = int(np.ceil(np.sqrt(tiles)))
    index = np.arange(tiles)
    return np.stack([index % side, index // side], axis=1).astype(np.int64) * extent
