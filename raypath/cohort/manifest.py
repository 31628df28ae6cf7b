"""The slide manifest: which file is which slide, of which specimen and patient, from which scanner."""

import math
from pathlib import Path

import pandas as pd

from raypath.cohort.ids import unsafe_reason
from raypath.cohort.table import CohortError, Table, read_table
from raypath.paths import is_remote

REQUIRED = ("slide_id", "path", "patient_id", "specimen_id", "scanner")
OPTIONAL = ("center", "mpp")
ID_COLUMNS = ("slide_id", "patient_id", "specimen_id")


def _check_row(table: Table, index: int) -> None:
    row = table.rows[index]
    for column in REQUIRED:
        if not row[column]:
            raise table.fail(index, column, "empty value")
    for column in ID_COLUMNS:
        reason = unsafe_reason(row[column])
        if reason:
            raise table.fail(index, column, f"unsafe id {row[column]!r}: {reason}")


def _check_unique(table: Table) -> None:
    """Slide ids are file names downstream: exact and case-only duplicates both collide."""
    seen: dict[str, int] = {}
    specimen_patient: dict[str, tuple[str, int]] = {}
    for index, row in enumerate(table.rows):
        slide_id, folded = row["slide_id"], row["slide_id"].casefold()
        if folded in seen:
            first = table.rows[seen[folded]]["slide_id"]
            detail = "duplicate slide id" if first == slide_id else f"differs only by case from {first!r}"
            raise table.fail(
                index,
                "slide_id",
                f"{slide_id!r}: {detail} ({table.origins[seen[folded]]}); "
                "ids equal up to case collide on case-insensitive filesystems",
            )
        seen[folded] = index
        owner = specimen_patient.setdefault(row["specimen_id"], (row["patient_id"], index))
        if owner[0] != row["patient_id"]:
            raise table.fail(
                index,
                "patient_id",
                f"specimen {row['specimen_id']!r} already belongs to patient "
                f"{owner[0]!r} ({table.origins[owner[1]]})",
            )


def _resolve(table: Table, index: int, *, check_files: bool) -> str:
    raw = table.rows[index]["path"]
    if is_remote(raw):
        return raw
    path = Path(raw).expanduser()
    resolved = (path if path.is_absolute() else table.path.parent / path).resolve()
    if check_files and not resolved.is_file():
        raise table.fail(index, "path", f"slide file not found: {resolved}")
    return str(resolved)


def _mpp(table: Table, index: int) -> float:
    text = table.rows[index].get("mpp", "")
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise table.fail(index, "mpp", f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise table.fail(index, "mpp", f"{text!r} must be a positive number of microns per pixel")
    return value


def load_manifest(path: str | Path, *, check_files: bool = True) -> pd.DataFrame:
    """Validated manifest: slide_id, path (absolute), patient_id, specimen_id, scanner, center, mpp.

    Relative paths resolve against the manifest's own directory, so a cohort folder can move.
    `center` is NA when absent; `mpp` (a level-0 override for files without one) is NaN when
    absent. Extra columns are kept as strings.
    """
    table = read_table(path)
    table.require(REQUIRED)
    if not table.rows:
        raise CohortError(f"{table.path}: no slides listed")
    for index in range(len(table.rows)):
        _check_row(table, index)
    _check_unique(table)
    records = []
    for index, row in enumerate(table.rows):
        record = {**row, "path": _resolve(table, index, check_files=check_files), "mpp": _mpp(table, index)}
        record["center"] = row.get("center") or pd.NA
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    ordered = [*REQUIRED, *OPTIONAL]
    frame = frame[ordered + [c for c in frame.columns if c not in ordered]]
    return frame.astype({"mpp": "float64", "center": "string"})
