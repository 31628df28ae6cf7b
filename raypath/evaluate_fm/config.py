"""Settings of the FM robustness benchmark (`raypath evaluate-fm`, `jobs/evaluate_fm.py`)."""

from typing import Literal

from pydantic import Field, field_validator, model_validator

from raypath.config.base import LocalPath, Location, StrictModel, TrackingUri

Correction = Literal["none", "center", "combat"]
Level = Literal["tile", "slide"]
RIVariant = Literal["specimen", "raypath_k"]


class KnnConfig(StrictModel):
    """Robustness index: PathoROB's protocol by default (k grid 1-9, 11, 21, ... below ``k_cap``,
    k by kNN balanced accuracy, vote ties to the smallest label, same-slide neighbours excluded)."""

    k_cap: int = Field(600, gt=1,
                       description="PathoROB's grid stops below this (600 Camelyon/TCGA, 1000 Tolkach)")
    k: int | None = Field(None, ge=1,
                          description="report RI at this k instead of choosing it (PathoROB k_opt_param)")
    variants: list[RIVariant] = Field(
        default_factory=lambda: ["specimen"],
        description="raypath's extras reported beside: 'specimen' excludes same-specimen neighbours "
                    "(rescans); 'raypath_k' also uses raypath's grid and nearest-neighbour tie rule")
    raypath_k_grid: list[int] = Field(
        default_factory=lambda: [1, 3, 5, 7, 9, 11, 21, 31, 51, 75, 101, 151, 201], min_length=1,
        description="grid of the 'raypath_k' variant")
    max_samples: int | None = Field(None, gt=0, description="raypath: stratified (class x center) cap on "
                                                            "samples for millions of tiles; default all")
    query_block: int = Field(1024, gt=0, description="queries per similarity block")
    key_block: int = Field(65536, gt=0, description="keys per similarity block")

    @field_validator("raypath_k_grid")
    @classmethod
    def _positive_sorted(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError("every k must be ≥ 1")
        return sorted(set(value))


class APDConfig(StrictModel):
    """Average performance drop with PathoROB's protocol: a logistic probe (C by validation) on
    splits from balanced to fully class-center-correlated, reshuffled each iteration."""

    iterations: int = Field(20, ge=1, description="reshuffles of the slides of every cell (PathoROB: 20)")
    held_out_centers: list[str] = Field(
        default_factory=list, description="out-of-domain test centers, never trained on; empty = the last "
                                          "center (sorted) when there are three or more, else none")
    held_out_scanners: list[str] = Field(
        default_factory=list, description="scanners the probes never train or validate on (raypath); the "
                                          "cohort's declared ones (cohort.yaml) are added")
    min_test_slides: int = Field(2, ge=1, description="test slides left in the smallest cell; sets the "
                                                      "balanced slides per cell m")
    max_balanced_slides: int | None = Field(None, ge=1,
                                            description="cap on m (cost); default PathoROB's rule")
    seed: int = Field(1000, description="python random seed of the reshuffles (PathoROB: 1000)")


class ClusteringConfig(StrictModel):
    """Clustering score with PathoROB's protocol: every 2-class x 2-center subset, K by cosine
    silhouette, ARIs averaged over k-means runs."""

    k_min: int = Field(2, ge=2)
    k_max: int = Field(30, ge=2)
    silhouette_restarts: int = Field(20, ge=1, description="random k-means inits per K when choosing K")
    trials: int = Field(50, ge=1, description="k-means runs whose ARIs are averaged")
    trial_restarts: int = Field(5, ge=1, description="random inits per run")
    max_per_cell: int | None = Field(None, gt=0, description="random sample per (class, center) cell; "
                                                             "PathoROB's reduced sets hold 300-1,000")
    seed: int = Field(1337, description="k-means seed (run t uses seed + t; PathoROB: 1337)")

    @model_validator(mode="after")
    def _range(self) -> "ClusteringConfig":
        if self.k_max < self.k_min:
            raise ValueError(f"k_max {self.k_max} < k_min {self.k_min}")
        return self


class EvaluateFMConfig(StrictModel):
    """Feature store + cohort in, a per-FM robustness table, curves and plot out (and MLflow runs)."""

    features: Location | None = Field(None, description="feature-store root (required to run)")
    encoders: list[str] = Field(default_factory=list, description="FMs to evaluate; empty = all in the store")
    tiling_hash: str | None = Field(None, description="one tiling hash; default every hash found")
    manifest: LocalPath | None = Field(None, description="manifest.csv (required to run)")
    labels: LocalPath | None = Field(
        None, description="labels.csv with the biological class (required to run)")
    out: LocalPath | None = Field(None, description="report folder (required to run)")
    center: Literal["auto", "scanner", "center"] = Field(
        "auto", description="confounder column of the manifest: auto = the scanner (the center column only "
                            "when every slide has one scanner and a center); the report names the one used")
    tiles_per_slide: int | None = Field(64, gt=0, description="tiles sampled per slide; null = all")
    levels: list[Level] = Field(default_factory=lambda: ["tile", "slide"], min_length=1)
    corrections: list[Correction] = Field(default_factory=lambda: ["none", "center", "combat"], min_length=1)
    seed: int = 0
    workers: int | None = Field(None, ge=1, description="processes sharing the evaluations' clustering "
                                                       "scores and APDs (null = the cores this process "
                                                       "may use); results do not depend on it")
    knn: KnnConfig = KnnConfig()
    apd: APDConfig = APDConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    tracking: bool = Field(True, description="log to MLflow")
    tracking_uri: TrackingUri | None = Field(
        None, description="MLflow tracking URI (http://host:5000 or sqlite:///file.db); default sqlite:///<out>/mlflow.db")
    experiment: str = Field("fm-robustness", min_length=1)

    def require_paths(self) -> None:
        """The fields a run needs; checked at run time so a YAML can leave them to CLI flags."""
        missing = [name for name in ("features", "manifest", "labels", "out") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"evaluate-fm needs {', '.join(missing)} (config key or --{missing[0]} flag)")
