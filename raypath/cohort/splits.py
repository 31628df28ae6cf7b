"""A splits file: patient_id, split (train / val / test), one row per patient, validated row by row.

The same rules hold for a `split` column in the label table; which split a run uses is decided by
`raypath.train.split_policy`.
"""

from pathlib import Path

import pandas as pd

from raypath.cohort.table import CohortError, read_table

SPLITS = ("train", "val", "test")


def load_splits(path: str | Path) -> pd.DataFrame:
    """(patient_id, split) per patient; a bad row fails naming file, line and column."""
    table = read_table(path)
    table.require(("patient_id", "split"))
    seen: dict[str, int] = {}
    for index, row in enumerate(table.rows):
        patient, split = row["patient_id"], row["split"]
        if not patient:
            raise table.fail(index, "patient_id", "empty value")
        if split not in SPLITS:
            raise table.fail(index, "split", f"{split!r} is not one of {list(SPLITS)}")
        if patient in seen:
            raise table.fail(index, "patient_id",
                             f"duplicate patient {patient!r} ({table.origins[seen[patient]]})")
        seen[patient] = index
    return pd.DataFrame({"patient_id": [r["patient_id"] for r in table.rows],
                         "split": [r["split"] for r in table.rows]}, dtype=str)


def check_split_values(assignment: pd.DataFrame, *, origin: str, shown: int = 5) -> None:
    """Every row names a known split (a label table's `split` column may hold anything)."""
    bad = assignment.loc[~assignment["split"].isin(SPLITS)]
    if len(bad):
        examples = [f"{p}={s!r}" for p, s in bad[["patient_id", "split"]].head(shown).itertuples(index=False)]
        raise CohortError(f"{origin}: {len(bad)} patients have a split other than {list(SPLITS)}, "
                          f"e.g. {examples}")
