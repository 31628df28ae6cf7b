"""The prediction job on the driver: resolve the model, make sure the features exist, predict every
slide with Ray Data, write predictions atomically, a QuPath GeoJSON per slide and the requested
heatmaps (`raypath.predict.overlays`)."""

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
from raypath.packaging.package import download_model
from raypath.packaging.spec import ModelSpec
from raypath.predict.config import PredictConfig
from raypath.predict.features import ensure_features
from raypath.predict.infer import SlidePredictor
from raypath.predict.overlays import draw_heatmaps, write_geojson
from raypath.publish import write_bytes, write_text
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictSummary:
    """What a prediction run wrote."""

    predictions: Path
    slides: int
    missing: list[str]
    heatmaps: list[Path]
    geojson: Path | None = None  # <out>/geojson: one QuPath file per predicted slide


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
    geojson = write_geojson(table, store, config.out) if len(table) else None
    images = draw_heatmaps(table, store, manifest, config)
    log.info("predicted %d slides -> %s", len(table), path)
    return PredictSummary(predictions=path, slides=len(table), missing=missing, heatmaps=images,
                          geojson=geojson)


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
