"""registration.parquet: one row per slide with its transform onto its specimen's reference scan."""

import logging
from pathlib import Path

import pandas as pd

from raypath.publish import publish_file
from raypath.slides.registration.transform import Transform

log = logging.getLogger(__name__)
REQUIRED = ("slide_id", "specimen_id", "reference_slide_id", "rotation_deg", "tx", "ty", "score")
COLUMNS = (*REQUIRED[:6], "scale", "score", "residual_um", "regions", "weak")
"""residual_um: RMS distance (microns) of the fine stage's agreeing patches from its fit; regions: how
many agreed; weak: flagged (poor thumbnail match, too few agreeing patches or a large residual).
Tables written before the fine stage existed lack scale and these three, and are still read."""


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


def write_registration(table: pd.DataFrame, path: str | Path) -> None:
    """Write atomically (temporary name, then rename) so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    publish_file(path, lambda temporary: table.to_parquet(temporary, index=False))


def load_registration(path: str | Path) -> dict[str, tuple[str, Transform]]:
    """slide_id -> (reference_slide_id, Transform) from a registration.parquet."""
    return registration_transforms(read_registration(path))


def read_registration(path: str | Path) -> pd.DataFrame:
    """The registration table, its columns checked (so a bad file fails before any training)."""
    table = pd.read_parquet(path)
    missing = [name for name in REQUIRED if name not in table.columns]
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
