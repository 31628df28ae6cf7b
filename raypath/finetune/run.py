"""`raypath finetune` on the driver: check the inputs, plan the tiles, train on Ray Train workers
(resuming a run of the same name; validated every epoch, stopped early), then evaluate the best
epoch's weights from the last checkpoint and register the model."""

import logging
from dataclasses import dataclass
from pathlib import Path

import ray.train

from raypath.cluster import connect
from raypath.cohort import load_manifest
from raypath.distributed.checkpoints import STATE_FILE
from raypath.distributed.relay import relayed
from raypath.distributed.trainer import fit
from raypath.encoders.registry import build_encoder
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import FinetuneData, finetune_split, open_data
from raypath.finetune.evaluate import evaluate, restore
from raypath.finetune.loop import train_loop
from raypath.finetune.plan import ensure_plan, read_plan
from raypath.finetune.publish import publish, tracking_uri
from raypath.tracking.queries import annotate_run, tracking_client
from raypath.train.data import read_tables
from raypath.train.evaluation import Evaluation
from raypath.train.leakage import audit_tags, write_audit
from raypath.train.split_policy import plan_split

log = logging.getLogger(__name__)
LEAKAGE = "leakage.json"


@dataclass(frozen=True)
class FinetuneSummary:
    """What a finetune run produced: the best epoch's model, its final evaluation, every epoch's
    train and validation metrics."""

    run_id: str
    model_uri: str
    evaluation: Evaluation
    history: list[dict]
    best_epoch: int


def absolute(config: FinetuneConfig) -> FinetuneConfig:
    """Paths made absolute, so workers in other directories (or nodes sharing them) find them."""
    paths = {k: getattr(config, k).resolve() for k in ("manifest", "labels", "splits", "registration",
                                                       "output_dir") if getattr(config, k) is not None}
    return config.model_copy(update=paths)


def prepare_run(config: FinetuneConfig) -> dict:
    """Inputs checked and the tile plan built before Ray starts; the workers' `loop_config`."""
    config.require()
    config = absolute(config)
    tables = read_tables(labels=config.labels, splits=config.splits, registration=config.registration)
    manifest = load_manifest(config.manifest, check_files=False)
    plan_split(config.split, labels=tables.labels, labels_path=config.labels, splits=tables.splits,
               splits_path=config.splits, patients=manifest["patient_id"], scanners=manifest["scanner"])
    config.output_dir.mkdir(parents=True, exist_ok=True)
    plan = ensure_plan(manifest=config.manifest, output_dir=config.output_dir, tiling=config.tiling,
                       registration=config.registration)
    _, _, audit = finetune_split(config, read_plan(plan).slides, tables)
    write_audit(audit, config.output_dir / LEAKAGE)
    audit.check()  # a leaking split fails here, before Ray starts
    return {"config": config.model_dump(mode="json"), "plan": str(plan)}


def train(config: FinetuneConfig, loop_config: dict, *, resume: bool = True) -> ray.train.Result:
    """The data-parallel run (Ray Train) of `train_loop` under `<output_dir>/runs/<name>`."""
    connect(config.ray_address, log_to_driver=False, settings=config.ray)
    with relayed(loop_config, name=f"finetune {config.name}") as relaying:  # rank 0's progress lines
        return fit(loop=train_loop, loop_config=relaying, settings=config.distributed,
                   storage=absolute(config).output_dir / "runs", name=config.name, resume=resume)


def finish(config: FinetuneConfig, loop_config: dict, result: ray.train.Result) -> FinetuneSummary:
    """Best epoch's weights from the last checkpoint -> model, evaluated on every slide by the MIL
    engine's final evaluation, logged to MLflow and registered."""
    import torch

    config = absolute(config)
    if result.checkpoint is None:
        raise RuntimeError(f"finetune {config.name}: the run ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, weights_only=True, map_location="cpu")
    history, best_epoch = list(state["history"]), int(state["stopper"]["best_epoch"])
    for row in history:
        log.info("epoch %d: %s", row["epoch"], _shown(row))
    data = open_data(config, Path(loop_config["plan"]))
    model = restore(config, data, {k.removeprefix("module."): v for k, v in state["best"].items()})
    evaluation = evaluate(model, data, config=config)
    base_hash = build_encoder(config.encoder, checkpoint=config.checkpoint, seed=config.seed).weights_hash
    run_id, name, version = publish(config, model, evaluation, history=history, best_epoch=best_epoch,
                                    base_hash=base_hash, n_outputs=data.prepared.n_outputs)
    _record_split(config, data, run_id=run_id)
    data.source.close()
    log.info("finetune %s: best epoch %d of %d; %s", config.name, best_epoch, len(history),
             _shown(evaluation.metrics))
    return FinetuneSummary(run_id=run_id, model_uri=f"models:/{name}/{version}", evaluation=evaluation,
                           history=history, best_epoch=best_epoch)


def _shown(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())
                    if k != "epoch" and k.endswith(("loss", "auc", "c_index", "score_spread", "flip_rate")))


def _record_split(config: FinetuneConfig, data: FinetuneData, *, run_id: str) -> None:
    """The split's origin and the leakage audit on the run (tags, `leakage.json`)."""
    tables = read_tables(labels=config.labels, splits=config.splits, registration=None)
    _, plan, audit = finetune_split(config, data.prepared.bagset.slides, tables)
    annotate_run(tracking_client(tracking_uri(config)), run_id, tags={**plan.tags(), **audit_tags(audit)},
                 files=[write_audit(audit, config.output_dir / LEAKAGE)])


def run_finetune(config: FinetuneConfig, *, resume: bool = True) -> FinetuneSummary:
    """Plan, train (resuming a run of the same name), evaluate, register."""
    loop_config = prepare_run(config)
    return finish(config, loop_config, train(config, loop_config, resume=resume))
