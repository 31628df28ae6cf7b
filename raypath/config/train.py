"""Training config for one robust MIL model (``raypath train``, and each sweep trial)."""

from typing import Literal

from pydantic import Field, model_validator

from raypath.config.base import StrictModel


class ModelConfig(StrictModel):
    """MIL backbone and head sizes."""

    kind: Literal["gated", "mean"] = "gated"
    hidden: int = Field(128, gt=0, description="tile projection / slide embedding width")
    attention_dim: int = Field(64, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    projection_dim: int | None = Field(64, gt=0, description="contrastive projection head; None = none")


class LossConfig(StrictModel):
    """Robustness loss weights λ_j (0 = off and not computed) and their settings."""

    infonce: float = Field(0.0, ge=0)
    score_consistency: float = Field(0.0, ge=0)
    tile_consistency: float = Field(0.0, ge=0)
    attention_agreement: float = Field(0.0, ge=0)
    adversarial: float = Field(0.0, ge=0)
    tau: float = Field(0.1, gt=0, description="InfoNCE temperature")
    tile_mode: Literal["cosine", "infonce"] = "cosine"

    def weights(self) -> dict[str, float]:
        """Weights by registered loss name."""
        return {name: getattr(self, name) for name in
                ("infonce", "score_consistency", "tile_consistency", "attention_agreement", "adversarial")}


class OptimizerConfig(StrictModel):
    """AdamW settings."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)


class EarlyStoppingConfig(StrictModel):
    """Stop when the validation metric has not improved for `patience` epochs; keep the best."""

    enabled: bool = True
    metric: Literal["auto", "auc", "c_index", "loss"] = Field(
        "auto", description="auto = auc for classification, c_index for survival")
    patience: int = Field(5, ge=1)
    min_delta: float = Field(0.0, ge=0)


class SplitConfig(StrictModel):
    """Patient-grouped, label-stratified splits, or a predefined `split` column."""

    source: Literal["random", "column"] = Field(
        "random", description="column = use the slides' 'split' column (e.g. the simulator's splits.csv)")
    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.2, ge=0, lt=1)
    held_out_scanner: str | None = Field(
        None, description="leave-one-scanner-out: never trained or validated on; tested separately")

    @model_validator(mode="after")
    def _fractions(self) -> "SplitConfig":
        if self.train + self.val >= 1:
            raise ValueError(f"train ({self.train}) + val ({self.val}) must leave a test fraction")
        return self


class TrainConfig(StrictModel):
    """Everything one training run needs besides the data and the seed."""

    task: Literal["binary", "multiclass", "survival"] = "binary"
    model: ModelConfig = ModelConfig()
    losses: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    epochs: int = Field(20, ge=1)
    batch_specimens: int = Field(16, ge=1, description="K specimens per step, each with all its scans")
    max_tiles: int | None = Field(None, gt=0, description="random tiles per bag per epoch in training")
    eval_max_tiles: int | None = Field(None, gt=0, description="deterministic tiles per bag in eval")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    split: SplitConfig = SplitConfig()
    correction: Literal["none", "center", "combat"] = "none"
    threshold: float = Field(0.5, description="decision threshold on probabilities (binary flip rate)")
    eval_batch_bags: int = Field(128, ge=1)
    num_threads: int | None = Field(None, ge=1, description="torch threads; None = leave as is")
    robustness_k: int = Field(10, ge=1, description="neighbours of the robustness index")
