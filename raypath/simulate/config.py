"""Feature-level cohort simulator settings (``raypath simulate``)."""

from pydantic import Field, model_validator

from raypath.config.base import StrictModel


class SimulateConfig(StrictModel):
    """Tile features = tissue + biological signal on tumour tiles, times a per-scanner scale,
    plus a per-scanner shift and per-scan noise; scans of the training split can be confounded."""

    n_specimens: int = Field(200, ge=4, description="one specimen per patient")
    scanners: list[str] = Field(default_factory=lambda: ["A", "B", "C"], min_length=1,
                                description="scanner names; every specimen is scanned on each")
    held_out_scanners: list[str] = Field(default_factory=list, description="scanned in test only")
    tiles: int = Field(128, ge=1, description="tiles per bag (same tissue locations on every scan)")
    dim: int = Field(256, ge=2, description="feature dimension (the encoder is named sim-<dim>)")
    n_classes: int = Field(2, ge=2)
    tissue_types: int = Field(8, ge=1, description="tile prototypes shared by all specimens")
    tissue_noise: float = Field(0.5, ge=0, description="tile-specific tissue variation (shared by scans)")
    tumour_fraction: float = Field(0.3, gt=0, le=1, description="share of tiles carrying the signal")
    label_strength: float = Field(1.5, ge=0, description="norm of the class direction on tumour tiles")
    survival_strength: float = Field(1.0, ge=0, description="norm of risk x survival direction")
    label_risk_coupling: float = Field(1.0, ge=0, description="how much the class shifts the risk")
    scanner_shift: float = Field(0.3, ge=0, description="per-dim std of each scanner's additive shift")
    scanner_tissue_shift: float = Field(
        0.0, ge=0, description="per-dim std of a shift per scanner AND tissue type (stain x tissue); "
                               "not removable by a per-scanner location/scale correction")
    scanner_scale: float = Field(0.2, ge=0, description="per-dim std of each scanner's gain around 1")
    noise: float = Field(1.0, ge=0, description="per-scan tile noise std")
    confounding: float = Field(
        0.0, ge=0, le=1, description="train/val: P(primary scanner is the label's scanner) beyond chance")
    paired_fraction: float = Field(
        1.0, ge=0, le=1, description="share of train/val specimens rescanned on every train scanner")
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.3, gt=0, lt=1)
    censoring: float = Field(0.3, ge=0, lt=1, description="approximate share of censored patients")
    extent_l0: int = Field(448, gt=0, description="tile side in level-0 pixels (coords only)")
    mpp: float = Field(0.25, gt=0)
    seed: int = Field(0, description="seed of every random draw")

    @model_validator(mode="after")
    def _consistent(self) -> "SimulateConfig":
        unknown = set(self.held_out_scanners) - set(self.scanners)
        if unknown:
            raise ValueError(f"held_out_scanners {sorted(unknown)} are not in scanners {self.scanners}")
        if len(self.held_out_scanners) == len(self.scanners):
            raise ValueError("at least one scanner must be used for training")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave specimens for training")
        return self

    @property
    def encoder(self) -> str:
        """Encoder name in the feature store: ``sim-<dim>``."""
        return f"sim-{self.dim}"
