"""Issue 8, cases 8 and 9: hostile slide ids and malformed label tables are refused before any
work, with an error naming the file, the row and the column."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray
from cohortkit import ENCODER, extract_config, manifest_row, write_manifest

from raypath.cli import main
from raypath.cohort import CohortError, load_cohort, load_manifest
from raypath.extract.config import ExtractConfig
from raypath.extract.run import run_extraction
from raypath.store import FeatureStore, provenance, tiles_table
from raypath.sweep.config import SweepConfig

# ---------------------------------------------------------------- case 8: hostile slide ids


def manifest_with_ids(directory: Path, ids: list[str]) -> Path:
    """A manifest listing `ids`; the slide files need not exist (ids are checked first)."""
    rows = [manifest_row(slide_id, directory / f"slide{i}.svs", index=i) for i, slide_id in enumerate(ids)]
    return write_manifest(directory / "manifest.csv", rows)


HOSTILE = {
    "parent": "../x",
    "nested-parent": "a/../../x",
    "absolute": "/tmp/raypath-escape",
    "dot-dot": "..",
    "backslash": "..\\x",
}


@pytest.mark.parametrize("slide_id", HOSTILE.values(), ids=HOSTILE.keys())
def test_case8_hostile_ids_are_rejected_naming_file_row_and_column(tmp_path, slide_id):
    manifest = manifest_with_ids(tmp_path, ["fine-0", slide_id])
    with pytest.raises(CohortError, match=r"manifest\.csv line 3, column 'slide_id'"):
        load_manifest(manifest, check_files=False)


def test_case8_ids_differing_only_by_case_are_rejected(tmp_path):
    manifest = manifest_with_ids(tmp_path, ["Slide-1", "slide-2", "slide-1"])
    with pytest.raises(CohortError, match=r"line 4, column 'slide_id'.*differs only by case from 'Slide-1'"):
        load_manifest(manifest, check_files=False)


@pytest.mark.parametrize("ids", [["fine-0", "../x"], ["Slide-1", "slide-1"]], ids=["traversal", "case"])
def test_case8_extraction_refuses_before_any_work(tmp_path, no_extraction_work, ids):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="slide_id"):
        run_extraction(extract_config(manifest_with_ids(tmp_path, ids), out))
    assert not out.exists() or not any(out.iterdir())
    code = main(["extract", "--manifest", str(tmp_path / "manifest.csv"), "--out", str(out),
                 "--encoder", ENCODER])
    assert code == 2 and (not out.exists() or not any(out.iterdir()))


def test_case8_an_encoder_directory_linked_outside_the_root_is_refused(tmp_path, no_extraction_work):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / ENCODER).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="escapes the output root"):
        run_extraction(extract_config(manifest_with_ids(tmp_path, ["fine-0"]), out))
    assert not any(elsewhere.rglob("*"))


def test_case8_run_records_cannot_be_written_outside_the_output_root(tmp_path):
    """The run id names a records folder under <out>/_runs/: it must not climb out of the root."""
    out = tmp_path / "root" / "out"
    store = FeatureStore(out, encoder=ENCODER, tiling_hash=ExtractConfig().tiling.cache_key())
    Path(store.directory).mkdir(parents=True)
    Path(store.slide_path("fine-0")).write_bytes(b"")  # already finished: no Ray needed
    manifest = manifest_with_ids(tmp_path, ["fine-0"])
    with pytest.raises(ValueError, match="run_id"):
        run_extraction(extract_config(manifest, out, run_id="../../../escaped"))
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize("slide_id", ["fine-0", "a b", "x.y.z", "Ünïcode-1", "s" * 200])
def test_case8_every_feature_path_resolves_inside_the_output_root(tmp_path, slide_id):
    store = FeatureStore(tmp_path, encoder=ENCODER, tiling_hash="abc")
    assert Path(store.slide_path(slide_id)).resolve().is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize("slide_id", HOSTILE.values(), ids=HOSTILE.keys())
def test_case8_the_store_itself_refuses_paths_outside_its_directory(tmp_path, slide_id):
    store = FeatureStore(tmp_path, encoder=ENCODER, tiling_hash="abc")
    try:
        path = Path(store.slide_path(slide_id)).resolve()
    except ValueError:
        return
    assert path.parent == Path(store.directory).resolve()


# ---------------------------------------------------------------- case 9: malformed labels

MANIFEST_PATIENTS = ("P000", "P001", "P002")
MALFORMED = {
    "missing-column": ("patient_id,time\nP000,12.5\nP001,3.0\n", r"labels\.csv.*missing column.*'event'"),
    "time-not-a-number": ("patient_id,time,event\nP000,12.5,1\nP001,abc,0\n",
                          r"labels\.csv line 3, column 'time': 'abc' is not a number"),
    "unknown-patient": ("patient_id,time,event\nP000,12.5,1\nP999,3.0,0\n",
                        r"labels\.csv line 3, column 'patient_id'.*'P999'"),
    "event-not-0-1": ("patient_id,time,event\nP000,12.5,1\nP001,3.0,2\n",
                      r"labels\.csv line 3, column 'event'.*0.*1"),
}


# Without the manifest, train and sweep cannot tell a mistyped patient from one whose slides all
# failed extraction, so "unknown patient" is the cohort loader's check (raypath extract/register).
ENTRY_POINT_CASES = [case for case in MALFORMED if case != "unknown-patient"]


@pytest.fixture
def cohort_files(tmp_path) -> tuple[Path, Path]:
    """A manifest of three patients and a feature store with one slide per patient."""
    manifest = manifest_with_ids(tmp_path, [f"slide-{p}" for p in MANIFEST_PATIENTS])
    meta = provenance(encoder=ENCODER, card={"name": ENCODER}, weights_hash="w", tiling={},
                      tiling_hash="abc", embed_dim=4)
    store = FeatureStore(tmp_path / "features", encoder=ENCODER, tiling_hash="abc")
    for row in pd.read_csv(manifest).to_dict("records"):
        table = tiles_table(slide=row, coords=np.zeros((3, 2)), features=np.ones((3, 4), np.float32),
                            extent_l0=224, tile_px=224, mpp=0.5, tissue_fraction=np.ones(3), metadata=meta)
        store.write(row["slide_id"], table)
    return manifest, tmp_path / "features"


def labels_file(tmp_path: Path, case: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(MALFORMED[case][0])
    return path


@pytest.mark.parametrize("case", MALFORMED)
def test_case9_the_cohort_loader_names_file_row_and_column(cohort_files, tmp_path, case):
    manifest, _ = cohort_files
    with pytest.raises(CohortError, match=MALFORMED[case][1]):
        load_cohort(manifest, labels_file(tmp_path, case), check_files=False)


@pytest.mark.parametrize("case", ENTRY_POINT_CASES)
def test_case9_train_validates_labels_before_training(cohort_files, tmp_path, monkeypatch, capsys, case):
    _, features = cohort_files

    def forbidden(**kwargs: object) -> None:
        raise AssertionError("training started despite a malformed label table")

    monkeypatch.setattr("raypath.train.engine.train_one", forbidden)
    code = main(["train", "--features", str(features), "--encoder", ENCODER,
                 "--labels", str(labels_file(tmp_path, case))])
    assert code == 2
    assert re.search(MALFORMED[case][1], capsys.readouterr().err)


@pytest.mark.parametrize("case", ENTRY_POINT_CASES)
def test_case9_tuning_validates_labels_before_ray_or_trials(cohort_files, tmp_path, monkeypatch, case):
    from raypath.sweep import driver as sweep

    _, features = cohort_files

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep started Ray or a trial despite a malformed label table")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", forbidden)
    monkeypatch.setattr(sweep, "run_phase", forbidden)
    config = SweepConfig(sweep_id="bad-labels", output_dir=tmp_path / "sweep",
                         features={"root": features, "fms": [ENCODER], "labels": labels_file(tmp_path, case)})
    with pytest.raises(CohortError, match=MALFORMED[case][1]):
        sweep.run_sweep(config)
