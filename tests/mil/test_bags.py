import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from bagkit import bagset_from_bags

from raypath.mil.bags import locations_from_pairs
from raypath.mil.sampling import UNKNOWN_SCANNER, Collator, specimen_batches, specimen_groups
from raypath.store import Bag


def _bag(slide, specimen, scanner, n, d=4, start=0.0):
    features = (start + np.arange(n * d, dtype=np.float32)).reshape(n, d)
    coords = np.stack([np.arange(n) * 10, np.zeros(n)], axis=1).astype(np.int64)
    return Bag(slide_id=slide, specimen_id=specimen, patient_id="P" + specimen, scanner=scanner,
               features=features, coords=coords, extent_l0=10, metadata={})


@pytest.fixture
def bagset():
    bags = [_bag("b2", "S2", "A", 3, start=100), _bag("a1", "S1", "B", 4, start=200),
            _bag("a0", "S1", "A", 2, start=300), _bag("e", "S3", "A", 0)]
    return bagset_from_bags(bags)


def test_bags_are_packed_once_sorted_by_specimen_and_empty_ones_dropped(bagset):
    assert list(bagset.slides["slide_id"]) == ["a0", "a1", "b2"]
    assert list(bagset.offsets) == [0, 2, 6, 9]
    assert bagset.features.flags["C_CONTIGUOUS"] and bagset.features.dtype == np.float32
    np.testing.assert_array_equal(bagset.tiles(1)[0], [200, 201, 202, 203])
    assert [list(g) for g in specimen_groups(bagset, np.arange(bagset.n_slides))] == [[0, 1], [2]]
    clone = pickle.loads(pickle.dumps(bagset))
    np.testing.assert_array_equal(clone.features, bagset.features)


def test_locations_from_registered_pairs(bagset):
    pairs = {"a1": ("a0", np.array([[0, 3], [1, 0]]))}
    locations = locations_from_pairs(bagset, pairs)
    np.testing.assert_array_equal(locations[:2], [0, 1])  # reference scan
    np.testing.assert_array_equal(locations[2:6], [1, -1, -1, 0])
    np.testing.assert_array_equal(locations[6:], [-1, -1, -1])  # no registration: never assumed


def test_collation_pads_masks_and_pairs_tiles(bagset):
    bagset = bagset.with_locations(locations_from_pairs(bagset, {"a1": ("a0", np.array([[0, 3], [1, 0]]))}))
    bagset = bagset.with_columns(
        pd.DataFrame({"patient_id": ["PS1", "PS2"], "label": [1, 0]}), on="patient_id")
    collate = Collator.from_bagset(bagset, scanner_codes={"A": 0})
    batch = collate(np.array([0, 1, 2]))
    assert batch.features.shape == (3, 4, 4)
    assert batch.mask.sum(dim=1).tolist() == [2, 4, 3]
    assert torch.all(batch.features[0, 2:] == 0)
    assert batch.specimen.tolist() == [0, 0, 1]
    assert batch.scanner.tolist() == [0, UNKNOWN_SCANNER, 0]
    assert batch.label.tolist() == [1, 1, 0]
    groups = batch.tile_group
    assert groups[0, 0] == groups[1, 3] and groups[0, 1] == groups[1, 0] and groups[0, 0] != groups[0, 1]
    assert torch.all(groups[2] == -1) and torch.all(groups[~batch.mask] == -1)


def test_subsampling_is_seeded_and_keeps_matched_tiles_together():
    n = 50
    bags = [_bag("x0", "S", "A", n), _bag("x1", "S", "B", n)]
    bagset = bagset_from_bags(bags)
    permutation = np.random.default_rng(0).permutation(n)
    bagset = bagset.with_locations(locations_from_pairs(
        bagset, {"x1": ("x0", np.stack([permutation, np.arange(n)], axis=1))}))
    collate = Collator.from_bagset(bagset, scanner_codes={"A": 0, "B": 1})
    first = collate(np.array([0, 1]), max_tiles=8, generator=torch.Generator().manual_seed(3))
    again = collate(np.array([0, 1]), max_tiles=8, generator=torch.Generator().manual_seed(3))
    assert first.features.shape == (2, 8, 4)
    torch.testing.assert_close(first.features, again.features)
    # both scans kept the same 8 tissue locations, so every sampled tile has its pair
    assert sorted(first.tile_group[0].tolist()) == sorted(first.tile_group[1].tolist())


def test_specimen_batches_keep_all_scans_of_a_specimen(bagset):
    groups = specimen_groups(bagset, np.array([2, 0, 1]))
    assert [g.tolist() for g in groups] == [[0, 1], [2]]
    batches = specimen_batches(groups, batch_specimens=1, generator=torch.Generator().manual_seed(0))
    assert sorted(b.tolist() for b in batches) == [[0, 1], [2]]
