"""Issue 8, cases 3 and 4: the extraction job (`python jobs/extract.py`, its own local Ray) killed
with SIGKILL, from outside midway and from inside between writing and renaming a feature file."""

import json
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from bagkit import read_bags
from cohortkit import ENCODER, extract_config, file_identity, hidden_files, leftovers, store_of
from jobkit import JOB_TIMEOUT_S, extract_args, kill_session, run_job, start

pytestmark = pytest.mark.slow
DIE_ON_RENAME = Path(__file__).with_name("die_on_rename.py")


@pytest.fixture(scope="module")
def killed_and_resumed(good_cohort, tmp_path_factory):
    """Kill the job as soon as a slide is written; record what existed; resubmit it.

    One tile per inference batch makes slides finish one after another (with larger batches the
    tiny cohort finishes all at once), so the kill lands between the first and the last slide.
    """
    out = tmp_path_factory.mktemp("killed")
    store = store_of(extract_config(good_cohort.manifest, out))
    args = extract_args(good_cohort.manifest, out, "killed", batch=1)
    process = start([sys.executable, "jobs/extract.py", *args])
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not store.slide_ids() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_session(process.pid)
    process.wait()
    before = {"identity": file_identity(store), "returncode": process.returncode}
    Path(store.directory, f".{good_cohort.good[-1]}.parquet.tmp-deadbeef").write_bytes(b"PAR1 half")
    code = run_job([sys.executable, "jobs/extract.py", *extract_args(good_cohort.manifest, out, "resumed")])
    summary = json.loads((out / "_runs" / "resumed" / "summary.json").read_text())
    return store, before, code, summary


def test_case3_the_job_was_killed_midway(killed_and_resumed, good_cohort):
    _, before, _, _ = killed_and_resumed
    assert before["returncode"] == -signal.SIGKILL
    assert 1 <= len(before["identity"]) < len(good_cohort.good)


def test_case3_resume_recomputes_nothing_finished(killed_and_resumed, good_cohort):
    store, before, code, summary = killed_and_resumed
    assert code == 0 and summary["already_done"] == len(before["identity"])
    missing = [s for s in good_cohort.good if s not in before["identity"]]
    expected = sum(pq.read_metadata(store.slide_path(s)).num_rows for s in missing)
    assert summary["encoded"] == {ENCODER: expected}  # encoder calls: only the unfinished slides' tiles
    identity = file_identity(store)
    assert {s: identity[s] for s in before["identity"]} == before["identity"]  # same inode, same mtime


def test_case3_outputs_equal_an_uninterrupted_run(killed_and_resumed, baseline_run):
    store, _, _, _ = killed_and_resumed
    reference = store_of(baseline_run)
    assert store.slide_ids() == reference.slide_ids()
    for resumed, expected in zip(read_bags(store), read_bags(reference), strict=True):
        assert resumed.slide_id == expected.slide_id
        np.testing.assert_array_equal(resumed.coords, expected.coords)
        np.testing.assert_allclose(resumed.features, expected.features, rtol=1e-5, atol=1e-6)
        assert {k: resumed.metadata[k] for k in ("encoder", "weights_hash", "tiling_hash")} == \
               {k: expected.metadata[k] for k in ("encoder", "weights_hash", "tiling_hash")}


def test_case3_no_temporary_or_lock_file_remains(killed_and_resumed):
    """The killed run's claims, owner file and temporaries are gone: the resumed run removed them."""
    store, _, _, _ = killed_and_resumed
    assert hidden_files(store) == []
    assert not [p for p in Path(store.root).rglob("*") if p.suffix == ".lock" or ".tmp" in p.name]
    assert leftovers(Path(store.root)) == []


def test_case4_a_death_between_write_and_rename_leaves_only_complete_files(good_cohort, tmp_path):
    out = tmp_path / "out"
    code = run_job([sys.executable, str(DIE_ON_RENAME), "3",
                    *extract_args(good_cohort.manifest, out, "dies")])
    assert code == -signal.SIGKILL
    store = store_of(extract_config(good_cohort.manifest, out))
    finals = sorted(Path(store.directory).glob("*.parquet"))
    assert len(finals) == 2 and [p.stem for p in finals] == store.slide_ids()
    for path in finals:
        assert pq.read_metadata(path).num_rows > 0
    assert any(".parquet.tmp-" in name for name in hidden_files(store))  # the write that never got renamed
