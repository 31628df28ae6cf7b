"""registration.parquet: one row per slide with its transform onto its specimen's reference scan."""

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from raypath.slides.registration.estimate import ScanImage, estimate_transform
from raypath.slides.registration.transform import Transform

log = logging.getLogger(__name__)
COLUMNS = ("slide_id", "specimen_id", "reference_slide_id", "rotation_deg", "tx", "ty", "scale", "score")
ThumbnailLoader = Callable[[pd.Series], ScanImage]
"""Manifest row -> its thumbnail at the registration mpp."""


class RegistrationError(ValueError):
    """A registration table that is missing columns or slides."""


def choose_references(manifest: pd.DataFrame, *, reference_scanner: str | None = None) -> dict[str, str]:
    """specimen_id -> reference slide_id: the `reference_scanner` scan if the specimen has one,
    else the scan whose scanner name sorts first (ties: smallest slide id). A `reference_scanner`
    that matches no scan of the manifest is an error, not a silent fallback (a typo would otherwise
    register everything onto arbitrary references)."""
    scanners = sorted(manifest["scanner"].astype(str).unique())
    if reference_scanner is not None and reference_scanner not in scanners:
        raise RegistrationError(f"reference scanner {reference_scanner!r} matches no scanner of the "
                                f"manifest; its scanners are {scanners}")
    ordered = manifest.sort_values(["scanner", "slide_id"])
    references = {}
    for specimen, group in ordered.groupby("specimen_id", sort=True):
        preferred = group[group["scanner"] == reference_scanner] if reference_scanner else group.iloc[:0]
        references[str(specimen)] = str((preferred if len(preferred) else group).iloc[0]["slide_id"])
    return references


def register_manifest(
    manifest: pd.DataFrame,
    load: ThumbnailLoader,
    *,
    reference_scanner: str | None = None,
    max_rotation_deg: float = 15.0,
) -> pd.DataFrame:
    """Register every slide onto its specimen's reference; the reference itself gets the identity."""
    references = choose_references(manifest, reference_scanner=reference_scanner)
    by_id = manifest.set_index("slide_id", drop=False)
    rows = []
    for specimen, group in tqdm(
        list(manifest.groupby("specimen_id", sort=True)), desc="register", unit="specimen"
    ):
        reference_id = references[str(specimen)]
        reference = load(by_id.loc[reference_id])
        for slide_id in sorted(group["slide_id"]):
            if slide_id == reference_id:
                transform, score = Transform(), 1.0
            else:
                transform, score = estimate_transform(
                    reference=reference, moving=load(by_id.loc[slide_id]), max_rotation_deg=max_rotation_deg
                )
            log.debug("%s -> %s: %s (score %.3f)", slide_id, reference_id, transform, score)
            rows.append(
                {
                    "slide_id": slide_id,
                    "specimen_id": str(specimen),
                    "reference_slide_id": reference_id,
                    "rotation_deg": transform.rotation_deg,
                    "tx": transform.tx,
                    "ty": transform.ty,
                    "scale": transform.scale,
                    "score": score,
                }
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_registration(table: pd.DataFrame, path: str | Path) -> None:
    """Write atomically (temporary name, then rename) so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    table.to_parquet(temporary, index=False)
    os.replace(temporary, path)


def load_registration(path: str | Path) -> dict[str, tuple[str, Transform]]:
    """slide_id -> (reference_slide_id, Transform) from a registration.parquet."""
    return registration_transforms(read_registration(path))


def read_registration(path: str | Path) -> pd.DataFrame:
    """The registration table, its columns checked (so a bad file fails before any training)."""
    table = pd.read_parquet(path)
    missing = [name for name in COLUMNS if name not in table.columns and name != "scale"]
    if missing:
        raise RegistrationError(f"{path}: missing column(s) {missing}")
    return table


def registration_transforms(table: pd.DataFrame) -> dict[str, tuple[str, Transform]]:
    """slide_id -> (reference_slide_id, Transform) of a table `read_registration` returned."""
    scale = table["scale"] if "scale" in table.columns else pd.Series(1.0, index=table.index)
    return {
        str(row.slide_id): (
            str(row.reference_slide_id),
            Transform(
                rotation_deg=float(row.rotation_deg), tx=float(row.tx), ty=float(row.ty), scale=float(s)
            ),
        )
        for row, s in zip(table.itertuples(index=False), scale, strict=True)
    }
