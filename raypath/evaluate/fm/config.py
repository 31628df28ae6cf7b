"""Settings of the FM robustness benchmark (`raypath evaluate-fm`, `jobs/evaluate_fm.py`)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raypath.config.base import StrictModel

Correction = Literal["none", "center", "combat"]
Level = Literal["tile", "slide"]


class KnnConfig(StrictModel):
    """Robustness index: exact blocked cosine kNN, on a stratified tile sample when n is large."""

    k_grid: list[int] = Field(default_factory=lambda: [1, 3, 5, 7, 9, 11, 21, 31, 51, 75, 101],
                              min_length=1, description="candidate k; the best kNN balanced accuracy wins")
    max_samples: int | None = Field(20000, gt=0, description="stratified (class × center) cap on samples")
    query_block: int = Field(1024, gt=0, description="queries per similarity block")
    key_block: int = Field(65536, gt=0, description="keys per similarity block")

    @field_validator("k_grid")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError("every k must be ≥ 1")
        return sorted(set(value))


class APDConfig(StrictModel):
    """Average performance drop: a logistic probe on increasingly class–center-correlated splits."""

    n_splits: int = Field(5, ge=1, description="correlated splits s = 1..S after the balanced split 0")
    max_strength: float = Field(0.9, gt=0, lt=1, description="share of a class moved to its center at s=S")
    test_fraction: float = Field(0.3, gt=0, lt=1, description="share of patients held out for testing")
    repeats: int = Field(3, ge=1, description="patient partitions (and held-out centers) averaged")
    regularisation: float = Field(1.0, gt=0, description="inverse L2 strength C of the probe")
    max_samples: int | None = Field(20000, gt=0, description="cap on tile rows (whole slides kept)")


class ClusteringConfig(StrictModel):
    """Clustering score: k-means with K by silhouette."""

    k_min: int = Field(2, ge=2)
    k_max: int = Field(10, ge=2)
    restarts: int = Field(5, ge=1, description="k-means initialisations per K")
    max_samples: int | None = Field(5000, gt=0, description="stratified cap on clustered samples")
    silhouette_samples: int = Field(2000, gt=1, description="samples used to score each K")

    @model_validator(mode="after")
    def _range(self) -> "ClusteringConfig":
        if self.k_max < self.k_min:
            raise ValueError(f"k_max {self.k_max} < k_min {self.k_min}")
        return self


class EvaluateFMConfig(StrictModel):
    """Feature store + cohort in, a per-FM robustness table, curves and plot out (and MLflow runs)."""

    features: str | None = Field(None, description="feature-store root (required to run)")
    encoders: list[str] = Field(default_factory=list, description="FMs to evaluate; empty = all in the store")
    tiling_hash: str | None = Field(None, description="one tiling hash; None = every hash found")
    manifest: Path | None = Field(None, description="manifest.csv (required to run)")
    labels: Path | None = Field(None, description="labels.csv with the biological class (required to run)")
    out: Path | None = Field(None, description="report folder (required to run)")
    center: Literal["auto", "scanner", "center"] = Field(
        "auto", description="confounder: the manifest's center column where set, else the scanner")
    tiles_per_slide: int | None = Field(64, gt=0, description="tiles sampled per slide; None = all")
    levels: list[Level] = Field(default_factory=lambda: ["tile", "slide"], min_length=1)
    corrections: list[Correction] = Field(default_factory=lambda: ["none", "center", "combat"], min_length=1)
    seed: int = 0
    knn: KnnConfig = KnnConfig()
    apd: APDConfig = APDConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    tracking: bool = Field(True, description="log to MLflow")
    tracking_uri: str | None = Field(None, description="MLflow URI; None = sqlite under the report folder")
    experiment: str = Field("fm-robustness", min_length=1)

    def require_paths(self) -> None:
        """The fields a run needs; checked at run time so a YAML can leave them to CLI flags."""
        missing = [name for name in ("features", "manifest", "labels", "out") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"evaluate-fm needs {', '.join(missing)} (config key or --{missing[0]} flag)")
