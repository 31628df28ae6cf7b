"""Settings of `raypath register`: which manifest, where the table goes, how thumbnails are compared."""

from typing import Literal

from pydantic import Field

from raypath.config.base import LocalPath, StrictModel


class RegisterConfig(StrictModel):
    """Registration of each specimen's scans onto its reference scan, from thumbnails."""

    manifest: LocalPath | None = Field(None, description="cohort manifest (CSV or Parquet); required to run")
    out: LocalPath | None = Field(None, description="registration.parquet to write; required to run")
    reference_scanner: str | None = Field(None, description="scanner whose scans are the references")
    thumbnail_mpp: float = Field(4.0, gt=0, description="microns per thumbnail pixel")
    max_rotation_deg: float = Field(15.0, ge=0, le=180, description="rotation search range (+-)")
    reader: Literal["auto", "cucim", "openslide"] = "auto"
    weak_score: float = Field(0.5, ge=0, le=1, description="warn about registrations scoring below this")
