"""`raypath train`: one robust MIL model on a feature store (the sweep's engine, a pack of one)."""

import argparse
import json
import logging
import tempfile
from pathlib import Path

from raypath.commands.flags import add_config_flags, config_from_args
from raypath.train.config import TrainConfig

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", type=Path, required=True, help="feature store root")
    parser.add_argument("--encoder", required=True, help="encoder name (directory under --features)")
    parser.add_argument("--tiling-hash", help="tiling hash directory; default: the only one present")
    parser.add_argument("--labels", type=Path, required=True,
                        help="labels.csv (patient_id, label | time, event)")
    parser.add_argument("--splits", type=Path,
                        help="splits.csv (patient_id, split); sets split.source=column")
    parser.add_argument("--registration", type=Path, help="registration.parquet, for tile-level losses")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write metrics.json, predictions.csv, model.safetensors")
    parser.add_argument("--cache-dir", type=Path,
                        help="node-local feature cache; default <out>/cache, else <tmp>/raypath-cache")
    parser.add_argument("--cache-storage", choices=("float16", "bfloat16", "float32"), default="float16",
                        help="feature precision in the cache (compute is float32)")
    parser.add_argument("--unmatched-labels", choices=("error", "warn"), default="error",
                        help="label rows of patients without features: an error, or a warning")
    add_config_flags(parser, TrainConfig, ())


def _tiling_hash(root: Path, encoder: str, given: str | None) -> str:
    if given:
        return given
    found = sorted(p.name for p in (root / encoder).glob("*") if p.is_dir())
    if len(found) != 1:
        raise ValueError(f"{root / encoder}: expected one tiling-hash directory, found {found}; "
                         "pass --tiling-hash")
    return found[0]


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from raypath.store import FeatureStore
    from raypath.train.data import load_training_data
    from raypath.train.engine import train_one

    config = config_from_args(TrainConfig, args, values={"split.source": "column"} if args.splits else None)
    store = FeatureStore(args.features, encoder=args.encoder,
                         tiling_hash=_tiling_hash(args.features, args.encoder, args.tiling_hash))
    default_cache = args.out / "cache" if args.out else Path(tempfile.gettempdir()) / "raypath-cache"
    data = load_training_data(store=store, labels=args.labels, splits=args.splits,
                              registration=args.registration, cache_root=args.cache_dir or default_cache,
                              storage=args.cache_storage, unmatched_labels=args.unmatched_labels)
    result = train_one(config=config, data=data, seed=args.seed,
                       on_epoch=lambda epoch, m: log.info("epoch %d %s", epoch, _fmt(m)))
    log.info("final (best epoch %d): %s", result.best_epoch, _fmt(result.metrics))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "metrics.json").write_text(json.dumps(result.metrics, indent=2, sort_keys=True))
        result.predictions.to_csv(args.out / "predictions.csv", index=False)
        weights = {k: v.contiguous() for k, v in result.state_dict.items()}
        save_file(weights, str(args.out / "model.safetensors"))
        (args.out / "config.json").write_text(config.model_dump_json(indent=2))
    return 0


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if "_scanner_" not in k)
