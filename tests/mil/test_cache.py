"""The node-local feature cache: exact, atomic, built once under concurrency, refused when it does not
belong to the store, and float16/bfloat16 storage trains like float32 within a stated tolerance."""

import json
import mmap
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

import raypath.mil.cache as cache_module
from raypath.mil.bags import simulated_bagset
from raypath.mil.cache import CacheInfo, cache_directory, load_cache, open_cache
from raypath.mil.layout import store_rows
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.store import FeatureStore, ProvenanceError
from raypath.train.config import TrainConfig
from raypath.train.data import load_training_data
from raypath.train.engine import train_one

SIM = {"n_specimens": 24, "tiles": 10, "dim": 16, "seed": 3, "label_strength": 3.0}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated) -> Path:
    return write_simulated(tmp_path_factory.mktemp("cohort"), **SIM)


def _store(cohort: Path) -> FeatureStore:
    encoder = "sim-16"
    (tiling_hash,) = [p.name for p in (cohort / "features" / encoder).iterdir() if p.is_dir()]
    return FeatureStore(cohort / "features", encoder=encoder, tiling_hash=tiling_hash)


def _mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a memory map of a file (not a copy)."""
    while isinstance(array, np.ndarray):
        array = array.base
    return isinstance(array.obj if isinstance(array, memoryview) else array, mmap.mmap)


def test_float32_cache_is_the_store_exactly_and_memory_mapped(cohort, tmp_path):
    """Exact, each bag's rows in the cache's recorded order (tests/mil/test_layout.py checks that
    order); read back through the layout, the store's tiles in the store's order."""
    bags = open_cache(_store(cohort), root=tmp_path, storage="float32")
    expected = simulated_bagset(simulate_cohort(SimulateConfig(**SIM)))
    assert _mapped(bags.features) and not bags.features.flags.writeable
    rows = store_rows(bags.offsets, bags.layout)
    np.testing.assert_array_equal(bags.features[rows], expected.features)
    np.testing.assert_array_equal(bags.offsets, expected.offsets)
    np.testing.assert_array_equal(bags.coords[rows], expected.coords)
    assert bags.slides["slide_id"].tolist() == expected.slides["slide_id"].tolist()


def test_half_precision_storage_rounds_to_nearest(cohort, tmp_path):
    exact = open_cache(_store(cohort), root=tmp_path, storage="float32").features
    half = open_cache(_store(cohort), root=tmp_path, storage="float16").features
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), exact, rtol=2**-11, atol=1e-7)
    bf16 = open_cache(_store(cohort), root=tmp_path, storage="bfloat16")
    assert bf16.bfloat16 and bf16.features.dtype == np.uint16
    widened = (bf16.features.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_allclose(widened, exact, rtol=2**-8, atol=0)


def test_reduced_precision_trains_to_the_same_metrics(cohort, tmp_path):
    """float16 / bfloat16 storage, float32 compute: the same model within a stated tolerance
    (scores within 0.03, AUC and spread within 0.03) as float32 storage."""
    config = TrainConfig.model_validate({
        "epochs": 4, "batch_specimens": 6, "robustness_k": 3, "split": {"source": "column"},
        "early_stopping": {"enabled": False}, "losses": {"infonce": 0.5, "score_consistency": 1.0},
        "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.0}})
    results = {storage: train_one(config=config, seed=0, data=load_training_data(
        store=_store(cohort), labels=cohort / "labels.csv", splits=cohort / "splits.csv",
        cache_root=tmp_path, storage=storage)) for storage in ("float32", "float16", "bfloat16")}
    reference = results["float32"]
    for storage in ("float16", "bfloat16"):
        result = results[storage]
        np.testing.assert_allclose(result.predictions["score"], reference.predictions["score"], atol=0.03)
        for metric in ("test/auc", "test/score_spread", "val/auc"):
            assert result.metrics[metric] == pytest.approx(reference.metrics[metric], abs=0.03), metric


def test_a_failed_build_leaves_nothing_and_the_next_one_succeeds(cohort, tmp_path, monkeypatch):
    store = _store(cohort)
    calls = {"n": 0}
    original = FeatureStore.read_tiles

    def failing(self, slide_id):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk went away")
        return original(self, slide_id)

    monkeypatch.setattr(FeatureStore, "read_tiles", failing)
    with pytest.raises(OSError, match="disk went away"):
        open_cache(store, root=tmp_path)
    leftovers = [p.name for p in cache_directory(tmp_path, store, storage="float16").parent.iterdir()
                 if not p.name.endswith(".lock")]
    assert leftovers == []
    monkeypatch.setattr(FeatureStore, "read_tiles", original)
    assert open_cache(store, root=tmp_path).n_slides == 72


def _open_in_process(args: tuple[str, str, str, str]) -> float:
    cohort, root, counter, barrier_path = args
    original = cache_module._write

    def counted(*a, **k):
        with open(counter, "a") as handle:
            handle.write("build\n")
        return original(*a, **k)

    cache_module._write = counted
    while not Path(barrier_path).exists():  # start together
        pass
    return float(np.asarray(open_cache(_store(Path(cohort)), root=Path(root)).features, np.float32).sum())


@pytest.mark.slow
def test_processes_starting_together_build_once_and_read_the_same(cohort, tmp_path):
    counter, barrier = tmp_path / "builds.txt", tmp_path / "go"
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        pending = pool.map_async(_open_in_process, [(str(cohort), str(tmp_path / "cache"), str(counter),
                                                     str(barrier))] * 4)
        barrier.touch()
        sums = pending.get(timeout=120)
    assert counter.read_text().splitlines() == ["build"]
    assert len(set(sums)) == 1


def test_a_changed_store_gets_a_new_cache_and_the_old_one_goes(cohort, tmp_path, write_simulated):
    root = tmp_path / "copy"
    write_simulated(root, **SIM)
    store = _store(root)
    open_cache(store, root=tmp_path / "cache")
    old = cache_directory(tmp_path / "cache", store, storage="float16")
    Path(store.slide_path(store.slide_ids()[-1])).unlink()
    bags = open_cache(store, root=tmp_path / "cache")
    assert bags.n_slides == 71 and not old.exists()
    assert cache_directory(tmp_path / "cache", store, storage="float16").exists()


def test_a_cache_that_records_another_store_is_refused(cohort, tmp_path):
    store = _store(cohort)
    open_cache(store, root=tmp_path)
    directory = cache_directory(tmp_path, store, storage="float16")
    record = json.loads((directory / "cache.json").read_text())
    (directory / "cache.json").write_text(json.dumps({**record, "provenance": {
        **record["provenance"], "weights_hash": "other-weights"}}))
    with pytest.raises(ProvenanceError, match="weights_hash"):
        load_cache(directory, store=store)
    assert CacheInfo.read(directory).n_tiles == 720
