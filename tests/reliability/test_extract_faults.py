"""Issue 8, cases 1, 2, 6 and 7: ONE extraction run (`raypath extract`, local Ray) over a cohort of
18 good slides and every kind of bad one; each test checks one case's pass criterion on it."""

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from bagkit import read_bags
from cohortkit import ENCODER, GOOD_SLIDES, OVERRIDE_ID

from raypath.cli import main
from raypath.extract.config import ExtractConfig
from raypath.extract.rows import STAGES
from raypath.store import FeatureStore

pytestmark = pytest.mark.slow
MAX_ATTEMPTS = 2
RUN_ID = "faults"


@pytest.fixture(scope="module")
def fault_run(local_ray, faulty_cohort, tmp_path_factory):
    """Exit code, output root, failures manifest (indexed by slide id) and summary of the run."""
    out = tmp_path_factory.mktemp("fault-run")
    code = main(["extract", "--manifest", str(faulty_cohort.manifest), "--out", str(out),
                 "--encoder", ENCODER, "--run-id", RUN_ID, "--set", "batch_size=16",
                 "--set", f"max_attempts={MAX_ATTEMPTS}"])
    failures = pd.read_csv(out / "failures.csv").set_index("slide_id")
    summary = json.loads((out / "_runs" / RUN_ID / "summary.json").read_text())
    return code, out, failures, summary


def store_at(out: Path) -> FeatureStore:
    return FeatureStore(out, encoder=ENCODER, tiling_hash=ExtractConfig().tiling.cache_key())


def test_case1_good_slides_are_written_and_bad_ones_are_recorded(fault_run, faulty_cohort):
    code, out, failures, summary = fault_run
    store = store_at(out)
    assert code != 0 and summary["exit_code"] == code and summary["failed"] >= 2
    assert set(faulty_cohort.good) <= set(store.slide_ids())
    bags = {bag.slide_id: bag for bag in read_bags(store, faulty_cohort.good)}
    assert len(bags) == GOOD_SLIDES and all(len(bag.features) > 0 for bag in bags.values())
    for slide_id in ("truncated", "corrupt-tile"):
        assert slide_id in failures.index, f"{slide_id} is missing from failures.csv: extracted as good"
        record = failures.loc[slide_id]
        assert record["status"] == "failed", f"{slide_id}: {record.to_dict()}"
        assert record["stage"] in STAGES and record["reason"] and record["attempts"] >= 1
        assert slide_id in summary["failed_slides"]
        assert not store.has(slide_id)


def test_case1_no_partial_or_temporary_file_exists(fault_run):
    _, out, _, _ = fault_run
    directory = Path(store_at(out).directory)
    hidden = [p.name for p in directory.iterdir() if p.name.startswith(".")]
    assert hidden == []
    for path in directory.glob("*.parquet"):
        assert pq.read_metadata(path).num_rows > 0


def test_case2_a_slide_that_would_kill_its_decoder_is_refused_before_decoding(fault_run, faulty_cohort):
    """The crafted frame header kills cuCIM's raw decoder (test_slide_faults proves it); the reader's
    tile check refuses it first: a deterministic failure naming the tile, not retried, and the run
    goes on. Surviving a real reader death (SIGSEGV in the child) is tested in
    tests/extract/test_extract.py."""
    _, out, failures, _ = fault_run
    record = failures.loc["crashes-reader"]
    assert record["status"] == "failed" and record["attempts"] == 1, record.to_dict()
    assert "not a valid JPEG tile" in record["reason"] and "60000x60000" in record["reason"], record["reason"]
    assert set(faulty_cohort.good) <= set(store_at(out).slide_ids())


@pytest.mark.parametrize(("slide_id", "reason"), [
    ("no-tissue", "no tissue"), ("tiny", "smaller than one tile"), ("single-level", "not pyramidal"),
])
def test_case6_slides_without_anything_to_extract_are_skipped_with_a_reason(fault_run, slide_id, reason):
    _, _, failures, summary = fault_run
    record = failures.loc[slide_id]
    assert record["status"] == "skipped" and reason in record["reason"]
    assert slide_id not in summary["failed_slides"]


@pytest.mark.parametrize("slide_id", ["aperio-no-mpp", "generic-no-mpp"])
def test_case6_a_slide_without_mpp_fails_clearly(fault_run, slide_id):
    _, _, failures, _ = fault_run
    record = failures.loc[slide_id]
    assert record["status"] == "failed" and record["stage"] == "open"
    assert "no microns-per-pixel" in record["reason"] and "'mpp' column" in record["reason"]
    assert record["attempts"] == 1  # a deterministic fault is not retried


def test_case6_the_manifest_mpp_overrides_a_missing_one(fault_run):
    _, out, failures, _ = fault_run
    assert OVERRIDE_ID not in failures.index
    bag = store_at(out).read_bag(OVERRIDE_ID)
    assert len(bag.features) > 0


@pytest.mark.parametrize("slide_id", ["text-svs", "zero-bytes", "png-picture"])
def test_case7_non_slides_are_unsupported_or_unreadable_and_the_rest_runs(fault_run, faulty_cohort, slide_id):
    _, out, failures, _ = fault_run
    record = failures.loc[slide_id]
    assert record["status"] == "failed" and "unsupported or unreadable slide" in record["reason"]
    assert set(faulty_cohort.good) <= set(store_at(out).slide_ids())


def test_case8_every_output_of_a_run_resolves_inside_the_output_root(fault_run):
    _, out, _, _ = fault_run
    root = out.resolve()
    for directory, _, files in os.walk(out):
        for name in files:
            assert (Path(directory) / name).resolve().is_relative_to(root)
