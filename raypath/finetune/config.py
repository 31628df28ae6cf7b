"""Settings of `raypath finetune` (`jobs/finetune.py`): the FM and its adapters, the MIL head and
losses (the training config's own sections), tile sampling, and the data-parallel run."""

from typing import Literal

from pydantic import Field, field_validator

from raypath.config import LocalPath, Location, RayJob, StrictModel, TrackingUri
from raypath.distributed.config import DistributedConfig
from raypath.encoders.lora import LoraSettings
from raypath.encoders.registry import get_card
from raypath.mil.config import LossConfig, ModelConfig
from raypath.mil.registry import LOSSES
from raypath.slides.config import TilingConfig
from raypath.train.config import EarlyStoppingConfig, OptimizerConfig, SplitConfig, TrainConfig


class TileSourceConfig(StrictModel):
    """Where a step's tile pixels come from."""

    source: Literal["slides", "cache"] = Field(
        "slides", description="slides = read each sampled tile from the slide (extraction's reader); cache "
                              "= one uint8 .npy of all tissue tiles per slide, written once, memory-mapped")
    cache_dir: Location | None = Field(None, description="tile cache directory; default <output_dir>/tiles")
    open_slides: int = Field(16, ge=1, description="slide readers each worker keeps open")


class TrackingConfig(StrictModel):
    """MLflow: where the run is logged and the name the model is registered under."""

    uri: TrackingUri | None = Field(
        None, description="MLflow tracking URI (http://host:5000 or sqlite:///file.db); default sqlite:///<out>/mlflow.db")
    model_name: str | None = Field(None, description="registered model name; default raypath-finetune-<name>")
    alias: str = Field("champion", description="alias pointed at the new version")


class FinetuneConfig(RayJob):
    """LoRA on the FM's attention projections + a robust MIL head, trained end to end from tiles."""

    manifest: LocalPath | None = Field(None, description="cohort manifest (required)")
    labels: LocalPath | None = Field(None, description="labels.csv keyed by patient_id (required)")
    splits: LocalPath | None = Field(
        None, description="splits.csv (patient_id, split): the split used, before the labels' split column")
    registration: LocalPath | None = Field(
        None, description="registration.parquet: registered tile pairs for the tile-level losses")
    output_dir: LocalPath | None = Field(
        None, description="tile plan, tile cache, Ray Train runs, MLflow (required)")
    name: str = Field("finetune", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="run name: a rerun of the same name resumes from its latest checkpoint")
    encoder: str = Field("tiny-uni", description="model-card name of the FM (raypath models)")
    checkpoint: Location | None = Field(
        None, description="local FM checkpoint; default the card's hub weights")
    seed: int = 0
    lora: LoraSettings = LoraSettings()
    task: Literal["binary", "multiclass", "survival"] = "binary"
    model: ModelConfig = ModelConfig()
    losses: LossConfig = LossConfig()
    fm_tile_consistency: float = Field(
        0.0, ge=0, description="weight of the cosine distance between the FM's own embeddings of registered "
                               "tile pairs (needs registration)")
    optimizer: OptimizerConfig = OptimizerConfig(lr=1e-4)
    split: SplitConfig = SplitConfig()
    epochs: int = Field(2, ge=1, description="maximum epochs (early stopping may end sooner)")
    specimens_per_step: int = Field(
        4, ge=1, description="specimens per step and worker, each with all its scans")
    tiles_per_scan: int = Field(
        16, ge=1, description="tiles sampled per scan per step (registered pairs kept)")
    eval_tiles: int | None = Field(
        None, gt=0, description="evenly spaced tiles per slide at evaluation; default all")
    threshold: float = Field(0.5, description="decision threshold on probabilities (binary)")
    early_stopping: EarlyStoppingConfig = Field(
        EarlyStoppingConfig(), description="validated every epoch, the MIL engine's rule; the best epoch is "
                                           "the model")
    robustness_k: int = Field(10, ge=1, description="neighbours of the robustness index")
    tiling: TilingConfig = TilingConfig()
    tiles: TileSourceConfig = TileSourceConfig()
    autocast_bf16: bool = Field(True, description="bfloat16 autocast of the FM forward (GPU workers only)")
    gradient_checkpointing: Literal["auto", "on", "off"] = Field(
        "auto", description="recompute FM activations in backward; auto = on GPU workers only")
    distributed: DistributedConfig = DistributedConfig()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("encoder")
    @classmethod
    def _known_encoder(cls, name: str) -> str:
        get_card(name)
        return name

    def require(self) -> None:
        """The inputs a run needs; checked at run time so a YAML may leave paths to flags."""
        missing = [n for n in ("manifest", "labels", "output_dir") if getattr(self, n) is None]
        if missing:
            flag = missing[0].replace("_", "-")
            raise ValueError(f"finetune needs {', '.join(missing)} (config key or --{flag})")
        weights = self.losses.weights()
        pairs = [n for n, spec in LOSSES.items() if spec.needs_tile_pairs and weights[n]]
        pairs += ["fm_tile_consistency"] if self.fm_tile_consistency else []
        if pairs and self.registration is None:
            raise ValueError(f"{pairs} need registered tile pairs: set registration (--registration "
                             "registration.parquet) or their weights to 0")
        if self.tiling.grid == "reference" and self.registration is None:
            raise ValueError("tiling.grid: reference needs registration (--registration "
                             "registration.parquet)")

    def train_config(self) -> TrainConfig:
        """The training config the MIL pieces (splits, batches, head, losses), early stopping and the
        evaluation functions are run with."""
        return TrainConfig(task=self.task, model=self.model, losses=self.losses, optimizer=self.optimizer,
                           split=self.split, epochs=self.epochs, batch_specimens=self.specimens_per_step,
                           max_tiles=self.tiles_per_scan, eval_max_tiles=self.eval_tiles,
                           threshold=self.threshold, early_stopping=self.early_stopping,
                           robustness_k=self.robustness_k)

    def loss_weights(self) -> dict[str, float]:
        """The robustness loss weights, plus the FM-level tile loss."""
        return {**self.losses.weights(), "fm_tile_consistency": self.fm_tile_consistency}
