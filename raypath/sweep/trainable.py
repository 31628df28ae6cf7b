"""The Tune function trainable: train one pack, report every member each epoch.

The cohort (a `BagSet`) arrives through `tune.with_parameters`, i.e. one `ray.put` by the driver
and zero-copy reads from the node's object store by every trial: features are never re-read from
the feature store per trial. Trials never talk to MLflow; the driver's callback logs what is
reported here, and weights/predictions travel as a Tune checkpoint (one folder per member key).
"""

import logging
import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ray import tune
from safetensors.torch import save_file

from raypath.mil.bags import BagSet
from raypath.sweep.packing import PACK_METRIC
from raypath.sweep.space import apply_params
from raypath.train.config import TrainConfig
from raypath.train.engine import PackMember, TrainResult, train_pack

log = logging.getLogger(__name__)


def pack_objective(reported: Mapping[str, Mapping[str, float]], *, metric: str, mode: str) -> float:
    """The pack's best member on the first objective: what ASHA compares between packs."""
    values = [v[metric] for v in reported.values() if metric in v and math.isfinite(v[metric])]
    if not values:
        return -1e9 if mode == "max" else 1e9
    return max(values) if mode == "max" else min(values)


def _members_payload(reported: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    return [{"key": key, "metrics": dict(metrics)} for key, metrics in reported.items()]


def save_member(result: TrainResult, *, directory: Path, params: Mapping[str, Any]) -> None:
    """Weights as safetensors (no pickle) with the config in its metadata, predictions as Parquet."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in result.state_dict.items()}
    save_file(
        state,
        str(directory / "model.safetensors"),
        metadata={"params": repr(dict(params)), "best_epoch": str(result.best_epoch)},
    )
    result.predictions.to_parquet(directory / "predictions.parquet", index=False)


def run_pack(
    config: dict[str, Any],
    *,
    data: BagSet,
    train: dict[str, Any],
    metric: str,
    mode: str,
    save_models: bool,
    device: str = "cpu",
) -> None:
    """Tune entry point: `config` is a pack from the searcher (or the replicate grid)."""
    # The shared features are read-only object-store memory; torch warns, but nothing writes to them.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    base = TrainConfig.model_validate(train)
    pack: Sequence[dict[str, Any]] = config["pack"]
    members = [PackMember(key=m["key"], config=apply_params(base, m["params"])) for m in pack]
    seed = int(pack[0]["seed"])
    epochs_done = 0

    def on_epoch(epoch: int, reported: dict[str, dict[str, float]]) -> None:
        nonlocal epochs_done
        epochs_done = epoch + 1
        tune.report(
            {
                "epoch": epochs_done,
                PACK_METRIC: pack_objective(reported, metric=metric, mode=mode),
                "members": _members_payload(reported),
            }
        )

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("gpus_per_trial > 0 but this trial sees no CUDA device")
    results = train_pack(members=members, data=data, seed=seed, on_epoch=on_epoch, device=device)
    final = {key: dict(r.metrics) for key, r in results.items()}
    payload = {
        "epoch": epochs_done,
        PACK_METRIC: pack_objective(final, metric=metric, mode=mode),
        "members": _members_payload(final),
        "final": True,
    }
    if not save_models:
        tune.report(payload)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for member in pack:
            save_member(results[member["key"]], directory=Path(tmp) / member["key"], params=member["params"])
        tune.report(payload, checkpoint=tune.Checkpoint.from_directory(tmp))
