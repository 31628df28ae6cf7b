"""Settings of `raypath predict` (`jobs/predict.py`): which model, which slides, where results go."""

from typing import Any

from pydantic import Field

from raypath.config import LocalPath, Location, RayJob, TrackingUri


class PredictConfig(RayJob):
    """A model + a manifest of new slides -> per-slide predictions, attention and heatmaps."""

    model: Location | None = Field(
        None, description="models:/<name>@<alias>, models:/<name>/<version>, runs:/<run id>/model or a local "
                          "model directory (required)")
    manifest: LocalPath | None = Field(None, description="manifest of the slides to predict (required)")
    out: LocalPath | None = Field(None, description="output directory (required)")
    features: Location | None = Field(None, description="feature-store root to reuse and to extend; "
                                                         "default: <out>/features")
    checkpoint: Location | None = Field(
        None, description="local FM checkpoint for extracting missing features; its weights must be the ones "
                          "the model was trained on")
    tracking_uri: TrackingUri | None = Field(
        None, description="MLflow tracking URI that resolves models:/ and runs:/ (the store the model was "
                          "logged to, e.g. sqlite:///<sweep out>/mlflow.db)")
    heatmaps: list[str] = Field(default_factory=list, description="slide ids to draw attention heatmaps for")
    heatmap_top: int = Field(0, ge=0, description="also draw the N highest-scoring slides")
    thumbnail_mpp: float = Field(16.0, gt=0, description="coarsest microns per pixel of the slide under "
                                                         "heatmaps (finer when the tiles span < 400 px)")
    concurrency: int = Field(1, ge=1, description="prediction actors (each holds the model once)")
    slides_per_batch: int = Field(8, ge=1, description="slides per Ray Data batch")
    extract: dict[str, Any] = Field(
        default_factory=dict, description="extraction settings for missing features (ExtractConfig keys)")

    def require(self) -> None:
        """The fields a run needs; checked at run time so a YAML may leave them to flags."""
        missing = [name for name in ("model", "manifest", "out") if getattr(self, name) is None]
        if missing:
            raise ValueError(f"predict needs {', '.join(missing)} (config key or --{missing[0]} flag)")

    def feature_root(self) -> str:
        return self.features or str((self.out / "features").resolve())
