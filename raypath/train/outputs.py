"""What a finished `raypath train` leaves in its output directory, however it trained (one process
or a data-parallel group): metrics.json, predictions.csv, model.safetensors and config.json."""

import json
from pathlib import Path

from safetensors.torch import save_file

from raypath.train.config import TrainConfig
from raypath.train.engine import TrainResult

OUTPUT_FILES = ("metrics.json", "predictions.csv", "model.safetensors", "config.json")


def write_outputs(result: TrainResult, *, config: TrainConfig, out: Path) -> list[Path]:
    """Final metrics, per-slide predictions, best weights (safetensors: no pickle) and the config."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, sort_keys=True))
    result.predictions.to_csv(out / "predictions.csv", index=False)
    save_file({k: v.contiguous() for k, v in result.state_dict.items()}, str(out / "model.safetensors"),
              metadata={"best_epoch": str(result.best_epoch)})
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    return [out / name for name in OUTPUT_FILES]
