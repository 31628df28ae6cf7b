"""What a finished `raypath train` leaves in its output directory, however it trained (one process
or a data-parallel group): metrics.json, predictions.csv, model.safetensors, model.json (the spec
`raypath predict` needs besides the weights) and config.json. Every file is written under a
temporary name and renamed, so a crash never leaves a half-written file under a final name."""

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

import raypath
from raypath.packaging.spec import ModelSpec
from raypath.publish import publish_file
from raypath.store import code_hash
from raypath.train.config import TrainConfig
from raypath.train.engine import TrainResult

OUTPUT_FILES = ("metrics.json", "predictions.csv", "model.safetensors", "model.json", "config.json")


def model_spec(result: TrainResult, *, config: TrainConfig, provenance: dict, storage: str,
               training: Mapping[str, Any]) -> ModelSpec:
    """The spec that travels with a trained model's weights (`raypath.packaging.spec`); `training`
    says where it came from (sweep member, seed, params, ...), best epoch and config are added."""
    return ModelSpec(task=config.task, n_outputs=result.n_outputs, in_dim=result.in_dim,
                     model=config.model.model_dump(mode="json"), threshold=config.threshold,
                     risk_cut=result.risk_cut, feature_storage=storage, eval_max_tiles=config.eval_max_tiles,
                     provenance=provenance, raypath_version=raypath.__version__, code_hash=code_hash(),
                     training={**training, "best_epoch": result.best_epoch,
                               "train": config.model_dump(mode="json")})


def write_outputs(result: TrainResult, *, config: TrainConfig, out: Path, provenance: dict, storage: str,
                  training: Mapping[str, Any]) -> list[Path]:
    """Final metrics, per-slide predictions, best weights (safetensors: no pickle), spec and config."""
    out.mkdir(parents=True, exist_ok=True)
    spec = model_spec(result, config=config, provenance=provenance, storage=storage, training=training)
    state = {k: v.contiguous() for k, v in result.state_dict.items()}
    weights_metadata = {"best_epoch": str(result.best_epoch)}
    writers: dict[str, Callable[[Path], object]] = {
        "metrics.json": lambda p: p.write_text(json.dumps(result.metrics, indent=2, sort_keys=True)),
        "predictions.csv": lambda p: result.predictions.to_csv(p, index=False),
        "model.safetensors": lambda p: save_file(state, str(p), metadata=weights_metadata),
        "model.json": spec.write,
        "config.json": lambda p: p.write_text(config.model_dump_json(indent=2)),
    }
    for name, write in writers.items():
        publish_file(out / name, write)
    return [out / name for name in OUTPUT_FILES]
