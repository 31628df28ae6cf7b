"""The leakage audit every training command writes (`leakage.json`), logs to MLflow and the report shows.

Per split: patients, specimens, slides and the slides of each scanner. Checks: no patient and no
specimen in two splits (a rescan of a tissue in train and test would let a model recognise the
tissue), and no slide of a held-out scanner in train or val. Slides marked 'unused' (a held-out
scanner's scans of training patients) take part in no split. A failed check fails the run.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raypath.publish import write_text

SHOWN = 5
CHECKS = {"patients_in_several_splits": "patients in two splits",
          "specimens_in_several_splits": "specimens in two splits",
          "held_out_scanner_slides_in_train_or_val": "slides of a held-out scanner in train or val"}


class LeakageError(ValueError):
    """A split that lets test information into training; the message names the first ids."""


@dataclass(frozen=True)
class LeakageAudit:
    """Sizes per split, the held-out scanners, and the offending ids of each check (empty = passed)."""

    splits: dict[str, dict]
    held_out_scanners: list[str]
    violations: dict[str, list[str]]

    @property
    def passed(self) -> bool:
        return not any(self.violations.values())

    def check(self) -> None:
        """Raise `LeakageError` on the first failed check."""
        for name, ids in self.violations.items():
            if ids:
                raise LeakageError(f"leakage: {len(ids)} {CHECKS[name]}, e.g. {ids[:SHOWN]}")

    def describe(self) -> str:
        """One line for logs and the report."""
        parts = [f"{name} {s['patients']} patients / {s['specimens']} specimens / {s['slides']} slides"
                 for name, s in self.splits.items()]
        verdict = "no leakage" if self.passed else "LEAKAGE: " + "; ".join(
            f"{len(ids)} {CHECKS[n]}" for n, ids in self.violations.items() if ids)
        held = f"; held-out scanners {self.held_out_scanners} only in test" if self.held_out_scanners else ""
        return ", ".join(parts) + held + f": {verdict}"

    def to_dict(self) -> dict:
        """JSON-ready; each check keeps its count and the first ids."""
        checks = {name: {"count": len(ids), "first": ids[:20]} for name, ids in self.violations.items()}
        return {"splits": self.splits, "held_out_scanners": self.held_out_scanners, "passed": self.passed,
                "checks": checks}


def _sizes(rows: pd.DataFrame) -> dict:
    scanners = rows["scanner"].value_counts().sort_index()
    return {"patients": int(rows["patient_id"].nunique()), "specimens": int(rows["specimen_id"].nunique()),
            "slides": len(rows), "scanners": {str(k): int(v) for k, v in scanners.items()}}


def _in_several(slides: pd.DataFrame, column: str) -> list[str]:
    per = slides.groupby(column)["split"].nunique()
    return sorted(map(str, per[per > 1].index))


def audit_split(slides: pd.DataFrame, split: pd.Series, *, held_out: Sequence[str]) -> LeakageAudit:
    """Audit the split of `slides` (patient_id, specimen_id, scanner, slide_id per row)."""
    frame = slides[["slide_id", "patient_id", "specimen_id", "scanner"]].assign(split=split.to_numpy())
    used = frame[frame["split"] != "unused"]
    sizes = {name: _sizes(rows) for name, rows in frame.groupby("split", sort=False)}
    order = [s for s in ("train", "val", "test", "unused") if s in sizes]
    leaked = used[used["scanner"].isin(list(held_out)) & used["split"].isin(["train", "val"])]
    violations = {"patients_in_several_splits": _in_several(used, "patient_id"),
                  "specimens_in_several_splits": _in_several(used, "specimen_id"),
                  "held_out_scanner_slides_in_train_or_val": sorted(map(str, leaked["slide_id"]))}
    return LeakageAudit(splits={s: sizes[s] for s in order}, held_out_scanners=list(held_out),
                        violations=violations)


def audit_tags(audit: LeakageAudit) -> dict[str, str]:
    """The audit as MLflow tags: the verdict, and the whole audit as JSON (a few hundred bytes)."""
    return {"raypath.leakage": "passed" if audit.passed else "FAILED",
            "raypath.leakage.audit": json.dumps(audit.to_dict(), sort_keys=True)}


def write_audit(audit: LeakageAudit | dict, path: Path) -> Path:
    """`leakage.json` (written under a temporary name and renamed: never half a file)."""
    data = audit.to_dict() if isinstance(audit, LeakageAudit) else audit
    write_text(path, json.dumps(data, indent=2, sort_keys=True))
    return path
