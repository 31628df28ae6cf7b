"""`raypath finetune` on the driver: check the inputs, plan the tiles, train on Ray Train workers
(resuming a run of the same name), then evaluate the last checkpoint and register the model."""

import logging
from dataclasses import dataclass
from pathlib import Path

import ray.train

from raypath.cluster import connect
from raypath.distributed.trainer import fit
from raypath.distributed.worker import STATE_FILE
from raypath.encoders.registry import build_encoder
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import open_data
from raypath.finetune.evaluate import Evaluation, evaluate, restore
from raypath.finetune.loop import train_loop
from raypath.finetune.plan import ensure_plan
from raypath.finetune.publish import publish
from raypath.train.data import read_tables

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneSummary:
    """What a finetune run produced."""

    run_id: str
    model_uri: str
    evaluation: Evaluation
    history: list[dict]


def absolute(config: FinetuneConfig) -> FinetuneConfig:
    """Paths made absolute, so workers in other directories (or nodes sharing them) find them."""
    paths = {k: getattr(config, k).resolve() for k in ("manifest", "labels", "splits", "registration",
                                                       "output_dir") if getattr(config, k) is not None}
    return config.model_copy(update=paths)


def prepare_run(config: FinetuneConfig) -> dict:
    """Inputs checked and the tile plan built before Ray starts; the workers' `loop_config`."""
    config.require()
    config = absolute(config)
    read_tables(labels=config.labels, splits=config.splits, registration=config.registration)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    plan = ensure_plan(manifest=config.manifest, output_dir=config.output_dir, tiling=config.tiling,
                       registration=config.registration)
    return {"config": config.model_dump(mode="json"), "plan": str(plan)}


def train(config: FinetuneConfig, loop_config: dict, *, resume: bool = True) -> ray.train.Result:
    """The data-parallel run (Ray Train) of `train_loop` under `<output_dir>/runs/<name>`."""
    connect(config.ray_address, log_to_driver=False)
    return fit(loop=train_loop, loop_config=loop_config, settings=config.distributed,
               storage=absolute(config).output_dir / "runs", name=config.name, resume=resume)


def finish(config: FinetuneConfig, loop_config: dict, result: ray.train.Result) -> FinetuneSummary:
    """Last checkpoint -> model, evaluated on every slide, logged to MLflow and registered."""
    import torch

    config = absolute(config)
    if result.checkpoint is None:
        raise RuntimeError(f"finetune {config.name}: the run ended without a checkpoint")
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / STATE_FILE, weights_only=True, map_location="cpu")
    data = open_data(config, Path(loop_config["plan"]))
    trained = {k.removeprefix("module."): v for k, v in state["trained"].items()}
    model = restore(config, data, trained)
    evaluation = evaluate(model, data, config=config)
    base_hash = build_encoder(config.encoder, checkpoint=config.checkpoint, seed=config.seed).weights_hash
    run_id, name, version = publish(config, model, evaluation, history=state["history"], base_hash=base_hash,
                                    n_outputs=data.prepared.n_outputs, risk_cut=evaluation.risk_cut)
    data.source.close()
    log.info("finetune %s: %s", config.name, {k: round(v, 4) for k, v in evaluation.metrics.items()
                                              if k.endswith(("/auc", "/score_spread"))})
    return FinetuneSummary(run_id=run_id, model_uri=f"models:/{name}/{version}", evaluation=evaluation,
                           history=list(state["history"]))


def run_finetune(config: FinetuneConfig, *, resume: bool = True) -> FinetuneSummary:
    """Plan, train (resuming a run of the same name), evaluate, register."""
    loop_config = prepare_run(config)
    return finish(config, loop_config, train(config, loop_config, resume=resume))
