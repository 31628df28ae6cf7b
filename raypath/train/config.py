"""Training config for one robust MIL model (``raypath train``, and each sweep trial)."""

from typing import Literal

from pydantic import Field, model_validator

from raypath.config import Location, StrictModel
from raypath.metrics.limits import MetricLimits
from raypath.mil.config import LossConfig, ModelConfig


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
    """Which patients train, validate and test (`raypath.train.split_policy` decides, the same way in
    every command): a given split first (a splits file, else the labels' `split` column), a random
    patient-grouped, label-stratified one only when asked for or when none is given (then said in the
    log, MLflow and the report), or k folds. Held-out scanners are never trained or validated on.

    The split has its own seed: training seeds (initialisation, batch order) never move a patient
    between train, validation and test, so seed replicates compare models on one fixed split.
    """

    source: Literal["auto", "column", "random", "folds"] = Field(
        "auto", description="auto = column when a split is given, else random; column = the given split "
                            "(a splits file, else the labels' 'split' column); random = patient-grouped "
                            "fractions even when a split is given; folds = patient-level stratified k-fold "
                            "(test = fold `fold`, val = the next)")
    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.2, ge=0, lt=1)
    seed: int = Field(0, description="seed of the patient split, independent of training seeds")
    folds: int = Field(5, ge=3, description="number of folds when source is 'folds'")
    fold: int = Field(0, ge=0, description="the test fold when source is 'folds'")
    held_out_scanners: list[str] = Field(
        default_factory=list, description="leave-scanner-out: never trained or validated on, tested apart; "
                                          "added to the ones the cohort declares (cohort.yaml)")

    @model_validator(mode="after")
    def _fractions(self) -> "SplitConfig":
        if self.train + self.val >= 1:
            raise ValueError(f"train ({self.train}) + val ({self.val}) must leave a test fraction")
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} does not exist with {self.folds} folds (0..{self.folds - 1})")
        return self


class CacheConfig(StrictModel):
    """The node-local feature cache every training process reads (`raypath.mil.cache`)."""

    dir: Location | None = Field(
        None, description="node-local directory ('{node}' becomes the Ray node id: one cache per node "
                          "even on a shared path); default <output_dir>/cache")
    storage: Literal["float16", "bfloat16", "float32"] = Field(
        "float16", description="feature precision on disk and in the page cache; compute is float32")


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
    correction_tiles: int = Field(1024, ge=1, description="tiles per training slide the correction is fit on")
    correction_covariates: list[str] | None = Field(
        None, description="ComBat: per-patient columns protected as categorical biological covariates "
                          "(neuroCombat categorical_cols); default ['label'] for binary/multiclass, none for "
                          "survival")
    correction_continuous: list[str] = Field(
        default_factory=list, description="ComBat: continuous covariates protected (neuroCombat "
                                          "continuous_cols), e.g. age")
    threshold: float = Field(0.5, description="decision threshold on probabilities (binary flip rate)")
    eval_batch_bags: int = Field(128, ge=1)
    eval_batch_tiles: int = Field(262144, ge=1, description="cap on padded tiles per eval batch (memory)")
    num_threads: int | None = Field(None, ge=1, description="torch threads; default leave as is")
    robustness_k: int = Field(10, ge=1, description="neighbours of the robustness index")
    limits: MetricLimits = Field(MetricLimits(), description="sizes below which a metric carries a caveat")


def protected_covariates(config: TrainConfig) -> list[str]:
    """The categorical covariates ComBat protects: the configured ones, else the label."""
    if config.correction_covariates is not None:
        return list(config.correction_covariates)
    return [] if config.task == "survival" else ["label"]


# What the engine takes as (G,) tensors, so configurations differing only in these train as one
# pack; every other field (shapes, dropout, epochs, ...) must be equal across a pack.
PER_MEMBER_FIELDS = {"optimizer": ("lr", "weight_decay"), "losses": (*LossConfig().weights(), "tau")}
