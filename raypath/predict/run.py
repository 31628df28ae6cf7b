"""The prediction job on the driver: resolve the model, make sure the features exist, predict every
slide with Ray Data, write predictions atomically, draw the requested heatmaps."""

import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import ray

from raypath.cluster import connect
from raypath.cohort import load_manifest
from raypath.evaluate.heatmaps import ScanView, heatmap_figure
from raypath.evaluate.specimen_views import slide_thumbnail
from raypath.extract.atomic import write_bytes, write_text
from raypath.predict.config import PredictConfig
from raypath.predict.features import ensure_features
from raypath.predict.infer import SlidePredictor
from raypath.registry.package import download_model
from raypath.registry.spec import ModelSpec
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictSummary:
    """What a prediction run wrote."""

    predictions: Path
    slides: int
    missing: list[str]
    heatmaps: list[Path]


def run_prediction(config: PredictConfig) -> PredictSummary:
    """Every slide of the manifest that has (or gets) features, predicted; see the module doc."""
    config.require()
    manifest = load_manifest(config.manifest, check_files=False)
    with tempfile.TemporaryDirectory() as tmp:
        directory, spec = download_model(config.model, tracking_uri=config.tracking_uri, into=Path(tmp))
        weights = (directory / "artifacts" / "model.safetensors").read_bytes()
        adapter = (directory / "artifacts" / spec.adapter.file).read_bytes() if spec.adapter else None
    log.info("model %s: %s on %s features (tiling %s)", config.model, spec.task, spec.provenance["encoder"],
             spec.provenance["tiling_hash"])
    store = ensure_features(spec, config, manifest, adapter=adapter)
    ready = sorted(set(manifest["slide_id"].astype(str)) & set(store.slide_ids()))
    missing = sorted(set(manifest["slide_id"].astype(str)) - set(ready))
    if missing:
        log.warning("%d slides have no features (failed or skipped in extraction): %s", len(missing),
                    missing[:10])
    table = _predict(spec, weights, store, ready, config=config) if ready else pd.DataFrame()
    table = manifest.drop(columns=["path"]).astype({"slide_id": str}).merge(table, on="slide_id", how="inner")
    config.out.mkdir(parents=True, exist_ok=True)
    path = _write(table, config.out)
    images = _heatmaps(table, spec, store, manifest, config)
    log.info("predicted %d slides -> %s", len(table), path)
    return PredictSummary(predictions=path, slides=len(table), missing=missing, heatmaps=images)


def _predict(spec: ModelSpec, weights: bytes, store: FeatureStore, slide_ids: list[str], *,
             config: PredictConfig) -> pd.DataFrame:
    connect(config.ray_address, log_to_driver=False, settings=config.ray)
    dataset = ray.data.from_items([{"slide_id": s} for s in slide_ids]).map_batches(
        SlidePredictor, batch_size=config.slides_per_batch, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=config.concurrency),
        fn_constructor_kwargs={"spec": spec.model_dump(), "weights": weights,
                               "store": (store.root, store.encoder, store.tiling_hash)})
    table = dataset.to_pandas()
    # Ray returns list columns as pyarrow-backed dtypes; plain arrays keep the Parquet readable anywhere.
    table["attention"] = [np.asarray(values, dtype=np.float32) for values in table["attention"]]
    return table


def _write(table: pd.DataFrame, out: Path) -> Path:
    """predictions.parquet (with attention) and predictions.csv (without), each written whole or not at
    all (a full disk leaves neither half a file nor a temporary one, and names the file it hit)."""
    parquet = out / "predictions.parquet"
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_bytes(str(parquet), buffer.getvalue())
    write_text(str(out / "predictions.csv"), table.drop(columns=["attention"]).to_csv(index=False))
    return parquet


def _heatmaps(table: pd.DataFrame, spec: ModelSpec, store: FeatureStore, manifest: pd.DataFrame,
              config: PredictConfig) -> list[Path]:
    chosen = list(dict.fromkeys([*config.heatmaps, *table.nlargest(config.heatmap_top, "score")["slide_id"]]))
    unknown = sorted(set(chosen) - set(table["slide_id"]))
    if unknown:
        raise ValueError(f"heatmaps asked for slides that were not predicted: {unknown}")
    paths = manifest.set_index("slide_id")["path"]
    images = []
    for slide_id in chosen:
        row = table.set_index("slide_id").loc[slide_id]
        bag = store.read_bag(slide_id)
        image, downsample = slide_thumbnail(paths.get(slide_id), mpp=config.thumbnail_mpp)
        view = ScanView(scanner=bag.scanner, coords=bag.coords, extent_l0=bag.extent_l0,
                        attention=pd.Series(row["attention"]).to_numpy(dtype=float),
                        score=float(row["score"]),
                        thumbnail=image, downsample=downsample)
        images.append(heatmap_figure({slide_id: [view]}, title=f"{slide_id}: score {row['score']:.3f}",
                                     path=config.out / "heatmaps" / f"{slide_id}.png"))
    return images
