"""Manifest -> one task per specimen (its reference scan and the scans to register onto it).

A task carries a digest of what it was computed from (its scans' ids, scanners and mpp overrides,
and the reference chosen), so a stored result is reused only for the same inputs: a specimen that
gains a scan, or whose reference changes, is registered again.
"""

import hashlib
import json
import math
from dataclasses import dataclass

import pandas as pd

from raypath.slides.registration.specimen import Scan
from raypath.slides.registration.store import choose_references


@dataclass(frozen=True)
class SpecimenTask:
    """One specimen to register: small and picklable, shipped to a Ray task."""

    specimen_id: str
    reference: Scan
    moving: tuple[Scan, ...]
    digest: str

    @property
    def slide_ids(self) -> list[str]:
        return [self.reference.slide_id, *(scan.slide_id for scan in self.moving)]


def _scan(row: dict) -> Scan:
    mpp = row.get("mpp")
    return Scan(slide_id=str(row["slide_id"]), path=str(row["path"]),
                mpp=math.nan if mpp is None or pd.isna(mpp) else float(mpp))


def _digest(group: pd.DataFrame, reference_id: str) -> str:
    rows = sorted((str(r["slide_id"]), str(r["scanner"]), "" if pd.isna(r["mpp"]) else repr(float(r["mpp"])))
                  for r in group.to_dict("records"))
    return hashlib.sha256(json.dumps([reference_id, rows]).encode()).hexdigest()[:12]


def plan_specimens(manifest: pd.DataFrame, *, reference_scanner: str | None) -> list[SpecimenTask]:
    """Every specimen of the manifest, sorted by id; moving scans sorted by slide id."""
    references = choose_references(manifest, reference_scanner=reference_scanner)
    tasks = []
    for specimen, group in manifest.groupby("specimen_id", sort=True):
        reference_id = references[str(specimen)]
        rows = {str(r["slide_id"]): r for r in group.to_dict("records")}
        moving = tuple(_scan(rows[s]) for s in sorted(rows) if s != reference_id)
        tasks.append(SpecimenTask(specimen_id=str(specimen), reference=_scan(rows[reference_id]),
                                  moving=moving, digest=_digest(group, reference_id)))
    return tasks
