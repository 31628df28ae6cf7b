"""The cache's shuffled row layout: a sampled bag is a window of consecutive rows, every row is sampled
with the same probability, small bags keep every row, registered locations follow the permuted
rows, and outside training-time sampling the layout is invisible (the store's tiles, in its order)."""

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from bagkit import bagset_from_bags

from raypath.mil.bags import simulated_bagset
from raypath.mil.cache import LAYOUT_SEED, cache_directory, open_cache
from raypath.mil.layout import HEADER_BYTES, RowLayout, RowPrefetch, inverse, runs, tile_order
from raypath.mil.sampling import Collator
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.slides.registration import registration_transforms
from raypath.store import Bag, FeatureStore
from raypath.train.data import load_training_data, read_tables, registered_locations

SIM = {"n_specimens": 6, "tiles": 40, "dim": 8, "seed": 5}


def _bag(slide: str, specimen: str, scanner: str, n: int) -> Bag:
    features = np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1000 * len(slide)
    coords = np.stack([np.arange(n) * 10, np.zeros(n)], axis=1).astype(np.int64)
    return Bag(slide_id=slide, specimen_id=specimen, patient_id="P" + specimen, scanner=scanner,
               features=features, coords=coords, extent_l0=10, metadata={})


def _shuffled(bagset):
    """The bags as the cache lays them out: each bag's rows in `tile_order`, with the layout."""
    orders = [tile_order(s, n, seed=LAYOUT_SEED) for s, n in zip(bagset.slides["slide_id"], bagset.lengths,
                                                                 strict=True)]
    rows = np.concatenate([start + order for start, order in zip(bagset.offsets[:-1], orders, strict=True)])
    layout = RowLayout(positions=np.concatenate([inverse(o) for o in orders]), seed=LAYOUT_SEED)
    return replace(bagset, features=bagset.features[rows], coords=bagset.coords[rows], layout=layout)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated) -> Path:
    return write_simulated(tmp_path_factory.mktemp("cohort"), **SIM)


def _store(cohort: Path) -> FeatureStore:
    (tiling_hash,) = [p.name for p in (cohort / "features" / "sim-8").iterdir() if p.is_dir()]
    return FeatureStore(cohort / "features", encoder="sim-8", tiling_hash=tiling_hash)


def test_a_sampled_bag_is_a_window_and_every_row_equally_likely():
    n, keep, epochs = 40, 8, 3000
    bagset = _shuffled(bagset_from_bags([_bag("x", "S", "A", n)]))
    collate = Collator.from_bagset(bagset, scanner_codes={"A": 0})
    generator = torch.Generator().manual_seed(0)
    counts = np.zeros(n)
    for _ in range(epochs):
        rows = np.sort(collate.select(np.array([0]), max_tiles=keep, generator=generator).tile[0].numpy())
        first = rows[0] if rows[-1] - rows[0] == keep - 1 else rows[np.flatnonzero(np.diff(rows) > 1)[0] + 1]
        assert sorted((first + np.arange(keep)) % n) == rows.tolist()  # one cyclic window
        counts[rows] += 1
    expected = epochs * keep / n  # 600; binomial sd ~22
    assert np.abs(counts - expected).max() < 6 * np.sqrt(expected * (1 - keep / n))


def test_a_bag_smaller_than_max_tiles_yields_all_rows_in_the_store_order():
    bagset = bagset_from_bags([_bag("small", "S", "A", 5), _bag("large", "T", "A", 30)])
    shuffled = _shuffled(bagset)
    collate = Collator.from_bagset(shuffled, scanner_codes={"A": 0})
    batch = collate(np.array([0, 1]), max_tiles=10, generator=torch.Generator().manual_seed(1))
    small = int(np.flatnonzero(bagset.slides["slide_id"] == "small")[0])
    np.testing.assert_array_equal(batch.features[small, :5].numpy(), bagset.tiles(small))
    assert batch.mask[small].sum() == 5


