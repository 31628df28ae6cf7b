"""The data-parallel pieces of the engine that need no process group: who takes which batches, and
the per-rank seeds."""

import numpy as np
import pytest
import torch

from raypath.train.parallel import DataParallel, average, split_evenly


@pytest.mark.parametrize(("count", "world"), [(10, 2), (7, 2), (7, 3), (2, 4), (1, 1)])
def test_every_rank_gets_an_equal_share_and_every_item_is_taken(count, world):
    items = list(range(count))
    shares = [split_evenly(items, rank=r, world_size=world) for r in range(world)]
    assert len({len(share) for share in shares}) == 1  # equal step counts: no collective waits
    assert len(shares[0]) == -(-count // world)
    assert sorted(set().union(*shares)) == items
    if count % world == 0:
        assert sorted(item for share in shares for item in share) == items  # disjoint without padding


def test_ranks_alternate_through_the_batch_list():
    # rank r takes batches r, r + W, ...: step i of W ranks covers batches iW..iW+W-1, i.e. the
    # consecutive specimens one process with a W-times larger batch would take
    assert split_evenly(list("abcdef"), rank=0, world_size=2) == ["a", "c", "e"]
    assert split_evenly(list("abcdef"), rank=1, world_size=2) == ["b", "d", "f"]


def test_a_rank_outside_the_group_is_an_error():
    with pytest.raises(ValueError, match="rank 2"):
        split_evenly([1, 2], rank=2, world_size=2)


def test_without_a_process_group_averaging_is_the_identity_and_seeds_differ_by_rank_and_epoch():
    tensors = [torch.arange(3.0), torch.ones(2, 2)]
    for got, want in zip(average(tensors), tensors, strict=True):
        torch.testing.assert_close(got, want)
    seeds = {DataParallel(rank=r, world_size=2, seed=0).epoch_seed(e) for r in (0, 1) for e in (0, 1)}
    assert len(seeds) == 4
    assert DataParallel(rank=1, world_size=2, seed=0).epoch_seed(3) == DataParallel(
        rank=1, world_size=2, seed=0).epoch_seed(3)


@pytest.mark.parametrize(("count", "world"), [(10, 2), (7, 3)])
def test_an_epoch_shard_is_a_seeded_permutation_split_evenly_between_ranks(count, world):
    items = [f"specimen-{i}" for i in range(count)]
    ranks = [DataParallel(rank=r, world_size=world, seed=5) for r in range(world)]
    shards = [p.shard(items, epoch=1) for p in ranks]
    assert len({len(s) for s in shards}) == 1 and sorted(set().union(*shards)) == sorted(items)
    permuted = [items[i] for i in np.random.default_rng([5, 1]).permutation(count)]
    assert shards == [split_evenly(permuted, rank=r, world_size=world) for r in range(world)]
    assert [p.shard(items, epoch=2) for p in ranks] != shards  # a new order every epoch
    assert ranks[0].shard(items, epoch=1) == shards[0]  # a restarted rank draws the same


def test_collectives_without_a_process_group_return_the_value_on_its_own_device():
    parallel = DataParallel(rank=0, world_size=1, seed=0, device="cpu")
    tensor = torch.tensor([1.0, 2.0], dtype=torch.float64)
    (averaged,) = parallel.average([tensor])
    torch.testing.assert_close(averaged, tensor)
    assert averaged.dtype == tensor.dtype and averaged is not tensor
    assert parallel.broadcast(torch.tensor([1])).item() == 1
