"""Settings of `raypath register`: which manifest, where the table goes, how scans are compared, and
how the job runs on Ray (one task per specimen, resumable, coordinated like extraction)."""

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field

from raypath.config import LocalPath, RayJob, StrictModel
from raypath.units import MicronsPerPixel, Pixels

RESULT_FIELDS = {"reference_scanner", "thumbnail_mpp", "max_rotation_deg", "max_side", "weak_score", "refine"}
"""The fields that change a specimen's result (the rest say where and how the job runs)."""


class RefineConfig(StrictModel):
    """The fine stage: the thumbnail estimate corrected on tissue patches read at `mpp`."""

    enabled: bool = True
    mpp: MicronsPerPixel = Field(2.0, gt=0, le=2.0, description="microns per pixel of the patches")
    patch_px: Pixels = Field(256, ge=32, description="patch side in pixels at `mpp`")
    regions: int = Field(16, ge=2, description="patches read per scan, spread over the tissue")
    min_regions: int = Field(4, ge=2, description="patches that must agree, else the scan keeps the "
                                                  "thumbnail estimate and is flagged weak")
    passes: int = Field(2, ge=1, description="fits on the same patches, each from the previous fit")
    weak_residual_um: float = Field(4.0, gt=0, description="flag a scan whose RMS residual exceeds this")


class RegisterConfig(RayJob):
    """Registration of each specimen's scans onto its reference scan, as a Ray job over specimens."""

    manifest: LocalPath | None = Field(None, description="cohort manifest (CSV or Parquet); required to run")
    out: LocalPath | None = Field(None, description="registration.parquet to write; required to run")
    reference_scanner: str | None = Field(None, description="scanner whose scans are the references")
    thumbnail_mpp: float = Field(4.0, gt=0, description="microns per thumbnail pixel (at least half the "
                                                       "working pixel of the max_side comparison)")
    max_rotation_deg: float = Field(15.0, ge=0, le=180, description="rotation search range (+-)")
    max_side: Pixels = Field(1024, ge=64, description="thumbnails are compared at most this many px wide")
    reader: Literal["auto", "jpeg", "cucim", "openslide"] = Field(
        "auto", description="slide library, as in extraction's tiling.reader (auto = JPEG decoding where "
                            "every level is JPEG-tiled, else cuCIM, else OpenSlide)")
    weak_score: float = Field(0.5, ge=0, le=1, description="flag registrations scoring below this")
    refine: RefineConfig = RefineConfig()
    task_cpus: float = Field(1.0, gt=0, description="CPUs reserved per specimen task")
    max_attempts: int = Field(2, ge=1, description="tries per specimen when its worker dies")
    claims_dir: LocalPath | None = Field(
        None, description="directory where runs on one output claim specimens (local or NFS); "
                          "default: <work dir>/_claims")
    claim_lease_s: float = Field(300.0, gt=0, description="a run whose heartbeat is older than this is gone")
    run_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="name of this run's record dir under <work dir>/_runs/; default = timestamp")

    def work_dir(self) -> Path:
        """Per-specimen results, run records, failures.csv and claims: `<out without its suffix>/`
        (`registration.parquet` -> `registration/`; an `out` without a suffix gets `<out>_work/`)."""
        if self.out is None:
            raise ValueError("register needs `out`")
        return self.out.with_suffix("") if self.out.suffix else self.out.with_name(f"{self.out.name}_work")

    def settings_hash(self) -> str:
        """Short hash of every field that changes a specimen's result: results of other settings
        are never reused."""
        blob = json.dumps(self.model_dump(mode="json", include=RESULT_FIELDS), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