def test_evaluation_and_whole_bags_see_the_store_order():
    bagset = bagset_from_bags([_bag("a", "S", "A", 7), _bag("bb", "T", "A", 23)])
    plain = Collator.from_bagset(bagset, scanner_codes={"A": 0})
    shuffled = Collator.from_bagset(_shuffled(bagset), scanner_codes={"A": 0})
    for max_tiles in (None, 5):
        expected = plain(np.array([0, 1]), max_tiles=max_tiles)
        got = shuffled(np.array([0, 1]), max_tiles=max_tiles)
        torch.testing.assert_close(got.features, expected.features, rtol=0, atol=0)
        assert torch.equal(got.mask, expected.mask)


def test_the_cache_writes_each_bag_shuffled_page_aligned_with_its_layout(cohort, tmp_path):
    store = _store(cohort)
    bags = open_cache(store, root=tmp_path, storage="float32")
    expected = simulated_bagset(simulate_cohort(SimulateConfig(**SIM)))
    directory = cache_directory(tmp_path, store, storage="float32")
    assert (directory / "features.npy").stat().st_size == HEADER_BYTES + bags.features.nbytes
    for slide in range(bags.n_slides):
        start, stop = bags.offsets[slide], bags.offsets[slide + 1]
        order = tile_order(str(bags.slides["slide_id"].iloc[slide]), stop - start, seed=LAYOUT_SEED)
        np.testing.assert_array_equal(bags.tiles(slide), expected.tiles(slide)[order])
        np.testing.assert_array_equal(bags.coords[start:stop], expected.coords[start:stop][order])
        np.testing.assert_array_equal(np.asarray(bags.layout.positions[start:stop]), inverse(order))
    assert not np.array_equal(bags.features, expected.features)  # the rows did move


def test_registered_locations_stay_aligned_with_the_permuted_rows(cohort, tmp_path):
    store = _store(cohort)
    tables = read_tables(labels=cohort / "labels.csv", registration=cohort / "registration.parquet")
    in_store_order = bagset_from_bags([store.read_bag(s) for s in store.slide_ids()])
    expected = registered_locations(in_store_order, tables.registration)
    cached = load_training_data(store=store, labels=cohort / "labels.csv", cache_root=tmp_path,
                                registration=cohort / "registration.parquet")
    positions, offsets = np.asarray(cached.layout.positions), cached.offsets
    row_of = {s: i for i, s in enumerate(cached.slides["slide_id"])}
    reference_of = {s: ref for s, (ref, _) in registration_transforms(tables.registration).items()}
    assert (expected >= 0).mean() > 0.5
    for slide_id, slide in row_of.items():
        start, stop = offsets[slide], offsets[slide + 1]
        reference = row_of[reference_of.get(slide_id, slide_id)]
        want = expected[start:stop]  # store tile t of this slide <-> store tile want[t] of the reference
        ref_rows = positions[offsets[reference]: offsets[reference + 1]]
        got = cached.locations[start + positions[start:stop]]  # the row holding store tile t
        np.testing.assert_array_equal(got, np.where(want >= 0, ref_rows[np.maximum(want, 0)], -1))


def test_windows_keep_registered_pairs_together(cohort, tmp_path):
    cached = load_training_data(store=_store(cohort), labels=cohort / "labels.csv", cache_root=tmp_path,
                                registration=cohort / "registration.parquet")
    collate = Collator.from_bagset(cached, scanner_codes={})
    scans = np.flatnonzero(cached.slides["specimen_id"] == cached.slides["specimen_id"].iloc[0])
    assert len(scans) >= 2
    for seed in range(5):
        groups = collate(scans, max_tiles=10, generator=torch.Generator().manual_seed(seed)).tile_group
        assert (groups >= 0).all()  # every scan of the specimen kept the same 10 tissue locations
        assert all(sorted(g.tolist()) == sorted(groups[0].tolist()) for g in groups)


def test_prefetch_asks_once_per_run_of_rows_and_survives_pickling(tmp_path):
    starts, lengths = runs(np.array([3, 4, 5, 9, 11, 12]))
    assert starts.tolist() == [3, 9, 11] and lengths.tolist() == [3, 1, 2]
    path = tmp_path / "rows.bin"
    path.write_bytes(bytes(HEADER_BYTES + 64 * 16))
    prefetch = pickle.loads(pickle.dumps(RowPrefetch(path, offset=HEADER_BYTES, row_bytes=16)))
    prefetch(np.array([5, 1, 2, 3]))  # no error; the kernel is only advised
