import numpy as np
import pandas as pd
import pytest

from raypath.mil.layout import store_rows
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.simulate.store import write_feature_cohort
from raypath.store import FeatureStore
from raypath.train.data import load_training_data

SMALL = {"n_specimens": 40, "tiles": 12, "dim": 8}


def test_reference_cohort_shape_and_one_tissue_per_specimen():
    cohort = simulate_cohort(SimulateConfig(**SMALL))
    assert len(cohort.slides) == 120 and cohort.features.shape == (120 * 12, 8)
    assert (cohort.slides.groupby("specimen_id").size() == 3).all()
    # scans of a specimen cover the same tissue locations, in a different tile order
    first = cohort.locations[:12]
    second = cohort.locations[12:24]
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    np.testing.assert_array_equal(cohort.coords[:12], cohort.tables.grid[first])
    assert set(cohort.labels.columns) == {"patient_id", "label", "time", "event"}
    assert 0.4 < cohort.labels["event"].mean() < 0.95


def test_confounding_ties_scanner_to_label_in_training_only():
    config = SimulateConfig(n_specimens=200, tiles=2, dim=4, scanners=["A", "B", "C"],
                            held_out_scanners=["C"], confounding=1.0, paired_fraction=0.0)
    cohort = simulate_cohort(config)
    slides = cohort.slides.merge(cohort.labels, on="patient_id").merge(cohort.splits, on="patient_id")
    train = slides[slides["split"] == "train"]
    assert (train["scanner"] == train["label"].map({0: "A", 1: "B"})).all()
    test = slides[slides["split"] == "test"]
    assert (test.groupby("specimen_id")["scanner"].apply(lambda s: sorted(s)) == pd.Series(
        [["A", "B", "C"]] * test["specimen_id"].nunique(), index=sorted(test["specimen_id"].unique()))).all()
    assert "C" not in set(train["scanner"])


def test_written_cohort_reads_back_through_the_feature_store(tmp_path):
    config = SimulateConfig(**SMALL)
    cohort = simulate_cohort(config)
    store = write_feature_cohort(config, out=tmp_path)
    assert store.encoder == "sim-8"
    for name in ("manifest.csv", "labels.csv", "splits.csv", "registration.parquet", "truth.csv"):
        assert (tmp_path / name).exists()
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert (tmp_path / manifest["path"].iloc[0]).exists()
    reread = FeatureStore(tmp_path / "features", encoder="sim-8", tiling_hash=store.tiling_hash)
    data = load_training_data(store=reread, labels=tmp_path / "labels.csv", splits=tmp_path / "splits.csv",
                              cache_root=tmp_path / "cache", storage="float32",
                              registration=tmp_path / "registration.parquet")
    rows = store_rows(data.offsets, data.layout)  # the cache shuffles each bag's rows
    np.testing.assert_array_equal(data.features[rows], cohort.features)
    # registration recovers the true tissue correspondence although tile order differs per scan
    first, second = slice(0, 12), slice(12, 24)
    reference_tile = np.empty(12, dtype=np.int64)
    reference_tile[rows[first]] = np.arange(12)  # the reference's cache row -> its store tile
    reference_location = cohort.locations[first]
    located = reference_tile[data.locations[rows[second]]]
    np.testing.assert_array_equal(reference_location[located], cohort.locations[second])
    np.testing.assert_array_equal(reference_tile[data.locations[rows[first]]], np.arange(12))
    assert data.slides["split"].notna().all() and data.slides["label"].notna().all()
    registration = pd.read_parquet(tmp_path / "registration.parquet")
    assert (registration["reference_slide_id"].str.endswith("_A")).all()


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="held_out_scanners"):
        SimulateConfig(scanners=["A"], held_out_scanners=["B"])
