"""Cohort and run helpers of the reliability suite: manifests, extraction settings, store checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from faultkit import write_tissue_slide

from raypath.extract.claims import SUFFIX as CLAIM_SUFFIX
from raypath.extract.config import ExtractConfig
from raypath.extract.owners import OWNERS_DIR
from raypath.paths import temporary_owner
from raypath.store import FeatureStore

GOOD_SLIDES = 18
ENCODER = "tiny-uni"
OVERRIDE_ID = "generic-mpp-override"
"""The mpp-less generic TIFF listed again with `mpp` in the manifest: it must be extracted."""


@dataclass
class FaultyCohort:
    """A manifest of good and deliberately bad slides; `faults` maps slide id -> what is wrong."""

    root: Path
    manifest: Path
    good: list[str]
    faults: dict[str, str] = field(default_factory=dict)


def manifest_row(slide_id: str, path: Path, *, index: int, mpp: float | None = None) -> dict[str, object]:
    return {"slide_id": slide_id, "path": str(path), "patient_id": f"P{index:03d}",
            "specimen_id": f"SP{index:03d}", "scanner": ("scanner-a", "scanner-b")[index % 2],
            "center": "site-0", "mpp": mpp}


def good_slides(directory: Path, count: int) -> list[tuple[str, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    ids = [f"good-{i:02d}" for i in range(count)]
    return [(name, write_tissue_slide(directory / f"{name}.svs", seed=i)) for i, name in enumerate(ids)]


def write_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def extract_config(manifest: Path, output: Path, **changes: object) -> ExtractConfig:
    """The suite's extraction settings: tiny encoder, small batches and chunks."""
    base = {"manifest": manifest, "output": str(output), "encoders": [ENCODER], "batch_size": 16,
            "tiles_per_chunk": 8}
    return ExtractConfig.model_validate({**base, **changes})


def store_of(config: ExtractConfig, encoder: str = ENCODER) -> FeatureStore:
    return FeatureStore(config.output, encoder=encoder, tiling_hash=config.tiling.cache_key())


def file_identity(store: FeatureStore) -> dict[str, tuple[int, int]]:
    """slide id -> (inode, mtime_ns) of its final file: unchanged means not rewritten."""
    stats = {slide_id: Path(store.slide_path(slide_id)).stat() for slide_id in store.slide_ids()}
    return {slide_id: (stat.st_ino, stat.st_mtime_ns) for slide_id, stat in stats.items()}


def hidden_files(store: FeatureStore) -> list[str]:
    """Temporary (dot) files in a store directory: none may stay after a finished run."""
    directory = Path(store.directory)
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) if directory.is_dir() else []


def leftovers(out: Path) -> list[str]:
    """Files no finished run may leave under an output: temporaries, claims, owner files."""
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and (
        temporary_owner(p.name) is not None or p.name.endswith(CLAIM_SUFFIX) or p.parent.name == OWNERS_DIR))
