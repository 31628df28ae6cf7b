"""What `raypath predict` draws: a QuPath GeoJSON per predicted slide and the heatmaps asked for.

The GeoJSON puts the prediction on the slide in the viewer pathologists use: every tile as a QuPath
tile object carrying its attention (relative to uniform, and its log2, the scale the PNG heatmaps use:
QuPath's measurement maps then colour the slide the same way), and one annotation over the tiles the
model saw, named with the slide's score and carrying score, decision and tile count as measurements.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from raypath.compare.backdrop import tissue_backdrop
from raypath.compare.heatmaps import ScanView, heatmap_figure, panel_box
from raypath.predict.config import PredictConfig
from raypath.publish import write_bytes
from raypath.slides.geojson import feature, feature_collection, geometry_json, tile_features, tiles_outline
from raypath.store import FeatureStore

log = logging.getLogger(__name__)
PREDICTION = {"name": "Prediction", "color": [200, 40, 40]}
ATTENTION = "attention vs uniform"


def prediction_features(row: pd.Series, *, coords: np.ndarray, extent_l0: int) -> list[dict]:
    """The slide's annotation (score, decision, tiles; class probabilities when multiclass) followed
    by one tile object per tile with its attention."""
    attention = np.asarray(row["attention"], dtype=float)
    values = {"score": row["score"], "decision": row["decision"], "tiles": len(coords),
              **{key: row[key] for key in row.index if str(key).startswith("prob_")}}
    slide = feature(geometry_json(tiles_outline(coords, extent_l0=extent_l0)), object_type="annotation",
                    classification=PREDICTION, name=f"{row['slide_id']}: score {row['score']:.3f}",
                    measurements=values)
    with np.errstate(divide="ignore", invalid="ignore"):
        tiles = tile_features(coords, extent_l0=extent_l0,
                              measurements={ATTENTION: attention, f"log2 {ATTENTION}": np.log2(attention)})
    return [slide, *tiles]


def write_geojson(table: pd.DataFrame, store: FeatureStore, out: Path) -> Path:
    """<out>/geojson/<slide_id>.geojson for every predicted slide, each written atomically."""
    directory = out / "geojson"
    for _, row in table.iterrows():
        coords, extent = store.read_coords(row["slide_id"])
        if len(coords) != len(row["attention"]):
            raise ValueError(f"slide {row['slide_id']}: {len(coords)} tiles in the store but "
                             f"{len(row['attention'])} attention values")
        write_bytes(str(directory / f"{row['slide_id']}.geojson"),
                    feature_collection(prediction_features(row, coords=coords, extent_l0=extent)))
    log.info("QuPath GeoJSON of %d slides -> %s", len(table), directory)
    return directory


def draw_heatmaps(table: pd.DataFrame, store: FeatureStore, manifest: pd.DataFrame,
                  config: PredictConfig) -> list[Path]:
    """The heatmaps asked for by slide id and the `heatmap_top` highest-scoring slides."""
    chosen = list(dict.fromkeys([*config.heatmaps, *table.nlargest(config.heatmap_top, "score")["slide_id"]]))
    unknown = sorted(set(chosen) - set(table["slide_id"]))
    if unknown:
        raise ValueError(f"heatmaps asked for slides that were not predicted: {unknown}")
    paths = manifest.set_index("slide_id")["path"]
    rows = table.set_index("slide_id")
    return [_heatmap(rows.loc[slide_id], slide_id, store, path=paths.get(slide_id), config=config)
            for slide_id in chosen]


def _heatmap(row: pd.Series, slide_id: str, store: FeatureStore, *, path: str | None,
             config: PredictConfig) -> Path:
    bag = store.read_bag(slide_id)
    box = panel_box([bag.coords], extent_l0=bag.extent_l0)
    backdrop = tissue_backdrop(path, box=box, mpp=config.thumbnail_mpp)
    view = ScanView(scanner=bag.scanner, coords=bag.coords, extent_l0=bag.extent_l0,
                    attention=np.asarray(row["attention"], dtype=float), score=float(row["score"]),
                    backdrop=backdrop, tile_um=bag.tile_um)
    return heatmap_figure({"": [view]}, title=f"{slide_id}: score {row['score']:.3f}",
                          path=config.out / "heatmaps" / f"{slide_id}.png")
