"""Issue 8, case 5: a rerun with nothing changed does no work; a changed FM, tile size or mpp
writes to a new keyed location and never touches or mixes with the old features."""

import shutil
from pathlib import Path

import pytest
from bagkit import read_bags
from cohortkit import ENCODER, extract_config, file_identity, hidden_files, store_of

from raypath.extract.run import run_extraction
from raypath.store import ProvenanceError, check_provenance

pytestmark = pytest.mark.slow


def parquet_files(root: str) -> dict[str, tuple[int, int]]:
    """Every feature file under the output root -> (inode, mtime_ns)."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*.parquet"))}


@pytest.fixture
def previous_output(baseline_run, tmp_path) -> Path:
    """A private copy of the baseline's output (mtimes kept), so each test may run on it."""
    target = tmp_path / "out"
    shutil.copytree(baseline_run.output, target)
    return target


def test_case5_rerun_with_nothing_changed_does_no_work(baseline_run, previous_output):
    config = extract_config(baseline_run.manifest, previous_output, run_id="rerun")
    before = parquet_files(config.output)
    summary = run_extraction(config)
    assert summary.encoded == {ENCODER: 0} and summary.tiles == 0 and summary.done == 0
    assert summary.already_done == summary.slides and summary.exit_code == 0
    assert parquet_files(config.output) == before  # no new, duplicate or rewritten file


@pytest.mark.parametrize("change", [
    {"encoders": ["tiny-virchow2"]},
    {"tiling": {"tile_px": 112}},
    {"tiling": {"target_mpp": 1.0}},
], ids=["fm", "tile-size", "mpp"])
def test_case5_changed_settings_go_to_a_new_keyed_location(baseline_run, previous_output, change):
    old = extract_config(baseline_run.manifest, previous_output)
    new = extract_config(baseline_run.manifest, previous_output, run_id="changed", **change)
    old_store, new_store = store_of(old), store_of(new, new.encoders[0].name)
    assert new_store.directory != old_store.directory
    before = file_identity(old_store)
    summary = run_extraction(new)
    assert summary.exit_code == 0 and summary.encoded[new.encoders[0].name] > 0
    assert file_identity(old_store) == before and hidden_files(old_store) == []
    new_bags = read_bags(new_store)
    assert [b.slide_id for b in new_bags] == list(before)
    old_bags = read_bags(old_store)
    with pytest.raises(ProvenanceError, match="disagree on provenance"):
        check_provenance([old_bags[0].metadata, new_bags[0].metadata], where="old + new")
