"""predict's QuPath GeoJSON, read back with shapely: one tile object per stored tile (its level-0
square) carrying the attention predict wrote, and one annotation over the tiles with the score."""

import json

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box, shape

from raypath.predict.overlays import ATTENTION, write_geojson
from raypath.store import FeatureStore, provenance, tiles_table

SLIDE = {"slide_id": "s1", "specimen_id": "sp1", "patient_id": "p1", "scanner": "A"}


@pytest.fixture
def store(tmp_path) -> FeatureStore:
    meta = provenance(encoder="tiny", card={"name": "tiny"}, weights_hash="w", tiling={"tile_px": 224},
                      tiling_hash="abc", embed_dim=4)
    coords = np.array([[0, 0], [448, 0], [896, 448]])
    table = tiles_table(slide=SLIDE, coords=coords, features=np.zeros((3, 4), np.float32), extent_l0=448,
                        tile_px=224, mpp=0.5, tissue_fraction=np.ones(3), metadata=meta)
    store = FeatureStore(tmp_path / "features", encoder="tiny", tiling_hash="abc")
    store.write("s1", table)
    return store


def test_tiles_carry_the_predicted_attention_and_the_annotation_the_slide_score(store, tmp_path):
    attention = [0.5, 2.0, float("nan")]  # the last tile left out by eval_max_tiles
    table = pd.DataFrame([{"slide_id": "s1", "score": 0.8, "decision": 2, "prob_0": 0.1, "prob_1": 0.1,
                           "prob_2": 0.8, "attention": attention}])
    directory = write_geojson(table, store, tmp_path / "out")
    slide, *tiles = json.loads((directory / "s1.geojson").read_text())["features"]
    assert slide["properties"]["objectType"] == "annotation"
    assert slide["properties"]["name"] == "s1: score 0.800"
    assert slide["properties"]["measurements"] == {"score": 0.8, "decision": 2, "tiles": 3, "prob_0": 0.1,
                                                   "prob_1": 0.1, "prob_2": 0.8}
    assert shape(slide["geometry"]).area == 3 * 448**2
    coords, _ = store.read_coords("s1")
    assert all(shape(t["geometry"]).equals(box(x, y, x + 448, y + 448))
               for t, (x, y) in zip(tiles, coords, strict=True))
    values = [t["properties"].get("measurements", {}) for t in tiles]
    assert values[:2] == [{ATTENTION: 0.5, f"log2 {ATTENTION}": -1.0},
                          {ATTENTION: 2.0, f"log2 {ATTENTION}": 1.0}]
    assert values[2] == {}, "no measurement for a tile the model did not see"


def test_a_store_that_disagrees_with_the_predictions_is_named(store, tmp_path):
    table = pd.DataFrame([{"slide_id": "s1", "score": 0.8, "decision": 1, "attention": [1.0, 1.0]}])
    with pytest.raises(ValueError, match="slide s1: 3 tiles in the store but 2 attention values"):
        write_geojson(table, store, tmp_path / "out")
