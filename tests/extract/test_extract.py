"""The extraction job on a tiny synthetic cohort with a tiny encoder, on a local Ray instance.

One module-scoped cohort and first run are shared; tests that change the output copy it first.
"""

import ctypes
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from bagkit import read_bags
from PIL import Image
from shapely.geometry import shape

from raypath.cli import main
from raypath.encoders.registry import build_encoder
from raypath.extract import rows
from raypath.extract.config import ExtractConfig
from raypath.extract.isolation import ReaderProcessError, stream_in_child
from raypath.extract.pipeline import build_dataset, check_resources, data_context, read_settings
from raypath.extract.run import run_extraction
from raypath.extract.tiles import ReadSettings, _SlideRead, slide_messages
from raypath.slides import open_slide, read_tiles, tile_slide
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig
from raypath.slides.synth.tiff import write_svs
from raypath.store import FeatureStore, feature_schema

ENCODER = "tiny-uni"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(SynthConfig(specimens=2, field_um=(600.0, 600.0), workers=1), out)
    return out


def make_config(manifest: Path, output: Path, **changes) -> ExtractConfig:
    base = {"manifest": manifest, "output": str(output), "encoders": [ENCODER], "batch_size": 16,
            "tiles_per_chunk": 4, "run_id": "test"}
    return ExtractConfig.model_validate({**base, **changes})


@pytest.fixture(scope="module")
def first_run(local_ray, cohort, tmp_path_factory):
    output = tmp_path_factory.mktemp("features")
    config = make_config(cohort / "manifest.csv", output)
    return config, run_extraction(config)


def store_of(config: ExtractConfig, encoder: str = ENCODER) -> FeatureStore:
    return FeatureStore(config.output, encoder=encoder, tiling_hash=config.tiling.cache_key())


def copy_output(config: ExtractConfig, target: Path, **changes) -> ExtractConfig:
    shutil.copytree(config.output, target)
    return make_config(config.manifest, target, **changes)


def test_features_match_a_direct_forward_with_full_provenance(first_run, cohort):
    config, summary = first_run
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert summary.exit_code == 0 and summary.done == len(manifest) and summary.tiles > 0
    store = store_of(config)
    assert store.slide_ids() == sorted(manifest["slide_id"])
    encoder = build_encoder(ENCODER)
    bags = {bag.slide_id: bag for bag in read_bags(store)}
    assert sum(len(b.features) for b in bags.values()) == summary.tiles == summary.encoded[ENCODER]
    slide = manifest.iloc[0]
    with open_slide(cohort / slide["path"]) as reader:
        grid = tile_slide(reader, config.tiling)
        expected = encoder(encoder.preprocess(read_tiles(reader, grid))).numpy()
    bag = bags[slide["slide_id"]]
    np.testing.assert_array_equal(bag.coords, grid.coords)
    np.testing.assert_allclose(bag.features, expected, rtol=1e-4, atol=1e-5)
    assert (bag.specimen_id, bag.patient_id, bag.scanner) == (slide["specimen_id"], slide["patient_id"],
                                                              slide["scanner"])
    meta = bag.metadata
    assert meta["encoder"] == ENCODER and meta["weights_hash"] == encoder.weights_hash
    assert meta["tiling_hash"] == config.tiling.cache_key() and meta["tiling"]["tile_px"] == 224
    assert meta["card"]["name"] == ENCODER and meta["embed_dim"] == encoder.embed_dim
    schema = pq.read_schema(store.slide_path(slide["slide_id"]))
    assert schema.remove_metadata() == feature_schema(encoder.embed_dim)


def test_run_records_show_node_and_counts(first_run):
    config, summary = first_run
    slides = pd.read_csv(Path(config.output) / "_runs" / "test" / "slides.csv")
    assert set(slides["status"]) == {"done"} and slides["tiles"].sum() == summary.tiles
    assert slides["node_id"].notna().all() and (slides["attempts"] == 1).all()
    assert pd.read_csv(Path(config.output) / "failures.csv").empty


