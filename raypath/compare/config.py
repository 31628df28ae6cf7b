"""Compare config: which sweep to read back from MLflow, what to tabulate, plot and register."""

from pathlib import Path

from pydantic import Field

from raypath.config.base import LocalPath, StrictModel, default_tracking_uri
from raypath.sweep.config import ObjectiveConfig, TrackingConfig


class HeatmapConfig(StrictModel):
    """Attention heatmaps of a few test specimens: rows = models, columns = scanners."""

    specimens: int = Field(3, ge=0, description="0 = no heatmaps")
    manifest: LocalPath | None = Field(
        None, description="manifest.csv with slide paths: draw over thumbnails")
    thumbnail_mpp: float = Field(16.0, gt=0, description="coarsest microns per pixel of the slide under "
                                                         "heatmaps (finer when the tiles span < 400 px)")


class CompareConfig(StrictModel):
    """Everything `raypath compare` needs; defaults read the sweep's embedded MLflow store."""

    sweep_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    fms: list[str] | None = Field(None, description="default: every FM the sweep recorded")
    output_dir: LocalPath = Field(Path("runs/sweeps"), validate_default=True,
                                  description="the sweep's --out (output_dir): its MLflow store mlflow.db "
                                              "unless --tracking-uri, and the default report location")
    out: LocalPath | None = Field(None, description="report directory; default <sweep-dir>/<sweep_id>-report")
    tracking: TrackingConfig = TrackingConfig()
    objectives: list[ObjectiveConfig] = Field(
        default_factory=lambda: [
            ObjectiveConfig(metric="val/auc", mode="max"),
            ObjectiveConfig(metric="val/score_spread", mode="min"),
        ],
        min_length=1,
    )
    top_k: int = Field(1, ge=1, description="robust configurations shown next to the baseline")
    accuracy_tolerance: float = Field(
        0.02, ge=0, description="robust configs may lose this much accuracy (the sweep's "
                                "replicates.accuracy_tolerance)")
    tie_tolerance: float = Field(
        1e-3, ge=0, description="selection metrics closer than this are ties (float noise, not evidence); "
                                "ties go to the lower loss-weight sum, then the config key")
    ci_level: float = Field(0.95, gt=0, lt=1)
    min_replicates: int = Field(
        3, ge=2, description="finite values a cell needs for an interval; fewer: the mean alone, with a note")
    register_model: bool = Field(
        True, description="register the best robust model per FM in the MLflow registry"
    )
    heatmaps: HeatmapConfig = HeatmapConfig()

    def tracking_uri(self) -> str:
        return self.tracking.uri or default_tracking_uri(self.output_dir)

    def report_dir(self) -> Path:
        return self.out or self.output_dir / f"{self.sweep_id}-report"
