"""`raypath train`: one robust MIL model on a feature store (the sweep's engine, a pack of one), in
this process or, with `--workers N`, data-parallel on N Ray Train workers; optionally in MLflow."""

import argparse
import logging
import tempfile
from pathlib import Path

from raypath.commands.flags import (
    Flag,
    add_config_flags,
    add_flags,
    config_from_args,
    config_from_flags,
    yes_no,
)
from raypath.config import RaySettings, absolute, absolute_sqlite, did_you_mean
from raypath.distributed.config import DistributedConfig
from raypath.train.config import TrainConfig

log = logging.getLogger(__name__)
PARALLEL_FLAGS = (
    Flag("workers", "workers", int, help="train on N Ray Train workers (data-parallel: each takes its share "
                                         "of every step's specimens, gradients averaged); without it, "
                                         "one process and no Ray"),
    Flag("use-gpu", "use_gpu", yes_no, metavar="true|false"),
    Flag("max-failures", "max_failures", int),
    Flag("checkpoint-every", "checkpoint_every", int),
    Flag("keep-checkpoints", "keep_checkpoints", int),
    Flag("cpus-per-worker", "cpus_per_worker", int),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", type=absolute, required=True, help="feature store root")
    parser.add_argument("--encoder", required=True, help="encoder name (directory under --features)")
    parser.add_argument("--tiling-hash", help="tiling hash directory; default: the only one present")
    parser.add_argument("--labels", type=absolute, required=True,
                        help="labels.csv (patient_id, label | time, event)")
    parser.add_argument("--splits", type=absolute,
                        help="splits.csv (patient_id, split): the split, before the labels' split column")
    parser.add_argument("--registration", type=absolute, help="registration.parquet, for tile-level losses")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of initialisation and sampling (default: 0)")
    parser.add_argument("--out", type=absolute, metavar="DIR",
                        help="write metrics.json, predictions.csv, model.safetensors here")
    parser.add_argument("--cache-dir", type=absolute,
                        help="node-local feature cache; default <out>/cache, else <tmp>/raypath-cache")
    parser.add_argument("--cache-storage", choices=("float16", "bfloat16", "float32"), default="float16",
                        help="feature precision in the cache (compute is float32)")
    parser.add_argument("--unmatched-labels", choices=("error", "warn"), default="error",
                        help="label rows of patients without features: an error, or a warning")
    parser.add_argument("--tracking-uri", type=absolute_sqlite,
                        help="log the run to this MLflow store (http://host:5000 or sqlite:///file.db; the "
                             "other commands' default is sqlite:///<out>/mlflow.db); default: not logged")
    parser.add_argument("--name", default="train",
                        help="names the MLflow experiment (raypath/<name>/<fm>) and the Ray Train run")
    parser.add_argument("--storage", type=absolute,
                        help="--workers: Ray Train checkpoints; default <out>/checkpoints, else <tmp>")
    parser.add_argument("--restart", action="store_true",
                        help="--workers: start over instead of resuming this run's latest checkpoint")
    parser.add_argument("--address", help="--workers: Ray cluster address; default a private local Ray "
                                          "(or the cluster of a submitted Ray job)")
    add_config_flags(parser, TrainConfig, (), example="epochs=5")
    add_flags(parser, DistributedConfig, PARALLEL_FLAGS)
    add_flags(parser, RaySettings, ())  # --workers: the local Ray instance's start-up


def _tiling_hash(root: Path, encoder: str, given: str | None) -> str:
    """The one tiling hash of `encoder` in the store (or `given`); an encoder the store lacks is named
    with the ones it has, before anything is read."""
    if not (root / encoder).is_dir():
        known = sorted(p.name for p in root.glob("*") if p.is_dir() and not p.name.startswith(("_", ".")))
        raise ValueError(f"{root}: no features for encoder {encoder!r}{did_you_mean(encoder, known)}; "
                         f"this store has: {', '.join(known) or 'no encoders'}")
    if given:
        return given
    found = sorted(p.name for p in (root / encoder).glob("*") if p.is_dir())
    if len(found) != 1:
        raise ValueError(f"{root / encoder}: expected one tiling-hash directory, found {found}; "
                         "pass --tiling-hash")
    return found[0]


def run(args: argparse.Namespace) -> int:
    from raypath.store import FeatureStore
    from raypath.tracking.train_run import open_train_run, run_key
    from raypath.train.data import training_inputs
    from raypath.train.leakage import write_audit

    store = FeatureStore(args.features, encoder=args.encoder,
                         tiling_hash=_tiling_hash(args.features, args.encoder, args.tiling_hash))
    default_cache = args.out / "cache" if args.out else Path(tempfile.gettempdir()) / "raypath-cache"
    inputs = training_inputs(config_from_args(TrainConfig, args), store=store, labels=args.labels,
                             splits=args.splits, registration=args.registration,
                             cache_dir=str(args.cache_dir or default_cache), storage=args.cache_storage,
                             unmatched_labels=args.unmatched_labels)
    config, source = inputs.config, inputs.source
    audit_file = write_audit(inputs.audit, args.out / "leakage.json") if args.out else None
    inputs.audit.check()  # a leaking split fails here, before Ray or training starts
    settings = config_from_flags(DistributedConfig, args, PARALLEL_FLAGS) if args.workers else None
    extra = {"workers": str(settings.workers if settings else 0)}
    tracker = (open_train_run(tracking_uri=args.tracking_uri, name=args.name, config=config, source=source,
                              seed=args.seed, extra=extra, split=inputs.split, audit=inputs.audit,
                              audit_file=audit_file) if args.tracking_uri else None)
    try:
        if settings is None:
            _train_here(args, config=config, source=source, tracker=tracker)
        else:
            key = run_key(config=config, source=source, seed=args.seed)
            _train_on_workers(args, config=config, source=source, tracker=tracker, settings=settings,
                              name=f"{args.name}-{store.encoder}-{key[:12]}")
    except BaseException:
        if tracker is not None:
            tracker.ledger.end(tracker.run_id, status="FAILED")
        raise
    return 0


def _train_here(args: argparse.Namespace, *, config: TrainConfig, source, tracker) -> None:
    """One process, no Ray: `train_one` on this node's cache."""
    from raypath.train.engine import train_one
    from raypath.train.outputs import write_outputs

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        log.info("epoch %d %s", epoch, _fmt(metrics))
        if tracker is not None:
            tracker(epoch, metrics)

    result = train_one(config=config, data=source.open(node=""), seed=args.seed, on_epoch=on_epoch)
    log.info("final (best epoch %d): %s", result.best_epoch, _fmt(result.metrics))
    if args.out:
        write_outputs(result, config=config, out=args.out, provenance=source.provenance(node=""),
                      storage=source.storage, training={"seed": args.seed, "workers": 0})
    if tracker is not None:
        tracker.finish(metrics=result.metrics, undefined=result.undefined, out=args.out,
                       step=len(result.history), caveats=result.caveats)
    elif args.out:
        _package(args.out)


def _train_on_workers(args: argparse.Namespace, *, config: TrainConfig, source, tracker,
                      settings: DistributedConfig, name: str) -> None:
    from raypath.distributed.train_workers import MilJob, train_on_workers
    from raypath.distributed.trainer import run_directory

    storage = (args.storage or (args.out / "checkpoints" if args.out
                                else Path(tempfile.gettempdir()) / "raypath-train")).resolve()
    out = (args.out or run_directory(storage=storage, name=name) / "outputs").resolve()
    job = MilJob(source=source, config=config, seed=args.seed, out=out, tracker=tracker,
                 checkpoint_every=settings.checkpoint_every, use_gpu=settings.use_gpu)
    metrics = train_on_workers(job=job, settings=settings, storage=storage, name=name, address=args.address,
                               ray_settings=config_from_flags(RaySettings, args, ()),
                               resume=not args.restart)
    log.info("final (best epoch %d): %s -> %s", metrics["best_epoch"], _fmt(metrics), out)
    if tracker is None:  # a tracked run's rank 0 packaged and logged it
        _package(out)


def _package(out: Path) -> None:
    from raypath.packaging.package import package_outputs

    log.info("model for `raypath predict --model`: %s", package_outputs(out))


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if "_scanner_" not in k)
