"""Cohort manifest and labels: load, validate (errors name file, row and column), join.

Manifest (CSV or Parquet): slide_id, path, patient_id, specimen_id, scanner, optional center and
mpp override. Labels (CSV or Parquet), keyed by patient_id: `label` and/or survival `time` and
`event`. Each validation error is a `CohortError` such as
"labels.csv line 7, column 'time': 'abc' is not a number".
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raypath.cohort.ids import unsafe_reason
from raypath.cohort.labels import load_labels
from raypath.cohort.manifest import load_manifest
from raypath.cohort.table import CohortError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cohort:
    """A validated manifest and its labels."""

    manifest: pd.DataFrame
    labels: pd.DataFrame

    @property
    def slides(self) -> pd.DataFrame:
        """One row per slide with its patient's labels (NA where the patient has none)."""
        return self.manifest.merge(self.labels, on="patient_id", how="left", suffixes=("", "_label"))

    @property
    def unlabelled_patients(self) -> set[str]:
        """Patients with slides but no row in the label table."""
        return set(self.manifest["patient_id"]) - set(self.labels["patient_id"])


def load_cohort(manifest: str | Path, labels: str | Path, *, check_files: bool = True) -> Cohort:
    """Load and cross-check both tables; labels must only name patients that have slides."""
    slides = load_manifest(manifest, check_files=check_files)
    table = load_labels(labels, patients=set(slides["patient_id"]))
    cohort = Cohort(manifest=slides, labels=table)
    if cohort.unlabelled_patients:
        log.warning(
            "%d patient(s) in %s have no labels: %s",
            len(cohort.unlabelled_patients),
            manifest,
            sorted(cohort.unlabelled_patients)[:10],
        )
    return cohort


__all__ = ["Cohort", "CohortError", "load_cohort", "load_labels", "load_manifest", "unsafe_reason"]
