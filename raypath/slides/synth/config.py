"""Settings of `raypath synth`: the size, biology, scanners and confounding of a synthetic cohort."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from raypath.config.base import StrictModel


class SynthConfig(StrictModel):
    """One synthetic multi-scanner cohort; the same config and seed always write the same files.

    Split and confounding: round(test_fraction * n) specimens of each label (one specimen per
    patient) go to the test split, round(val_fraction * n) to val, the rest to train. Test specimens
    are scanned by every scanner. A train or val specimen (model selection happens in the same
    confounded world the model is trained in) is, with probability `confounding`, scanned *only* by
    the scanner tied to its label (among the training scanners: `scanners` without
    `held_out_scanners`; negatives on the first, positives on the second, ...), else by every
    training scanner. At 1.0 the scanner gives the train label away; the fully crossed test split
    (every scanner, held-out ones included) then shows whether a model learned the shortcut.
    """

    seed: int = Field(0, description="seed of every random draw: same seed and config, same files")
    specimens: int = Field(4, ge=1, description="number of specimens, one per patient")
    scanners: list[str] = Field(default_factory=lambda: ["aperio-gt450", "hamamatsu-s360"], min_length=1,
                                description="scanner profiles; every specimen is scanned on each")
    field_um: tuple[float, float] = Field((1024.0, 1024.0), description="scanned glass area (w, h), microns")
    magnification: Literal[20, 40] = Field(20, description="20x scans use twice the profile's 40x mpp")
    mpp: dict[str, float] = Field(default_factory=dict, description="level-0 mpp per scanner (override)")
    positive_fraction: float = Field(0.5, ge=0, le=1, description="share of specimens with tumour")
    classes: int = Field(2, ge=2, description="2 = binary; more = tumour grades 1..classes-1")
    test_fraction: float = Field(0.5, ge=0, le=1, description="share of each label in the test split")
    val_fraction: float = Field(0.0, ge=0, le=1, description="share of each label in the val split")
    confounding: float = Field(0.0, ge=0, le=1, description="train/val: probability that a specimen is "
                                                            "scanned only by its label's scanner")
    held_out_scanners: list[str] = Field(
        default_factory=list, description="scanners that scan test specimens only (never seen in training)")
    scanner_strength: float = Field(
        1.0, ge=0, description="multiplies every profile's stain, tone and brightness deviation from neutral")
    tumour_contrast: float = Field(
        1.0, ge=0, le=1, description="how different tumour tissue looks (nuclei, stain): 1 = as designed")
    tumour_burden: tuple[float, float] = Field(
        (0.1, 0.5), description="range of the tumour share of a positive specimen's tissue (drawn uniformly)")
    max_rotation_deg: float = Field(5.0, ge=0, le=180, description="tissue rotation on glass per scan")
    max_shift_um: float = Field(40.0, ge=0, description="tissue shift on glass per scan and axis")
    base_hazard: float = Field(1 / 60, gt=0, description="events per month of a tumour-free specimen")
    burden_effect: float = Field(3.0, description="log hazard ratio per unit tumour burden")
    grade_effect: float = Field(0.4, description="log hazard ratio per tumour grade")
    followup_months: float = Field(120.0, gt=0, description="censoring time ~ Uniform(0, this)")
    jpeg_quality: int | None = Field(None, ge=1, le=100, description="override every profile's quality")
    workers: int | None = Field(None, ge=1, description="processes writing slides; default min(cpus, slides)")
    stripe_px: int = Field(1024, gt=0, multiple_of=1024, description="level-0 rows rendered at once")

    @field_validator("scanners")
    @classmethod
    def _known_unique(cls, scanners: list[str]) -> list[str]:
        from raypath.slides.synth.scanners import PROFILES

        unknown = [name for name in scanners if name not in PROFILES]
        if unknown:
            raise ValueError(f"unknown scanner profiles {unknown}; known: {sorted(PROFILES)}")
        if len(set(scanners)) != len(scanners):
            raise ValueError(f"scanners listed twice: {scanners}")
        return scanners

    @model_validator(mode="after")
    def _held_out_listed(self) -> "SynthConfig":
        stray = sorted(set(self.held_out_scanners) - set(self.scanners))
        if stray:
            raise ValueError(f"held_out_scanners {stray} are not in `scanners`")
        if len(self.held_out_scanners) >= len(self.scanners):
            raise ValueError("at least one scanner must scan training specimens")
        low, high = self.tumour_burden
        if not 0 < low <= high < 1:
            raise ValueError(f"tumour_burden must satisfy 0 < low <= high < 1, got {self.tumour_burden}")
        return self

    @model_validator(mode="after")
    def _mpp_for_listed(self) -> "SynthConfig":
        stray = sorted(set(self.mpp) - set(self.scanners))
        if stray:
            raise ValueError(f"mpp given for scanners not in `scanners`: {stray}")
        if any(value <= 0 for value in self.mpp.values()):
            raise ValueError(f"mpp values must be positive: {self.mpp}")
        return self

    @model_validator(mode="after")
    def _splits_fit(self) -> "SynthConfig":
        if self.test_fraction + self.val_fraction > 1:
            raise ValueError(f"test_fraction + val_fraction exceed 1 "
                             f"({self.test_fraction} + {self.val_fraction})")
        return self
