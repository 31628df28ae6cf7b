"""Issue 8, case 13: features written by two versions of an FM (other weights, other schema) read
together raise a ProvenanceError naming what differs; they are never silently mixed."""

from pathlib import Path

import numpy as np
import pytest
from bagkit import bagset_from_bags, read_bags

from raypath.mil.cache import open_cache
from raypath.store import SCHEMA_VERSION, FeatureStore, ProvenanceError, provenance, tiles_table
from raypath.train.data import load_training_data

ENCODER = "tiny-uni"
TILING_HASH = "abc123def456"
DIM = 8


def metadata(**changes: object) -> dict[str, object]:
    meta = provenance(encoder=ENCODER, card={"name": ENCODER}, weights_hash="weights-v1",
                      tiling={"tile_px": 224}, tiling_hash=TILING_HASH, embed_dim=DIM)
    return {**meta, **changes}


def write_slide(store: FeatureStore, index: int, meta: dict[str, object]) -> str:
    slide_id = f"slide-{index}"
    identity = {"slide_id": slide_id, "specimen_id": f"S{index}", "patient_id": f"P{index}",
                "scanner": "scanner-a"}
    rng = np.random.default_rng(index)
    table = tiles_table(slide=identity, coords=np.arange(8).reshape(4, 2) * 224,
                        features=rng.normal(size=(4, DIM)).astype(np.float32), extent_l0=224, tile_px=224,
                        mpp=0.5, tissue_fraction=np.ones(4), metadata=meta)
    store.write(slide_id, table)
    return slide_id


VERSIONS = {
    "weights_hash": {"weights_hash": "weights-v2"},
    "schema_version": {"schema_version": SCHEMA_VERSION + 1},
}


@pytest.fixture(params=sorted(VERSIONS))
def mixed_store(request, tmp_path) -> tuple[FeatureStore, str, tuple[object, object]]:
    """One slide from FM version 1 and one from version 2 under the same store directory."""
    store = FeatureStore(tmp_path, encoder=ENCODER, tiling_hash=TILING_HASH)
    key = request.param
    write_slide(store, 0, metadata())
    write_slide(store, 1, metadata(**VERSIONS[key]))
    return store, key, (metadata()[key], VERSIONS[key][key])


def test_case13_the_store_refuses_to_mix_fm_versions(mixed_store):
    store, key, (old, new) = mixed_store
    with pytest.raises(ProvenanceError, match=key) as error:
        read_bags(store)
    assert str(old) in str(error.value) and str(new) in str(error.value)


def test_case13_the_feature_cache_refuses_to_mix_fm_versions(mixed_store, tmp_path):
    store, key, _ = mixed_store
    with pytest.raises(ProvenanceError, match=key):
        open_cache(store, root=tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npy")), "a refused build leaves nothing behind"


def test_case13_packing_bags_of_different_fm_versions_is_refused(mixed_store):
    """Bags read one by one (e.g. from two stores) must not be packed into one training set."""
    store, key, _ = mixed_store
    bags = [store.read_bag(slide_id) for slide_id in store.slide_ids()]
    with pytest.raises(ProvenanceError, match=key):
        bagset_from_bags(bags)


def test_case13_training_data_refuses_to_mix_fm_versions(mixed_store, tmp_path):
    store, key, _ = mixed_store
    labels = Path(tmp_path, "labels.csv")
    labels.write_text("patient_id,label\nP0,0\nP1,1\n")
    with pytest.raises(ProvenanceError, match=key):
        load_training_data(store=store, labels=labels, cache_root=tmp_path / "cache")


def test_case13_a_single_file_of_an_unsupported_schema_version_is_refused(tmp_path):
    store = FeatureStore(tmp_path, encoder=ENCODER, tiling_hash=TILING_HASH)
    write_slide(store, 0, metadata(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(ProvenanceError, match="schema version"):
        open_cache(store, root=tmp_path / "cache")


def test_features_filed_under_another_fms_name_are_refused(tmp_path):
    """Issue 16, case 5: A's features copied under B's name never train as B's."""
    store = FeatureStore(tmp_path / "features", encoder="tiny-virchow2", tiling_hash=TILING_HASH)
    write_slide(store, 0, metadata())  # recorded encoder: tiny-uni
    with pytest.raises(ProvenanceError, match="written by encoder 'tiny-uni', not 'tiny-virchow2'"):
        open_cache(store, root=tmp_path / "cache")


def test_evaluate_fm_refuses_features_filed_under_another_fms_name(tmp_path, monkeypatch, capsys):
    """Issue 16, case 5: `evaluate-fm --encoder B` on A's files exits 2 naming both, before any metric."""
    from raypath.cli import main
    from raypath.evaluate_fm import pipeline

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("evaluate-fm scored features filed under another FM's name")

    monkeypatch.setattr(pipeline, "robustness", forbidden)
    store = FeatureStore(tmp_path / "features", encoder="tiny-virchow2", tiling_hash=TILING_HASH)
    slides = [write_slide(store, index, metadata()) for index in range(4)]  # recorded encoder: tiny-uni
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("slide_id,path,patient_id,specimen_id,scanner\n" + "".join(
        f"{s},{s}.svs,P{i},S{i},scanner-{'ab'[i % 2]}\n" for i, s in enumerate(slides)))
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,label\n" + "".join(f"P{i},{i % 2}\n" for i in range(4)))
    code = main(["evaluate-fm", "--features", str(tmp_path / "features"), "--encoder", "tiny-virchow2",
                 "--manifest", str(manifest), "--labels", str(labels), "--out", str(tmp_path / "report"),
                 "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2
    assert "written by encoder 'tiny-uni', not 'tiny-virchow2'" in err and "Traceback" not in err
    assert not (tmp_path / "report").exists() or not any((tmp_path / "report").iterdir())
