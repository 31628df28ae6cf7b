"""QuPath GeoJSON: read back with shapely, the tissue polygons are the mask's pixels in level-0
coordinates (holes as interior rings) and the tiles are the planned squares."""

import json

import numpy as np
import pytest
import shapely
from shapely.geometry import box, shape

from raypath.slides.config import TilingConfig
from raypath.slides.geojson import feature_collection, tile_features, tissue_features
from raypath.slides.tiling import plan_tiles


def _mask() -> np.ndarray:
    """A ring of tissue (a hole in the middle) and a separate small island touching the right edge."""
    mask = np.zeros((40, 50), bool)
    mask[4:30, 3:33] = True
    mask[12:20, 12:22] = False
    mask[33:38, 44:50] = True
    return mask


def _read(features: list[dict]) -> dict:
    return json.loads(feature_collection(features))


def test_tissue_is_the_mask_pixels_in_level0_pixels_with_holes_as_interior_rings():
    mask, downsample = _mask(), 8.0
    collection = _read(tissue_features(mask, downsample=downsample, dimensions=(400, 320)))
    assert collection["type"] == "FeatureCollection" and len(collection["features"]) == 2
    ring, island = (shape(f["geometry"]) for f in collection["features"])
    assert ring.area == (26 * 30 - 8 * 10) * downsample**2 and len(ring.interiors) == 1
    assert shapely.Polygon(ring.interiors[0]).equals(box(12 * 8, 12 * 8, 22 * 8, 20 * 8))
    assert island.equals(box(44 * 8, 33 * 8, 400, 38 * 8)), "clipped to the slide's 400 px width"
    assert ring.exterior.is_ccw and not ring.interiors[0].is_ccw, "RFC 7946 winding"
    for item in collection["features"]:
        assert item["properties"]["objectType"] == "annotation"
        assert item["properties"]["classification"] == {"name": "Tissue", "color": [0, 160, 60]}


def test_tiles_overlap_the_tissue_polygons_by_exactly_their_tissue_fraction():
    mask, downsample = _mask(), 8.0
    config = TilingConfig(tile_px=32, target_mpp=1.0, min_tissue_fraction=0.25)
    grid = plan_tiles(mask=mask, mask_downsample=downsample, dimensions=(400, 320), level_downsamples=(1.0,),
                      slide_mpp=1.0, config=config)
    tissue = shapely.union_all([shape(f["geometry"]) for f in _read(
        tissue_features(mask, downsample=downsample, dimensions=(400, 320)))["features"]])
    tiles = _read(tile_features(grid.coords, extent_l0=grid.extent_l0,
                                measurements={"tissue fraction": grid.tissue_fraction}))["features"]
    assert len(tiles) == len(grid) > 10
    for (x, y), fraction, item in zip(grid.coords, grid.tissue_fraction, tiles, strict=True):
        square = shape(item["geometry"])
        assert square.equals(box(x, y, x + 32, y + 32)) and item["properties"]["objectType"] == "tile"
        assert item["properties"]["measurements"]["tissue fraction"] == pytest.approx(fraction, abs=1e-6)
        assert square.intersection(tissue).area / square.area == pytest.approx(fraction, abs=1e-6)


def test_non_finite_measurements_are_left_out_and_the_file_is_strict_json():
    features = tile_features(np.array([[0, 0], [10, 0]]), extent_l0=10,
                             measurements={"attention": np.array([2.0, np.nan])})
    first, second = _read(features)["features"]
    assert first["properties"]["measurements"] == {"attention": 2.0}
    assert "measurements" not in second["properties"]
    assert b"NaN" not in feature_collection(features)


def test_an_empty_mask_gives_no_tissue():
    assert tissue_features(np.zeros((5, 5), bool), downsample=4.0, dimensions=(20, 20)) == []
