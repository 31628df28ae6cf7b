"""Feature store: schema, provenance metadata, atomic writes and refusal to mix provenance."""

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bagkit import read_bags, read_metadata

from raypath.store import (
    METADATA_KEY,
    SCHEMA_VERSION,
    FeatureStore,
    ProvenanceError,
    provenance,
    tiles_table,
)

SLIDE = {"slide_id": "s1", "specimen_id": "sp1", "patient_id": "p1", "scanner": "A"}


def make_table(*, slide=SLIDE, dim=8, count=5, weights_hash="w1"):
    meta = provenance(encoder="tiny", card={"name": "tiny"}, weights_hash=weights_hash,
                      tiling={"tile_px": 224}, tiling_hash="abc", embed_dim=dim)
    rng = np.random.default_rng(0)
    return tiles_table(slide=slide, coords=rng.integers(0, 1000, (count, 2)),
                       features=rng.normal(size=(count, dim)).astype(np.float32), extent_l0=448,
                       tile_px=224, mpp=0.5, tissue_fraction=np.ones(count), metadata=meta)


def test_roundtrip_and_schema(tmp_path: Path):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    table = make_table()
    path = store.write("s1", table)
    assert Path(path) == tmp_path / "tiny" / "abc" / "s1.parquet"
    bag = store.read_bag("s1")
    np.testing.assert_array_equal(bag.features, np.stack(table.column("features").to_pylist()))
    assert bag.features.dtype == np.float32 and bag.coords.shape == (5, 2)
    assert (bag.specimen_id, bag.scanner, bag.extent_l0) == ("sp1", "A", 448)
    schema = pq.read_schema(path)
    assert schema.field("features").type.list_size == 8
    meta = json.loads(schema.metadata[METADATA_KEY])
    assert meta["schema_version"] == SCHEMA_VERSION and meta["code_hash"]
    assert read_metadata(path)["weights_hash"] == "w1"


def test_write_is_atomic_and_temporaries_are_invisible(tmp_path: Path, monkeypatch):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError):
        store.write("s1", make_table())
    assert not store.has("s1") and store.slide_ids() == []
    assert list((tmp_path / "tiny" / "abc").iterdir()) == []


def test_stale_temporaries_are_cleared(tmp_path: Path):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    store.write("s1", make_table())
    (tmp_path / "tiny" / "abc" / ".s2.parquet.tmp-1234").write_bytes(b"half")
    assert store.slide_ids() == ["s1"]
    assert store.clear_temporaries() == 1


def test_mixed_provenance_is_refused(tmp_path: Path):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    store.write("s1", make_table())
    store.write("s2", make_table(slide={**SLIDE, "slide_id": "s2"}, weights_hash="w2"))
    with pytest.raises(ProvenanceError, match="weights_hash"):
        read_bags(store)


def test_unsafe_slide_id_is_refused(tmp_path: Path):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    with pytest.raises(ValueError, match="unsafe"):
        store.slide_path("../x")


def test_new_files_must_match_existing_provenance(tmp_path: Path):
    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    store.check_compatible(read_metadata_of(make_table()))  # empty store: anything goes
    store.write("s1", make_table())
    store.check_compatible(read_metadata_of(make_table()))
    with pytest.raises(ProvenanceError, match="weights_hash"):
        store.check_compatible(read_metadata_of(make_table(weights_hash="retrained")))


def read_metadata_of(table):
    return json.loads(table.schema.metadata[METADATA_KEY])


def test_tiling_hashes_lists_only_finished_layout_directories(tmp_path: Path):
    from raypath.store import tiling_hashes

    store = FeatureStore(tmp_path, encoder="tiny", tiling_hash="abc")
    store.write("s1", make_table())
    (tmp_path / "tiny" / "_runs").mkdir()
    assert tiling_hashes(tmp_path, encoder="tiny") == ["abc"]
    assert tiling_hashes(tmp_path, encoder="absent") == []
