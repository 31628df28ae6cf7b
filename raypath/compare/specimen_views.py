"""Inputs of the attention heatmaps: trained models from MLflow, bags from the feature store, the
slide under the tiles when a manifest is given, and which test specimens to show."""

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from torch import nn

from raypath.compare.backdrop import tissue_backdrop
from raypath.compare.heatmaps import Backdrop, ScanView, panel_box
from raypath.packaging.network import load_backbone, predict_bag
from raypath.packaging.package import MODEL_NAME, download_model
from raypath.packaging.spec import ModelSpec
from raypath.store import FeatureStore
from raypath.tracking.queries import TrackingClient, download_artifacts, run_params

log = logging.getLogger(__name__)
HELD_OUT_PARAM = "split.held_out_scanners"  # the train config field, logged as a JSON list


@dataclass(frozen=True)
class RunModel:
    """A replicate run's model, ready to predict, the predictions the sweep logged for it, and the
    scanners its training held out."""

    backbone: nn.Module
    spec: ModelSpec
    predictions: pd.DataFrame
    held_out_scanners: tuple[str, ...] = ()


def load_run_model(client: TrackingClient, run_id: str) -> RunModel:
    """The pyfunc model and predictions a replicate trial logged (safetensors + JSON: no pickle)."""
    with tempfile.TemporaryDirectory() as tmp:
        model, spec = download_model(f"runs:/{run_id}/{MODEL_NAME}", tracking_uri=client.tracking_uri,
                                     into=Path(tmp))
        backbone = load_backbone(spec, model / "artifacts" / "model.safetensors")
        predictions = pd.read_parquet(download_artifacts(client, run_id, "predictions", into=Path(tmp))
                                      / "predictions.parquet")
    held_out = json.loads(run_params(client, run_id).get(HELD_OUT_PARAM, "[]"))
    return RunModel(backbone=backbone, spec=spec, predictions=predictions,
                    held_out_scanners=tuple(held_out))


def pick_specimens(predictions: pd.DataFrame, *, count: int) -> list[str]:
    """Test specimens with ≥2 scans whose scores disagree most across scanners (most telling)."""
    test = predictions[predictions["split"] == "test"]
    grouped = test.groupby("specimen_id")["score"]
    spread = grouped.std(ddof=0)[grouped.size() >= 2].sort_values(ascending=False)
    return list(spread.index[:count])


def _backdrop(manifest: pd.DataFrame | None, slide_id: str, *, box: tuple[int, int, int, int],
              mpp: float) -> Backdrop | None:
    if manifest is None or slide_id not in manifest.index:
        return None
    return tissue_backdrop(manifest.at[slide_id, "path"], box=box, mpp=mpp)


def load_manifest_paths(path: Path | None) -> pd.DataFrame | None:
    """manifest.csv indexed by slide_id with absolute paths (relative ones resolve against its folder)."""
    if path is None:
        return None
    table = pd.read_csv(path, dtype={"slide_id": str}).set_index("slide_id")
    table["path"] = [str(p if Path(p).is_absolute() else (path.parent / p).resolve()) for p in table["path"]]
    return table


def specimen_views(
    *,
    models: Mapping[str, RunModel],
    store: FeatureStore,
    predictions: pd.DataFrame,
    specimen: str,
    manifest: pd.DataFrame | None,
    thumbnail_mpp: float,
) -> dict[str, list[ScanView]]:
    """Rows of ScanViews (one per scanner) for each model on one specimen's scans."""
    scans = predictions[predictions["specimen_id"] == specimen].sort_values("scanner")
    bags = [store.read_bag(slide_id) for slide_id in scans["slide_id"]]
    box = panel_box([bag.coords for bag in bags], extent_l0=bags[0].extent_l0)
    backdrops = [_backdrop(manifest, bag.slide_id, box=box, mpp=thumbnail_mpp) for bag in bags]
    rows: dict[str, list[ScanView]] = {}
    for name, model in models.items():
        rows[name] = []
        for bag, backdrop in zip(bags, backdrops, strict=True):
            scores, attention = predict_bag(model.backbone, model.spec, bag.features)
            score = float(scores.max())
            rows[name].append(
                ScanView(
                    scanner=bag.scanner,
                    coords=bag.coords,
                    extent_l0=bag.extent_l0,
                    attention=attention,
                    score=score,
                    backdrop=backdrop,
                    tile_um=bag.tile_um,
                    held_out=bag.scanner in model.held_out_scanners,
                )
            )
    return rows
