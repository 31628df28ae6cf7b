"""Write a simulated cohort in the pipeline's on-disk formats, so everything downstream runs on it.

Layout under ``out``: ``features/sim-<dim>/<hash>/<slide>.parquet`` (the feature store),
``manifest.csv`` (``path`` points at the slide's feature file: there are no images),
``labels.csv``, ``splits.csv`` (patient_id, split: the intended confounded design; training
uses it when given with ``--splits``), ``cohort.yaml`` (the held-out scanners every command
honours), ``registration.parquet`` (identity transforms: all scans share tissue coordinates, while
tile order differs per scan) and ``truth.csv``.
Scans stream from the simulator to the store one slide at a time: memory does not grow with the
cohort, so stores larger than RAM can be written for the cohort-scale benchmarks.
"""

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from raypath.cohort.declaration import CohortDeclaration, write_declaration
from raypath.logs import ProgressBar
from raypath.publish import write_text
from raypath.simulate.cohort import CohortTables, simulate_scans
from raypath.simulate.config import SimulateConfig
from raypath.slides.registration import write_registration
from raypath.store import FeatureStore, provenance, tiles_table

log = logging.getLogger(__name__)


def simulation_hash(config: SimulateConfig) -> str:
    """Stands in for the tiling hash: a different simulation never mixes with an old one."""
    return hashlib.sha256(json.dumps(config.model_dump(), sort_keys=True).encode()).hexdigest()[:12]


def write_feature_cohort(config: SimulateConfig, *, out: Path) -> FeatureStore:
    """Simulate and write features, manifest, labels, splits, registration and truth under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    key = simulation_hash(config)
    store = FeatureStore(out / "features", encoder=config.encoder, tiling_hash=key)
    meta = provenance(encoder=config.encoder, card={"name": config.encoder, "kind": "simulated"},
                      weights_hash=key, tiling={"simulated": True, "extent_l0": config.extent_l0,
                                                "mpp": config.mpp}, tiling_hash=key, embed_dim=config.dim)
    tables, scans = simulate_scans(config)
    rows = []
    for scan in ProgressBar(scans, total=tables.n_scans, desc="write bags", leave=False):
        table = tiles_table(slide=scan.slide, coords=tables.grid[scan.locations], features=scan.features,
                            extent_l0=config.extent_l0, tile_px=224,
                            mpp=config.mpp * config.extent_l0 / 224,  # the tile's own resolution
                            tissue_fraction=np.ones(len(scan.features), np.float32), metadata=meta)
        store.write(scan.slide["slide_id"], table)
        rows.append(scan.slide)
    _write_tables(pd.DataFrame(rows), tables, store=store, out=out, config=config)
    log.info("wrote %d simulated slides to %s", len(rows), store.directory)
    return store


def _write_tables(slides: pd.DataFrame, tables: CohortTables, *, store: FeatureStore, out: Path,
                  config: SimulateConfig) -> None:
    manifest = slides[["slide_id", "patient_id", "specimen_id", "scanner"]].copy()
    manifest.insert(1, "path", [str(Path(store.slide_path(s)).relative_to(out)) for s in slides["slide_id"]])
    manifest["center"] = pd.NA
    manifest["mpp"] = config.mpp
    for name, table in {"manifest.csv": manifest, "labels.csv": tables.labels, "splits.csv": tables.splits,
                        "truth.csv": tables.truth}.items():
        write_text(out / name, table.to_csv(index=False))
    write_declaration(CohortDeclaration(held_out_scanners=config.held_out_scanners), out)
    reference = slides.groupby("specimen_id")["slide_id"].transform("first")
    write_registration(pd.DataFrame({
        "slide_id": slides["slide_id"], "specimen_id": slides["specimen_id"], "reference_slide_id": reference,
        "rotation_deg": 0.0, "tx": 0.0, "ty": 0.0, "scale": 1.0, "score": 1.0}), out / "registration.parquet")