def test_every_slide_gets_a_qc_picture_of_its_tiling(first_run, cohort):
    config, summary = first_run
    qc = Path(config.output) / "_qc" / config.tiling.cache_key()
    assert summary.qc_dir == str(qc) and str(qc) in summary.text()
    manifest = pd.read_csv(cohort / "manifest.csv")
    assert sorted(p.name for p in qc.iterdir()) == sorted(f"{s}.{kind}" for s in manifest["slide_id"]
                                                          for kind in ("jpg", "geojson"))
    picture = np.asarray(Image.open(qc / f"{manifest['slide_id'].iloc[0]}.jpg"))
    blue = (picture[..., 2] > 150) & (picture[..., 0] < 100) & (picture[..., 1] < 120)
    assert picture.ndim == 3 and max(picture.shape) >= 512 and blue.sum() > 500, "the tile grid is drawn"


def test_the_qupath_geojson_holds_the_stored_tiles_on_the_tissue_in_level0_pixels(first_run, cohort):
    """Read back with shapely: tile squares are the stored level-0 coords and size, and the tissue
    polygons cover each of them by exactly the tissue fraction the store holds for it."""
    config, _ = first_run
    store = store_of(config)
    for slide_id in pd.read_csv(cohort / "manifest.csv")["slide_id"]:
        path = Path(config.output) / "_qc" / config.tiling.cache_key() / f"{slide_id}.geojson"
        features = json.loads(path.read_text())["features"]
        kinds = [f["properties"]["objectType"] for f in features]
        tissue = shapely.union_all([shape(f["geometry"]) for f in features if f["properties"]["objectType"]
                                    == "annotation"])
        tiles = [f for f in features if f["properties"]["objectType"] == "tile"]
        stored = pq.read_table(store.slide_path(slide_id), columns=["x", "y", "extent_l0", "tissue_fraction"])
        x, y, side = (stored.column(c).to_numpy() for c in ("x", "y", "extent_l0"))
        assert set(kinds) == {"annotation", "tile"} and len(tiles) == len(x) > 0
        squares = [shape(t["geometry"]) for t in tiles]
        assert [s.bounds for s in squares] == list(zip(x, y, x + side, y + side, strict=True))
        assert all(s.area == d**2 for s, d in zip(squares, side, strict=True))
        np.testing.assert_allclose([t["properties"]["measurements"]["tissue fraction"] for t in tiles],
                                   stored.column("tissue_fraction").to_numpy(), atol=1e-6)
        # a tile is kept when the tissue covers `min_tissue_fraction` of it, so its centre may lie on
        # glass; what holds exactly is that the tissue polygons cover each square by its stored fraction
        overlap = shapely.area(shapely.intersection(squares, tissue)) / side.astype(float) ** 2
        np.testing.assert_allclose(overlap, stored.column("tissue_fraction").to_numpy(), atol=1e-4)
        assert (overlap >= config.tiling.min_tissue_fraction - 1e-4).all()


def test_qc_pictures_can_be_turned_off(local_ray, cohort, tmp_path):
    config = make_config(cohort / "manifest.csv", tmp_path / "out", qc_pictures=False)
    summary = run_extraction(config)
    assert summary.done > 0 and not summary.qc_dir and not (tmp_path / "out" / "_qc").exists()


def test_rerun_encodes_nothing_and_rewrites_nothing(first_run, tmp_path):
    config = copy_output(first_run[0], tmp_path / "out")
    store = store_of(config)
    mtimes = {s: os.stat(store.slide_path(s)).st_mtime_ns for s in store.slide_ids()}
    summary = run_extraction(config)
    assert summary.encoded == {ENCODER: 0} and summary.tiles == 0
    assert summary.already_done == len(mtimes) and summary.exit_code == 0
    assert {s: os.stat(store.slide_path(s)).st_mtime_ns for s in store.slide_ids()} == mtimes


def write_blank_svs(path: Path, size: int) -> None:
    def white(x0: int, y0: int, width: int, height: int) -> np.ndarray:
        return np.full((height, width, 3), 245, dtype=np.uint8)

    write_svs(path, render=white, dimensions=(size, size), mpp=0.5, quality=90, stripe_px=1024)


