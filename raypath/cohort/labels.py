"""The label table, keyed by patient: class label and/or survival time and event."""

import math
from pathlib import Path

import pandas as pd

from raypath.cohort.ids import unsafe_reason
from raypath.cohort.table import CohortError, Table, read_table

TARGETS = ("label", "time", "event")


def _number(table: Table, index: int, column: str) -> float:
    text = table.rows[index][column]
    if not text:
        raise table.fail(index, column, "empty value")
    try:
        value = float(text)
    except ValueError:
        raise table.fail(index, column, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise table.fail(index, column, f"{text!r} is not a finite number")
    return value


def _parse(table: Table, index: int) -> dict[str, object]:
    row = table.rows[index]
    parsed: dict[str, object] = {**row}
    if "label" in table.columns:
        value = _number(table, index, "label")
        if not value.is_integer():
            raise table.fail(index, "label", f"{row['label']!r} is not an integer class")
        parsed["label"] = int(value)
    if "time" in table.columns:
        parsed["time"] = _number(table, index, "time")
        if parsed["time"] < 0:
            raise table.fail(index, "time", f"{row['time']!r} is negative")
    if "event" in table.columns:
        value = _number(table, index, "event")
        if value not in (0.0, 1.0):
            raise table.fail(index, "event", f"{row['event']!r} must be 0 (censored) or 1 (event)")
        parsed["event"] = int(value)
    return parsed


def _check_columns(table: Table) -> None:
    table.require(("patient_id",))
    present = [name for name in TARGETS if name in table.columns]
    if not present:
        raise CohortError(
            f"{table.path}: needs a 'label' column and/or 'time' and 'event'; has {table.columns}"
        )
    if ("time" in present) != ("event" in present):
        missing = "event" if "time" in present else "time"
        raise CohortError(f"{table.path}: missing column ['{missing}'] (survival needs both time and event)")


def load_labels(path: str | Path, *, patients: set[str] | None = None) -> pd.DataFrame:
    """Validated labels, one row per patient: patient_id and any of label (int), time (float), event (0/1).

    With `patients` (the manifest's), a label for a patient without slides is an error: it is
    almost always a mistyped id, and silently dropping it would shrink the cohort unnoticed.
    """
    table = read_table(path)
    _check_columns(table)
    seen: dict[str, int] = {}
    records = []
    for index, row in enumerate(table.rows):
        patient = row["patient_id"]
        if not patient:
            raise table.fail(index, "patient_id", "empty value")
        reason = unsafe_reason(patient)
        if reason:
            raise table.fail(index, "patient_id", f"unsafe id {patient!r}: {reason}")
        if patient in seen:
            raise table.fail(
                index, "patient_id", f"duplicate patient {patient!r} ({table.origins[seen[patient]]})"
            )
        seen[patient] = index
        if patients is not None and patient not in patients:
            raise table.fail(
                index, "patient_id", f"label for unknown patient {patient!r} (not in the manifest)"
            )
        records.append(_parse(table, index))
    frame = pd.DataFrame.from_records(records, columns=table.columns)
    types = {"label": "int64", "time": "float64", "event": "int64"}
    return frame.astype({k: v for k, v in types.items() if k in frame.columns})
