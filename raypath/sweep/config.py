"""Sweep config: which FMs, what to search, how Tune schedules it, where MLflow records it."""

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from raypath.config import LocalPath, Location, RayJob, StrictModel, TrackingUri, default_tracking_uri
from raypath.sweep.space import ParamSpec, check_space
from raypath.train.config import CacheConfig, TrainConfig


class ObjectiveConfig(StrictModel):
    """A validation metric the search optimises (reported each epoch by every trial)."""

    metric: str = Field(description="a metric trials report, e.g. val/auc, val/c_index, val/score_spread, "
                                    "val/flip_rate")
    mode: Literal["max", "min"]


class FeaturesConfig(StrictModel):
    """Where the cohort's features live: `<root>/<fm>/<tiling_hash>/`, one sweep per FM."""

    root: Location = Field(description="feature-store root: local path, NFS path or s3:// URI")
    fms: list[str] = Field(min_length=1, description="one Tune experiment per FM")
    tiling_hash: str | None = Field(None, description="default: the only tiling-hash directory of each FM")
    labels: LocalPath = Field(description="labels.csv (patient_id, label | time, event)")
    splits: LocalPath | None = Field(
        None, description="splits.csv (patient_id, split): the split used, before the labels' split column")
    registration: LocalPath | None = Field(None, description="registration.parquet, for tile-level losses")
    unmatched_labels: Literal["error", "warn"] = Field(
        "error", description="label rows of patients without features: an error (a typo) or a warning "
                             "(a clinical table knowingly larger than the cohort)")
    cache: CacheConfig = CacheConfig()


class AshaConfig(StrictModel):
    """ASHA early stopping on the pack's best member (per-epoch reports)."""

    enabled: bool = True
    grace_period: int = Field(4, ge=1, description="epochs every pack trains before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1)


class ResourcesConfig(StrictModel):
    """Per-trial resources; a trial trains one pack, so threads = cpus_per_trial."""

    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0, description="fractions share one GPU between trials")
    max_concurrent_trials: int | None = Field(None, ge=1)


class ReplicatesConfig(StrictModel):
    """Replicates of the best-tuned baseline and the best robust configurations, for intervals."""

    mode: Literal["seeds", "folds"] = Field(
        "seeds", description="seeds: new initialisation and batch order on the fixed patient split; "
                             "folds: patient-level stratified k-fold cross-validation (k = `seeds`)")
    seeds: int = Field(5, ge=0, description="replicates (seeds, or folds); 0 = no replicate phase")
    top_k: int = Field(1, ge=1, description="robust configurations replicated besides the baseline")
    accuracy_tolerance: float = Field(
        0.02, ge=0, description="robust configs may lose at most this much validation accuracy"
    )
    tie_tolerance: float = Field(
        1e-3, ge=0, description="selection metrics closer than this are ties (float noise, not evidence); "
                                "ties go to the lower loss-weight sum, then the config key")


class TrackingConfig(StrictModel):
    """MLflow: the default store (`mlflow.db` under `output_dir`), or a `mlflow server` URI on clusters."""

    uri: TrackingUri | None = Field(
        None, description="MLflow tracking URI (http://host:5000 or sqlite:///file.db); default "
                          "sqlite:///<out>/mlflow.db")
    artifact_location: Location | None = Field(None, description="artifact root for new experiments")


class SweepConfig(RayJob):
    """Everything `raypath sweep` needs; the searched values override fields of `train`."""

    sweep_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output_dir: LocalPath = Field(Path("runs/sweeps"), validate_default=True,
                                  description="sweep outputs: Tune storage, the MLflow store (mlflow.db), "
                                              "reports")
    storage_path: Location | None = Field(
        None, description="Tune storage (path, NFS, s3://); default output_dir")
    features: FeaturesConfig
    train: TrainConfig = TrainConfig()
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    objectives: list[ObjectiveConfig] = Field(
        default_factory=lambda: [ObjectiveConfig(metric="val/auc", mode="max"),
                                 ObjectiveConfig(metric="val/score_spread", mode="min")],
        min_length=1, max_length=3
    )
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    num_samples: int = Field(64, ge=1, description="trained configurations per FM (baseline included)")
    baseline_share: float = Field(
        0.25, ge=0, lt=1, description="share of num_samples for the tuned control: robustness losses off, "
                                      "the other searched hyperparameters (lr, weight decay, dropout, hidden "
                                      "size, ...) searched like the robust configurations'")
    pack_size: int = Field(8, ge=1, description="configurations trained together in one Tune trial")
    search_batch: int | None = Field(
        None, ge=1, description="packs asked of Optuna together, two batches in flight: batch b is asked "
                                "once batch b-2 ended, from the results of batches up to b-2 (told in pack "
                                "order), and early stopping compares with those batches only, so the search "
                                "does not depend on trial timing. At most twice this many packs run at once. "
                                "None = resources.max_concurrent_trials, else 4")
    taper_tail: bool = Field(
        True, description="the last packs of a search shrink (at most remaining / (2 x packs at once) "
                          "configurations each) so that no long pack runs alone at the end while the other "
                          "slots sit idle; packs at once = resources.max_concurrent_trials, else the batch")
    asha: AshaConfig = AshaConfig()
    resources: ResourcesConfig = ResourcesConfig()
    max_failures: int = Field(2, ge=0, description="retries of a failed trial before it counts as failed")
    replicates: ReplicatesConfig = ReplicatesConfig()
    tracking: TrackingConfig = TrackingConfig()
    seed: int = 0
    resume: Literal["auto", "never"] = Field("auto", description="auto = Tuner.restore an existing sweep")

    @model_validator(mode="after")
    def _folds_need_their_own_split(self) -> "SweepConfig":
        if self.replicates.mode == "folds" and (self.features.splits or self.train.split.source == "column"):
            raise ValueError("replicates.mode 'folds' splits the patients itself; leave out features.splits "
                             "and split.source 'column'")
        if self.replicates.mode == "folds" and 0 < self.replicates.seeds < 3:
            raise ValueError("replicates.mode 'folds' needs at least 3 folds (replicates.seeds >= 3)")
        return self

    @model_validator(mode="after")
    def _space_paths(self) -> "SweepConfig":
        check_space(self.space, self.train)
        return self

    def batch_packs(self) -> int:
        """Packs per search batch (`search_batch`)."""
        return self.search_batch or self.resources.max_concurrent_trials or 4

    def tail_width(self) -> int:
        """Packs at once that the tail is tapered for (`taper_tail`; 1 = not tapered)."""
        if not self.taper_tail:
            return 1
        return self.resources.max_concurrent_trials or self.batch_packs()

    def tracking_uri(self) -> str:
        """The MLflow URI; the embedded default is one SQLite file the Tune driver alone writes."""
        return self.tracking.uri or default_tracking_uri(self.output_dir)

    def artifact_location(self) -> str | None:
        """Where new experiments keep artifacts: `tracking.artifact_location`, else next to the
        embedded SQLite store under `output_dir` (never the current directory); a server's own
        artifact root when `tracking.uri` names a server."""
        if self.tracking.artifact_location or self.tracking.uri:
            return self.tracking.artifact_location
        return (self.output_dir / "mlartifacts").resolve().as_uri()

    def tune_storage(self) -> str:
        return self.storage_path or str((self.output_dir / "tune").resolve())
