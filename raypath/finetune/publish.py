"""The finetuned model as a registered MLflow pyfunc, logged in the sweeps' layout.

Experiment `raypath/<name>/<fm>`, one run per finetune run (params = the flattened config, one
metric step per epoch with the train and validation metrics, then the final val/test metrics of the
best epoch's model and `best_epoch`, with a `raypath.undefined.<metric>` tag saying why a metric is
undefined, as `raypath train` logs them), `model/` (MIL head as safetensors, the adapter,
`model.json` naming the base FM weights and the adapter with their hashes) and per-slide
predictions; the run's model is registered as `raypath-finetune-<name>` with an alias.
"""

import logging
import tempfile
from pathlib import Path

from safetensors.torch import save_file

import raypath
from raypath.config import default_tracking_uri
from raypath.encoders.loading import state_dict_hash
from raypath.encoders.lora import adapted_name, adapted_weights_hash, adapter_state
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.model import FinetuneModel
from raypath.packaging.logged import log_model
from raypath.packaging.spec import AdapterSpec, ModelSpec
from raypath.store import code_hash, provenance
from raypath.tracking.inputs import code_tags
from raypath.tracking.queries import registered_versions
from raypath.tracking.results import point_alias, register_model
from raypath.tracking.runs import (
    TAG_FM,
    TAG_KIND,
    TAG_PHASE,
    TAG_UNDEFINED,
    RunLedger,
    experiment_name,
    flatten,
    stable_hash,
)
from raypath.train.evaluation import Evaluation

log = logging.getLogger(__name__)


def model_spec(config: FinetuneConfig, model: FinetuneModel, *, base_hash: str, adapter_hash: str,
               n_outputs: int, risk_cut: float | None, training: dict) -> ModelSpec:
    """What travels with the weights: the adapted encoder's feature provenance, base FM and adapter."""
    card = model.encoder.card
    features = provenance(encoder=adapted_name(config.encoder, adapter_hash), card=card.to_dict(),
                          weights_hash=adapted_weights_hash(base=base_hash, adapter=adapter_hash),
                          tiling=config.tiling.model_dump(mode="json"), tiling_hash=config.tiling.cache_key(),
                          embed_dim=card.embed_dim)
    adapter = AdapterSpec(base=config.encoder, hub_id=card.hub_id, checkpoint=config.checkpoint,
                          base_weights_hash=base_hash, seed=config.seed, lora=config.lora,
                          adapter_hash=adapter_hash)
    return ModelSpec(kind="finetuned", adapter=adapter, task=config.task, n_outputs=n_outputs,
                     in_dim=card.embed_dim, model=config.model.model_dump(mode="json"),
                     threshold=config.threshold,
                     risk_cut=risk_cut, eval_max_tiles=config.eval_tiles, provenance=features,
                     training=training, raypath_version=raypath.__version__, code_hash=code_hash())


def package(directory: Path, config: FinetuneConfig, model: FinetuneModel, *, base_hash: str,
            n_outputs: int, risk_cut: float | None, training: dict) -> tuple[Path, Path, ModelSpec]:
    """(head weights, adapter, spec) of a model of kind finetuned, written under `directory/files`:
    what `log_model` makes an MLflow pyfunc model of."""
    files = directory / "files"
    files.mkdir(parents=True, exist_ok=True)
    adapter = adapter_state(model.encoder)
    spec = model_spec(config, model, base_hash=base_hash, adapter_hash=state_dict_hash(adapter),
                      n_outputs=n_outputs, risk_cut=risk_cut, training=training)
    save_file(adapter, str(files / spec.adapter.file))
    head = {k: v.contiguous() for k, v in model.mil.state_dict().items()}
    save_file(head, str(files / "model.safetensors"))
    return files / "model.safetensors", files / spec.adapter.file, spec


def tracking_uri(config: FinetuneConfig) -> str:
    return config.tracking.uri or default_tracking_uri(config.output_dir)


def publish(config: FinetuneConfig, model: FinetuneModel, evaluation: Evaluation, *, history: list[dict],
            best_epoch: int, base_hash: str, n_outputs: int) -> tuple[str, str, str]:
    """Log the run and its model, register it; (run id, registered name, version)."""
    ledger = RunLedger(tracking_uri=tracking_uri(config),
                       experiment=experiment_name(sweep_id=config.name, fm=config.encoder),
                       artifact_location=None if config.tracking.uri else
                       (config.output_dir / "mlartifacts").resolve().as_uri())
    params = flatten(config.model_dump(mode="json", exclude={"tracking"}))
    key = stable_hash({"name": config.name, "params": params})
    name = config.tracking.model_name or f"raypath-finetune-{config.name}"
    weights = {"raypath.adapter_hash": state_dict_hash(adapter_state(model.encoder)),
               "raypath.head_hash": state_dict_hash(model.mil.state_dict())}
    published = _published(ledger, key=key, name=name, weights=weights)
    if published is not None:  # the same command again on a finished run: nothing new to register
        run_id, version = published
        point_alias(ledger.client, name=name, alias=config.tracking.alias, version=version)
        log.info("%s version %s already holds these weights (run %s); alias %s points at it",
                 name, version, run_id, config.tracking.alias)
        return run_id, name, version
    run_id = ledger.start(key=key, name=f"{config.encoder}/finetune", params=params,
                          tags={TAG_FM: config.encoder, TAG_PHASE: "finetune", TAG_KIND: "trial",
                                **code_tags()})
    for row in history:
        ledger.log_metrics(run_id, {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    ledger.log_metrics(run_id, {**evaluation.metrics, "best_epoch": float(best_epoch)}, step=len(history))
    if evaluation.undefined:
        ledger.set_tags(run_id, {f"{TAG_UNDEFINED}{k}": v for k, v in evaluation.undefined.items()})
    with tempfile.TemporaryDirectory() as tmp:
        training = {"run": config.name, "history": history, "best_epoch": best_epoch}
        weights_file, adapter, spec = package(Path(tmp), config, model, base_hash=base_hash,
                                              n_outputs=n_outputs, risk_cut=evaluation.risk_cut,
                                              training=training)
        log_model(ledger.client, run_id=run_id, weights=weights_file, spec=spec, adapter=adapter,
                  step=len(history))
        predictions = Path(tmp) / "predictions.parquet"
        evaluation.table.to_parquet(predictions, index=False)
        ledger.log_artifact(run_id, predictions, folder="predictions")
    ledger.end(run_id, status="FINISHED")
    tags = {**weights, "raypath.kind": "finetuned", "raypath.fm": config.encoder,
            "raypath.base_weights_hash": base_hash,
            "raypath.tiling_hash": config.tiling.cache_key(),
            **{f"raypath.{k}": f"{v:.4f}" for k, v in evaluation.metrics.items()
               if k.endswith(("/auc", "/score_spread"))}}
    version = register_model(ledger.client, name=name, run_id=run_id, tags=tags,
                             description=f"{config.encoder} + LoRA r={config.lora.rank} and a robust MIL "
                                         f"head (raypath finetune {config.name})",
                             alias=config.tracking.alias)
    return run_id, name, version


def _published(ledger: RunLedger, *, key: str, name: str, weights: dict[str, str]) -> tuple[str, str] | None:
    """(run id, version) when this run's finished attempt is registered with exactly these weights."""
    run = ledger.find(key)
    if run is None or run.info.status != "FINISHED":
        return None
    for version in registered_versions(ledger.client, name):
        if version.run_id == run.info.run_id and all(version.tags.get(k) == v for k, v in weights.items()):
            return run.info.run_id, str(version.version)
    return None
