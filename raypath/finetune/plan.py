"""The tile plan: every slide's tissue tiles, found once on the driver with extraction's own code
(`open_slide` + `tile_slide`: thumbnail, tissue mask, grid at the tiling's mpp), written atomically
and read by every worker.

The plan is a `BagSet` whose feature array has zero columns: its offsets, coordinates and slide
table (identity, path, tile geometry, labels, split) are what the MIL sampling needs, so batches
are drawn by the same `Collator` that trains on frozen features, registered tile pairs included.
"""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from raypath.cohort import load_manifest
from raypath.mil.bags import BagSet
from raypath.publish import publish_directory
from raypath.slides import open_slide
from raypath.slides.config import TilingConfig
from raypath.slides.registration import read_registration
from raypath.slides.registration.grid import ReferenceScan, scan_references, tile_registered
from raypath.slides.tiling import TileGrid
from raypath.train.data import TrainingTables, attach_tables, check_coverage

log = logging.getLogger(__name__)
GEOMETRY = ("level", "read_size", "extent_l0", "tile_px", "target_mpp", "mpp_tolerance")


def _slide_grid(path: str, *, mpp: float, tiling: TilingConfig, reference: ReferenceScan | None) -> TileGrid:
    with open_slide(path, reader=tiling.reader, mpp_override=None if np.isnan(mpp) else mpp) as reader:
        return tile_registered(reader, tiling, reference=reference)


def build_plan(
    manifest: pd.DataFrame, *, tiling: TilingConfig, registration: pd.DataFrame | None = None
) -> BagSet:
    """Tiles of every slide, slides sorted by specimen, scanner and id (as bags are); slides without
    tissue tiles are left out with a warning. With `tiling.grid: reference`, moving scans are tiled on
    their reference's grid through `registration`, and slides it does not cover are left out too."""
    ordered = manifest.sort_values(["specimen_id", "scanner", "slide_id"]).reset_index(drop=True)
    references = scan_references(manifest, registration) if tiling.grid == "reference" else {}
    rows, coords = [], []
    for record in ordered.to_dict("records"):
        if tiling.grid == "reference" and record["slide_id"] not in references:
            log.warning("slide %s is not in the registration table (grid: reference); left out",
                        record["slide_id"])
            continue
        grid = _slide_grid(str(record["path"]), mpp=float(record["mpp"]), tiling=tiling,
                           reference=references.get(record["slide_id"]))
        if len(grid) == 0:
            log.warning("slide %s has no tissue tiles; left out", record["slide_id"])
            continue
        identity = ("slide_id", "specimen_id", "patient_id", "scanner", "path")
        rows.append({**{k: str(record[k]) for k in identity},
                     "mpp": float(record["mpp"]), **{k: getattr(grid, k) for k in GEOMETRY}})
        coords.append(grid.coords)
    if not rows:
        raise ValueError("no slide of the manifest has tissue tiles")
    lengths = [len(c) for c in coords]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return BagSet(features=np.zeros((offsets[-1], 0), np.float32), offsets=offsets,
                  slides=pd.DataFrame(rows), coords=np.concatenate(coords).astype(np.int64))


def grid_of(plan: BagSet, slide: int) -> TileGrid:
    """The tile grid of plan slide `slide` (what `read_tiles` takes)."""
    row = plan.slides.iloc[slide]
    coords = np.asarray(plan.coords[plan.offsets[slide]: plan.offsets[slide + 1]])
    return TileGrid(coords=coords, extent_l0=int(row["extent_l0"]), level=int(row["level"]),
                    read_size=int(row["read_size"]), tile_px=int(row["tile_px"]),
                    target_mpp=float(row["target_mpp"]), tissue_fraction=np.ones(len(coords), np.float32),
                    mpp_tolerance=float(row["mpp_tolerance"]))


def plan_directory(
    output_dir: Path, *, manifest: Path, tiling: TilingConfig, registration: Path | None
) -> Path:
    """Keyed by the tiling and the manifest's content (and, on reference grids, the registration's):
    another cohort, tiling or registration gets a new plan."""
    inputs = [manifest] + ([registration] if tiling.grid == "reference" and registration else [])
    digest = hashlib.sha256(b"".join(Path(p).read_bytes() for p in inputs)).hexdigest()[:12]
    return Path(output_dir) / "plan" / f"{tiling.cache_key()}-{digest}"


def write_plan(plan: BagSet, directory: Path) -> None:
    """slides.parquet, offsets.npy, coords.npy, published whole (`raypath.publish`)."""
    def write(temporary: Path) -> None:
        plan.slides.to_parquet(temporary / "slides.parquet", index=False)
        np.save(temporary / "offsets.npy", plan.offsets)
        np.save(temporary / "coords.npy", plan.coords)

    publish_directory(directory, write, replace=False)  # another driver's plan of the same inputs is equal


def read_plan(directory: Path) -> BagSet:
    offsets = np.load(directory / "offsets.npy")
    return BagSet(features=np.zeros((offsets[-1], 0), np.float32), offsets=offsets,
                  slides=pd.read_parquet(directory / "slides.parquet"),
                  coords=np.load(directory / "coords.npy"))


def ensure_plan(
    *, manifest: Path, output_dir: Path, tiling: TilingConfig, registration: Path | None = None
) -> Path:
    """The plan directory, built on first use (the driver calls this before any worker starts)."""
    directory = plan_directory(output_dir, manifest=manifest, tiling=tiling, registration=registration)
    if not directory.is_dir():
        directory.parent.mkdir(parents=True, exist_ok=True)
        table = read_registration(registration) if registration is not None else None
        write_plan(build_plan(load_manifest(manifest), tiling=tiling, registration=table), directory)
        log.info("tile plan -> %s", directory)
    return directory


def open_plan(directory: Path, tables: TrainingTables, *, labels: str) -> BagSet:
    """The plan with labels, splits and registered tile locations attached (locations cached beside it)."""
    plan = read_plan(directory)
    check_coverage(plan.slides["patient_id"], tables, features=str(directory), labels=labels,
                   unmatched_labels="warn")  # slides without tissue tiles were left out, with a warning
    return attach_tables(plan, tables, cache=directory)