def add_bad_slides(manifest: pd.DataFrame, directory: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Append a text file, a truncated slide, a blank slide and a single-level one (a missing file is
    refused before any work: tests/reliability/test_bad_input.py)."""
    good = manifest.iloc[0]
    (directory / "text.svs").write_text("not a slide")
    data = Path(good["path"]).read_bytes()
    (directory / "truncated.svs").write_bytes(data[: len(data) // 3])
    write_blank_svs(directory / "blank.svs", 1024)
    write_blank_svs(directory / "flat.svs", 512)
    bad = {"text": "text.svs", "truncated": "truncated.svs", "blank": "blank.svs", "flat": "flat.svs"}
    extra = [{**good.to_dict(), "slide_id": name, "path": str(directory / file)}
             for name, file in bad.items()]
    return pd.concat([manifest, pd.DataFrame(extra)]), bad


def test_resume_with_bad_slides_encodes_only_what_is_missing(first_run, cohort, tmp_path):
    """One run: a deleted file, a new encoder, a stale temporary and four bad slides."""
    config, first = first_run
    store = store_of(copy_output(config, tmp_path / "out"))
    victim = store.slide_ids()[0]
    tiles = len(store.read_bag(victim).features)
    os.remove(store.slide_path(victim))
    Path(store.directory, f".{victim}.parquet.tmp-dead").write_bytes(b"half a file")
    manifest = pd.read_csv(cohort / "manifest.csv")
    manifest["path"] = [str(cohort / p) for p in manifest["path"]]
    manifest, bad = add_bad_slides(manifest, tmp_path)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    code = main(["extract", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(tmp_path / "out"),
                 "--encoder", ENCODER, "--encoder", "tiny-virchow2", "--run-id", "resume",
                 "--set", "encoder_cpus=0.5", "--set", "tiles_per_chunk=4"])
    assert code == 1
    summary = json.loads((tmp_path / "out" / "_runs" / "resume" / "summary.json").read_text())
    assert summary["encoded"] == {ENCODER: tiles, "tiny-virchow2": first.tiles}
    assert not [p for p in os.listdir(store.directory) if p.startswith(".")]
    good = sorted(manifest["slide_id"][: len(manifest) - len(bad)])
    assert store.slide_ids() == good
    assert FeatureStore(tmp_path / "out", encoder="tiny-virchow2", tiling_hash=store.tiling_hash
                        ).slide_ids() == good
    failures = pd.read_csv(tmp_path / "out" / "failures.csv").set_index("slide_id")
    assert sorted(failures.index) == sorted(bad)
    assert set(failures.loc[["text", "truncated"], "status"]) == {"failed"}
    assert "unsupported or unreadable slide" in failures.loc["text", "reason"]
    assert "cannot decode" in failures.loc["truncated", "reason"]
    assert failures.loc["text", "stage"] == "open" and (failures["attempts"] >= 1).all()
    assert failures.loc["blank", "status"] == "skipped" and "tissue" in failures.loc["blank", "reason"]
    assert failures.loc["flat", "status"] == "skipped" and "pyramidal" in failures.loc["flat", "reason"]


def test_changed_tiling_goes_to_a_new_location(first_run, tmp_path):
    old = first_run[0]
    config = copy_output(old, tmp_path / "out", tiling={"tile_px": 112, "target_mpp": 1.0})
    assert config.tiling.cache_key() != old.tiling.cache_key()
    summary = run_extraction(config)
    assert summary.done == first_run[1].done and summary.encoded[ENCODER] > 0
    assert read_bags(store_of(config))[0].metadata["tiling"]["tile_px"] == 112
    previous = FeatureStore(config.output, encoder=ENCODER, tiling_hash=old.tiling.cache_key())
    assert previous.slide_ids() == store_of(old).slide_ids()


def test_hostile_slide_ids_are_rejected_before_any_work(cohort, tmp_path):
    manifest = pd.read_csv(cohort / "manifest.csv")
    manifest["path"] = [str(cohort / p) for p in manifest["path"]]
    manifest.loc[1, "slide_id"] = manifest.loc[0, "slide_id"].upper()
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ValueError, match="slide_id"):
        run_extraction(make_config(tmp_path / "manifest.csv", tmp_path / "out"))
    assert not (tmp_path / "out" / ENCODER).exists()


def test_reading_is_not_fused_into_the_inference_actors(local_ray, cohort, tmp_path, capsys):
    config = make_config(cohort / "manifest.csv", tmp_path)
    tasks = [{"slide_id": "a", "path": "a.svs", "mpp": float("nan"), rows.need_column(ENCODER): True}]
    with data_context(config):
        from raypath.extract.encoders import describe_encoders

        build_dataset(tasks, config=config, encoders=describe_encoders(config)).explain()
    optimized = capsys.readouterr().out.split("Physical Plan (Optimized)")[1]
    assert "TaskPoolMapOperator[MapBatches(read_slides)]" in optimized
    assert "ActorPoolMapOperator[MapBatches(EncoderActor)]" in optimized


@pytest.mark.parametrize(("target", "kwargs", "message"), [
    (ctypes.string_at, {"ptr": 0}, "SIGSEGV"),
    (os.abort, {}, "SIGABRT"),
    (signal.pause, {}, "silent"),
])
def test_a_dying_or_hanging_reader_costs_only_its_child(target, kwargs, message):
    with pytest.raises(ReaderProcessError, match=message):
        list(stream_in_child(target, kwargs=kwargs, timeout_s=2.0))


def test_retry_resumes_after_the_last_delivered_tile(monkeypatch, cohort):
    """A reader that dies mid-slide is retried from the next chunk; no tile is sent twice."""
    starts = []

    def flaky(target, *, kwargs, timeout_s, preload):
        starts.append(kwargs["start_tile"])
        yield ("grid", 6, {"extent_l0": 224, "mpp": 0.5})
        for start in range(kwargs["start_tile"], 6, 2):
            yield ("tiles", start, np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 2)), np.ones(2))
            if len(starts) == 1 and start == 2:
                raise ReaderProcessError("reader process killed by SIGSEGV")

    monkeypatch.setattr("raypath.extract.tiles.stream_in_child", flaky)
    settings = ReadSettings(tiling=ExtractConfig().tiling, non_pyramidal="skip", tiles_per_chunk=2,
                            max_attempts=2, timeout_s=1.0)
    task = {"slide_id": "s", "path": "s.svs", "mpp": float("nan"), rows.need_column(ENCODER): True}
    batches = list(_SlideRead(task, settings, {"node_id": "n", "node_ip": "ip"}).run())
    assert starts == [0, 4]
    assert np.concatenate([b["tile_index"] for b in batches]).tolist() == list(range(6))
    assert batches[-1]["attempts"][0] == 2 and set(np.concatenate([b["status"] for b in batches])) == {"tile"}


def test_a_pipeline_that_cannot_fit_the_cluster_is_refused(tmp_path):
    config = make_config(tmp_path / "m.csv", tmp_path, encoders=[ENCODER, "tiny-virchow2"])
    with pytest.raises(ValueError, match="CPU: needs 3"):
        check_resources(config, stages=2, available={"CPU": 2.0})
    check_resources(config.model_copy(update={"encoder_cpus": 0.5}), stages=2, available={"CPU": 2.0})
    with pytest.raises(ValueError, match=r"GPU: needs 0\.25"):
        check_resources(config.model_copy(update={"encoder_cpus": 0.5, "decode_gpus": 0.25}), stages=2,
                        available={"CPU": 2.0})


def test_reading_tasks_with_a_gpu_share_decode_there_and_fall_back_to_the_cpu(cohort, tmp_path):
    """decode_gpus > 0 asks the reader for the GPU; where none is usable the slide still reads."""
    config = make_config(cohort / "manifest.csv", tmp_path, decode_gpus=0.25)
    settings = read_settings(config)
    assert settings.decode_device == "cuda"
    assert read_settings(make_config(cohort / "manifest.csv", tmp_path)).decode_device == "cpu"
    path = cohort / pd.read_csv(cohort / "manifest.csv")["path"].iloc[0]
    messages = list(slide_messages(slide_id="s", path=str(path), mpp=None, settings=settings, start_tile=0))
    tiles = [m for m in messages if m[0] == "tiles"]
    assert tiles and tiles[0][2].shape[1:] == (config.tiling.tile_px, config.tiling.tile_px, 3)
