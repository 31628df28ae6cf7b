"""Inputs of the attention heatmaps: trained models from MLflow, bags from the feature store,
thumbnails from the slides when a manifest is given, and which test specimens to show."""

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from safetensors.torch import load_file
from torch import nn

from raypath.evaluate.heatmaps import ScanView, attend, backbone_from_state
from raypath.store import FeatureStore

log = logging.getLogger(__name__)


def load_run_model(client: MlflowClient, run_id: str) -> tuple[nn.Module, pd.DataFrame]:
    """(backbone, per-slide predictions) saved by a replicate trial (no pickle anywhere)."""
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(client.download_artifacts(run_id, "model", tmp))
        state = load_file(str(local / "model.safetensors"))
        predictions = pd.read_parquet(local / "predictions.parquet")
    return backbone_from_state(state), predictions


def pick_specimens(predictions: pd.DataFrame, *, count: int) -> list[str]:
    """Test specimens with ≥2 scans whose scores disagree most across scanners (most telling)."""
    test = predictions[predictions["split"] == "test"]
    grouped = test.groupby("specimen_id")["score"]
    spread = grouped.std(ddof=0)[grouped.size() >= 2].sort_values(ascending=False)
    return list(spread.index[:count])


def _thumbnail(
    manifest: pd.DataFrame | None, slide_id: str, *, mpp: float
) -> tuple[np.ndarray | None, float]:
    if manifest is None or slide_id not in manifest.index:
        return None, 1.0
    from raypath.slides.reader import SlideError, open_slide

    path = Path(manifest.at[slide_id, "path"])
    try:
        with open_slide(path) as reader:
            thumb = reader.thumbnail(mpp=mpp)
    except (SlideError, OSError) as exc:  # a feature-level cohort's 'path' is not a slide
        log.info("no thumbnail for %s (%s); drawing on the tile grid", slide_id, exc)
        return None, 1.0
    return thumb.image, thumb.downsample


def load_manifest_paths(path: Path | None) -> pd.DataFrame | None:
    """manifest.csv indexed by slide_id with absolute paths (relative ones resolve against its folder)."""
    if path is None:
        return None
    table = pd.read_csv(path, dtype={"slide_id": str}).set_index("slide_id")
    table["path"] = [str(p if Path(p).is_absolute() else (path.parent / p).resolve()) for p in table["path"]]
    return table


def specimen_views(
    *,
    models: Mapping[str, nn.Module],
    store: FeatureStore,
    predictions: pd.DataFrame,
    specimen: str,
    task: str,
    manifest: pd.DataFrame | None,
    thumbnail_mpp: float,
) -> dict[str, list[ScanView]]:
    """Rows of ScanViews (one per scanner) for each model on one specimen's scans."""
    scans = predictions[predictions["specimen_id"] == specimen].sort_values("scanner")
    bags = [store.read_bag(slide_id) for slide_id in scans["slide_id"]]
    thumbs = [_thumbnail(manifest, bag.slide_id, mpp=thumbnail_mpp) for bag in bags]
    rows: dict[str, list[ScanView]] = {}
    for name, model in models.items():
        rows[name] = []
        for bag, (image, downsample) in zip(bags, thumbs, strict=True):
            attention, score = attend(model, bag, task=task)
            rows[name].append(
                ScanView(
                    scanner=bag.scanner,
                    coords=bag.coords,
                    extent_l0=bag.extent_l0,
                    attention=attention,
                    score=score,
                    thumbnail=image,
                    downsample=downsample,
                )
            )
    return rows
