"""MLflow for one `raypath train` run, in the sweeps' layout, so a model trained alone (in one
process or data-parallel) sits in MLflow next to swept ones and `raypath compare`-style queries
find it the same way.

Experiment `raypath/<name>/<fm>`, one run tagged as a trial with a stable key (a rerun of the same
training, e.g. a resumed driver, reopens the run instead of adding one), the flattened train config
as params, the feature store as a dataset input, per-epoch metrics with step = epoch (logged by
whichever process trains: rank 0 of a data-parallel group), the final val/test metrics, and the
output files as artifacts (`outputs/`, predictions also under `predictions/` as sweeps log them) and
the model as the run's MLflow LoggedModel `model`, a pyfunc (`raypath predict --model runs:/<run id>/model`).
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from raypath.packaging.logged import log_model
from raypath.packaging.package import package_outputs
from raypath.packaging.spec import ModelSpec
from raypath.tracking.inputs import code_tags, feature_dataset
from raypath.tracking.runs import (
    TAG_BASELINE,
    TAG_CAVEAT,
    TAG_CONFIG,
    TAG_FM,
    TAG_KIND,
    TAG_PACKAGES,
    TAG_SEED,
    TAG_SWEEP,
    TAG_UNDEFINED,
    RunLedger,
    experiment_name,
    flatten,
    package_versions,
    stable_hash,
)
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingSource
from raypath.train.leakage import LeakageAudit, audit_tags
from raypath.train.outputs import OUTPUT_FILES
from raypath.train.split_policy import SplitPlan

log = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """An open MLflow run; calling it logs one epoch's metrics (picklable: Ray sends it to rank 0)."""

    ledger: RunLedger
    run_id: str

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        self.ledger.log_metrics(self.run_id, metrics, step=epoch)

    def finish(self, *, metrics: dict[str, float], undefined: dict[str, str], out: Path | None,
               step: int, status: str = "FINISHED", caveats: dict[str, str] | None = None) -> None:
        """Final metrics, why some are undefined and what others stand on, the output files as
        artifacts; the run ends."""
        self.ledger.log_metrics(self.run_id, metrics, step=step)
        if undefined:
            self.ledger.set_tags(self.run_id, {f"{TAG_UNDEFINED}{k}": v for k, v in undefined.items()})
        if caveats:
            self.ledger.set_tags(self.run_id, {f"{TAG_CAVEAT}{k}": v for k, v in caveats.items()})
        if out is not None:
            for name in OUTPUT_FILES:
                if (out / name).is_file():
                    self.ledger.client.log_artifact(self.run_id, str(out / name), artifact_path="outputs")
            if (out / "model.json").is_file():
                package_outputs(out)
                log_model(self.ledger.client, run_id=self.run_id, weights=out / "model.safetensors",
                          spec=ModelSpec.read(out / "model.json"), step=step)
            if (out / "predictions.csv").is_file():
                self.ledger.client.log_artifact(self.run_id, str(out / "predictions.csv"),
                                                artifact_path="predictions")
        self.ledger.end(self.run_id, status=status)


def artifact_location(tracking_uri: str) -> str | None:
    """Artifacts of an embedded SQLite store next to its file (never the current directory); a
    server keeps its own artifact root."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return (Path(tracking_uri[len(prefix):]).resolve().parent / "mlartifacts").as_uri()


def run_label(config: TrainConfig, *, seed: int, fold: int | None = None) -> str:
    """What a run is, readable in MLflow's run list: `baseline seed 0`, or `robust` with its non-zero
    loss weights (`robust infonce=0.5 score_consistency=1 seed 2`), and the cross-validation fold a
    replicate tests on (`... seed 3 fold 1`)."""
    weights = {name: weight for name, weight in sorted(config.losses.weights().items()) if weight}
    kind = " ".join(["robust", *(f"{name}={weight:.3g}" for name, weight in weights.items())]) if weights \
        else "baseline"
    return f"{kind} seed {seed}" + (f" fold {fold}" if fold is not None else "")


def run_key(*, config: TrainConfig, source: TrainingSource, seed: int) -> str:
    """Same config, same features, same seed: same key (a rerun continues the same run)."""
    return stable_hash({"train": config.model_dump(mode="json"), "fingerprint": source.fingerprint,
                        "encoder": source.encoder, "seed": seed})


def open_train_run(*, tracking_uri: str, name: str, config: TrainConfig, source: TrainingSource, seed: int,
                   extra: dict[str, str] | None = None, split: SplitPlan | None = None,
                   audit: LeakageAudit | None = None, audit_file: Path | None = None) -> TrainRun:
    """The run of this training: reopened when the key exists (a resumed run), else created; tagged
    with where its split comes from and its leakage audit (`leakage.json` as an artifact)."""
    experiment = experiment_name(sweep_id=name, fm=source.encoder)
    ledger = RunLedger(tracking_uri=tracking_uri, experiment=experiment,
                       artifact_location=artifact_location(tracking_uri))
    key = run_key(config=config, source=source, seed=seed)
    existing = ledger.find(key)
    if existing is not None:
        ledger.client.update_run(existing.info.run_id, status="RUNNING")
        log.info("MLflow: continuing run %s", existing.info.run_id)
        return TrainRun(ledger=ledger, run_id=existing.info.run_id)
    baseline = not any(config.losses.weights().values())
    tags = {TAG_SWEEP: name, TAG_FM: source.encoder, TAG_KIND: "trial", TAG_SEED: str(seed),
            TAG_CONFIG: stable_hash({"train": config.model_dump(mode="json"), "encoder": source.encoder}),
            TAG_BASELINE: str(baseline).lower(), "raypath.command": "train", **code_tags()}
    params = {**flatten(config.model_dump(mode="json")), "fm": source.encoder, "seed": str(seed),
              "baseline": str(baseline).lower(), **(extra or {})}
    run_id = ledger.start(key=key, name=f"{source.encoder}/train/{run_label(config, seed=seed)}",
                          params=params, tags=tags)
    ledger.log_dataset(run_id, feature_dataset(source))
    ledger.set_tags(run_id, {"raypath.train": json.dumps(config.model_dump(mode="json"), sort_keys=True),
                             "raypath.features_fingerprint": source.fingerprint,
                             TAG_PACKAGES: json.dumps(package_versions()),
                             **(split.tags() if split else {}), **(audit_tags(audit) if audit else {})})
    if audit_file is not None:
        ledger.client.log_artifact(run_id, str(audit_file))
    log.info("MLflow: run %s in %s", run_id, ledger.experiment)
    return TrainRun(ledger=ledger, run_id=run_id)
