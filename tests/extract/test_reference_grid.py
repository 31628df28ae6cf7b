"""`tiling.grid: reference`: moving scans tiled on their reference scan's grid through the registration.

On a synthetic cohort registered with its true transforms, the same extraction on each grid: the
stores are kept apart by the tiling hash, reference scans are tiled alike, every moving tile on the
reference grid is centred on a reference tile (training's registered tile locations pair them
all), while on per-scan grids pair centres lie up to half a tile apart; a slide the registration
does not cover fails, named, and the rest completes.
"""

import numpy as np
import pandas as pd
import pytest
from bagkit import bagset_from_bags, read_bags

from raypath.extract.config import ExtractConfig
from raypath.extract.run import run_extraction
from raypath.slides.registration import registration_transforms
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig
from raypath.store import FeatureStore
from raypath.train.data import registered_locations

pytestmark = pytest.mark.timeout(600)
UNREGISTERED = "S0000-hamamatsu-s360"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(SynthConfig(seed=3, specimens=2, field_um=(1200.0, 1000.0), workers=1, max_rotation_deg=6.0,
                             max_shift_um=40.0), out)
    truth = pd.read_csv(out / "truth.csv")
    columns = ["slide_id", "specimen_id", "reference_slide_id", "rotation_deg", "tx", "ty", "scale"]
    truth[columns].assign(score=1.0).to_parquet(out / "registration.parquet")  # the true transforms
    truth[columns][truth["slide_id"] != UNREGISTERED].assign(score=1.0).to_parquet(out / "partial.parquet")
    return out


def extract(cohort, output, grid: str, registration: str) -> tuple[ExtractConfig, object, FeatureStore]:
    config = ExtractConfig.model_validate({
        "manifest": cohort / "manifest.csv", "output": str(output), "encoders": ["tiny-uni"],
        "batch_size": 16, "tiles_per_chunk": 8, "run_id": grid, "registration": cohort / registration,
        "tiling": {"grid": grid, "min_tissue_fraction": 0.25}})
    summary = run_extraction(config)
    return config, summary, FeatureStore(output, encoder="tiny-uni", tiling_hash=config.tiling.cache_key())


@pytest.fixture(scope="module")
def both(local_ray, cohort, tmp_path_factory):
    output = tmp_path_factory.mktemp("features")
    runs = (("per_scan", "registration.parquet"), ("reference", "partial.parquet"))
    return {grid: extract(cohort, output, grid, registration) for grid, registration in runs}


def pair_offsets(store: FeatureStore, registration: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(location of every moving tile, distance in reference px of its centre from its paired one)."""
    bagset = bagset_from_bags(read_bags(store))
    locations = registered_locations(bagset, registration)
    transforms, slides = registration_transforms(registration), bagset.slides.reset_index(drop=True)
    found, distances = [], []
    for index, row in slides.iterrows():
        reference, transform = transforms.get(row["slide_id"], (row["slide_id"], None))
        if reference == row["slide_id"]:
            continue
        ref = slides.index[slides["slide_id"] == reference][0]
        own = slice(bagset.offsets[index], bagset.offsets[index + 1])
        centres = transform.apply(np.asarray(bagset.coords[own]) + row["extent_l0"] / 2)
        ref_coords = np.asarray(bagset.coords[bagset.offsets[ref]: bagset.offsets[ref + 1]])
        location = np.asarray(locations[own])
        paired = location >= 0
        found.append(location)
        distances.append(np.linalg.norm(centres[paired] - ref_coords[location[paired]]
                                        - slides.at[ref, "extent_l0"] / 2, axis=1))
    return np.concatenate(found), np.concatenate(distances)


def test_the_tiling_hash_keeps_the_grids_apart(both):
    per_scan, reference = both["per_scan"][2], both["reference"][2]
    assert per_scan.tiling_hash != reference.tiling_hash
    for slide_id in ("S0000-aperio-gt450", "S0001-aperio-gt450"):  # reference scans: their own grid
        np.testing.assert_array_equal(per_scan.read_bag(slide_id).coords, reference.read_bag(slide_id).coords)


def test_every_moving_tile_on_the_reference_grid_pairs_with_the_tile_it_was_mapped_from(both, cohort):
    registration = pd.read_parquet(cohort / "partial.parquet")
    locations, distances = pair_offsets(both["reference"][2], registration)
    assert len(locations) > 10 and np.all(locations >= 0)
    assert distances.max() <= 0.5 * np.sqrt(2)  # rounding to whole level-0 pixels only
    per_scan_locations, per_scan_distances = pair_offsets(both["per_scan"][2], registration)
    assert np.any(per_scan_locations >= 0) and np.median(per_scan_distances) > 10 * np.sqrt(2)


def test_a_slide_missing_from_the_registration_fails_and_is_named(both):
    config, summary, store = both["reference"]
    assert summary.failed_slides == [UNREGISTERED] and summary.failed == 1
    failures = pd.read_csv(f"{config.output}/failures.csv")
    assert failures[["slide_id", "stage"]].values.tolist() == [[UNREGISTERED, "tiling"]]
    assert "registration.parquet" in failures["reason"].iloc[0]
    assert UNREGISTERED not in store.slide_ids() and len(store.slide_ids()) == 3
