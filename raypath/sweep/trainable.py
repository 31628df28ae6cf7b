"""The Tune function trainable: train one pack, report every member each epoch.

A trial receives a `TrainingSource` (paths, small tables, the store's fingerprint) and maps its node's
feature cache, built by the first trial on the node: nothing of the cohort passes through the
driver or the object store, and a reused worker keeps its mapping for the next trial. Trials never
talk to MLflow; the driver's callback logs what is reported here, and weights/predictions travel as
a Tune checkpoint (one folder per member key).
"""

import logging
import math
import resource
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from safetensors.torch import save_file

from raypath.mil.bags import BagSet
from raypath.mil.cache import CacheInfo, cache_directory, open_cache
from raypath.packaging.spec import ModelSpec
from raypath.sweep.packing import PACK_METRIC, member_settings
from raypath.sweep.space import apply_params
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingSource, attach_tables
from raypath.train.engine import PackMember, TrainResult, train_pack
from raypath.train.evaluation import FINAL_SPLITS
from raypath.train.outputs import model_spec

log = logging.getLogger(__name__)


def process_memory() -> dict[str, float]:
    """This process's peak resident memory and its current anonymous / file-backed parts, in MB.

    File-backed pages are the mapped feature cache: shared by every process on the node (the page
    cache), so `rss_anon_mb` is what a trial costs on its own.
    """
    fields = {"VmHWM": "peak_rss_mb", "RssAnon": "rss_anon_mb", "RssFile": "rss_file_mb"}
    status = Path("/proc/self/status")
    if not status.exists():
        return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    values = {}
    for line in status.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            values[fields[name]] = int(rest.split()[0]) / 1024  # kB
    return values


def pack_objective(reported: Mapping[str, Mapping[str, float]], *, metric: str, mode: str) -> float:
    """The pack's best member on the first objective: what ASHA compares between packs."""
    values = [v[metric] for v in reported.values() if metric in v and math.isfinite(v[metric])]
    if not values:
        return -1e9 if mode == "max" else 1e9
    return max(values) if mode == "max" else min(values)


def _members_payload(reported: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    return [{"key": key, "metrics": dict(metrics)} for key, metrics in reported.items()]


def member_spec(result: TrainResult, *, config: TrainConfig, provenance: dict, member: Mapping[str, Any],
                storage: str) -> ModelSpec:
    """The spec that travels with a member's weights (see `raypath.packaging.spec`)."""
    return model_spec(result, config=config, provenance=provenance, storage=storage,
                      training={"key": member["key"], "seed": member["seed"], "params": member["params"]})


def save_member(result: TrainResult, *, directory: Path, spec: ModelSpec) -> None:
    """Weights as safetensors (no pickle), the spec as JSON, predictions as Parquet."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in result.state_dict.items()}
    save_file(state, str(directory / "model.safetensors"), metadata={"best_epoch": str(result.best_epoch)})
    spec.write(directory / "model.json")
    result.predictions.to_parquet(directory / "predictions.parquet", index=False)


_OPENED: dict[Path, BagSet] = {}  # this worker's mapped cache; reused actors open it once


def _node_bags(data: TrainingSource) -> tuple[BagSet, dict]:
    """The trial's bags from this node's cache (mapped once per worker process), tables attached,
    and the provenance the cache recorded."""
    store, root = data.store(), data.cache_root(node=ray.get_runtime_context().get_node_id()[:16])
    directory = cache_directory(root, store, storage=data.storage, fingerprint=data.fingerprint)
    if directory not in _OPENED:
        _OPENED.clear()
        _OPENED[directory] = open_cache(store, root=root, storage=data.storage, fingerprint=data.fingerprint)
    provenance = CacheInfo.read(directory).provenance
    return attach_tables(_OPENED[directory], data.tables, cache=directory), provenance


def run_pack(
    config: dict[str, Any],
    *,
    data: TrainingSource,
    train: dict[str, Any],
    metric: str,
    mode: str,
    save_models: bool,
    device: str = "cpu",
    final_splits: Sequence[str] = FINAL_SPLITS,
) -> None:
    """Tune entry point: `config` is a pack from the searcher (or the replicate grid); the members'
    final metrics cover `final_splits` (a search selects on validation data and leaves out test)."""
    base = TrainConfig.model_validate(train)
    pack: Sequence[dict[str, Any]] = config["pack"]
    members = [PackMember(key=m["key"], config=apply_params(base, member_settings(m))) for m in pack]
    seed = int(pack[0]["seed"])
    epochs_done, waited, cpu_start = 0, 0.0, time.thread_time()  # this thread trains: its CPU is the pack's

    def on_epoch(epoch: int, reported: dict[str, dict[str, float]]) -> None:
        nonlocal epochs_done, waited
        epochs_done = epoch + 1
        started = time.perf_counter()  # Tune holds the trial in `report` until the driver took the result
        tune.report(
            {
                "epoch": epochs_done,
                PACK_METRIC: pack_objective(reported, metric=metric, mode=mode),
                "members": _members_payload(reported),
                "driver_wait_s": waited,  # so far: the epochs' round trips through the driver
                "cpu_s": time.thread_time() - cpu_start,
            }
        )
        waited += time.perf_counter() - started

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("gpus_per_trial > 0 but this trial sees no CUDA device")
    bags, provenance = _node_bags(data)
    results = train_pack(members=members, data=bags, seed=seed, on_epoch=on_epoch, device=device,
                         final_splits=final_splits)
    final = {key: dict(r.metrics) for key, r in results.items()}
    members_final = [{**m, "undefined": results[m["key"]].undefined, "caveats": results[m["key"]].caveats}
                     for m in _members_payload(final)]
    payload = {
        "epoch": epochs_done,
        PACK_METRIC: pack_objective(final, metric=metric, mode=mode),
        "members": members_final,
        "final": True,
        "memory": process_memory(),
        "driver_wait_s": waited,
        "cpu_s": time.thread_time() - cpu_start,
        "node": ray.get_runtime_context().get_node_id(),
    }
    if not save_models:
        tune.report(payload)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for member, trained in zip(pack, members, strict=True):
            spec = member_spec(results[member["key"]], config=trained.config, provenance=provenance,
                               member=member, storage=data.storage)
            save_member(results[member["key"]], directory=Path(tmp) / member["key"], spec=spec)
        tune.report(payload, checkpoint=tune.Checkpoint.from_directory(tmp))
