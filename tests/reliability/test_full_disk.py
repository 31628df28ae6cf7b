"""Issue 16, case 4: the output's disk fills up during a real `raypath extract`.

The fault is real to the process: an LD_PRELOAD shim (`enospc_on_write.c`, test tree only) lets
writes under the output succeed until a byte budget is spent, then fails them with ENOSPC, as a
full filesystem does. The budget holds two and a half feature files: some slides are written, the
next ones fail mid-file, and so do the run records. The run must still end cleanly: its summary and
one error line, no traceback, no half or temporary file; a rerun on a freed disk finishes the rest.
"""

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cohortkit import ENCODER, extract_config, leftovers, store_of
from jobkit import build_shim, extract_args, job_env, run_job

pytestmark = pytest.mark.slow
SHIM = Path(__file__).with_name("enospc_on_write.c")
CLAIMS_AND_OWNER_BYTES = 1024  # the run's owner file and its claims, also written under the output


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    return build_shim(SHIM, tmp_path_factory.mktemp("shim"))


@pytest.fixture(scope="module")
def full_disk_run(shim, good_cohort, baseline_run, tmp_path_factory):
    """(exit code, stderr, output) of a run whose disk fills after about 2.5 feature files."""
    sizes = sorted(Path(p).stat().st_size for p in Path(store_of(baseline_run).directory).glob("*.parquet"))
    budget = sizes[-1] + sizes[-2] + sizes[0] // 2 + CLAIMS_AND_OWNER_BYTES
    out = tmp_path_factory.mktemp("full-disk") / "out"
    log = out.parent / "stderr.log"
    env = job_env(LD_PRELOAD=str(shim), ENOSPC_UNDER=str(out), ENOSPC_BUDGET=str(budget))
    code = run_job([sys.executable, "-m", "raypath.cli", "extract",
                    *extract_args(good_cohort.manifest, out, "full")], stderr=log, env=env)
    return code, log.read_text(), out


def test_a_full_disk_ends_the_run_with_its_summary_and_one_error_line(full_disk_run, good_cohort):
    code, stderr, out = full_disk_run
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"extraction run full -> {out}" in stderr
    assert f"slides: {len(good_cohort.good)} (0 already done" in stderr
    errors = [line for line in stderr.splitlines() if " ERROR " in line and "records are not" in line]
    assert len(errors) == 1 and "No space left on device" in errors[0] and str(out) in errors[0], errors


def test_a_full_disk_leaves_only_complete_files_and_no_temporary_one(full_disk_run, good_cohort):
    _, stderr, out = full_disk_run
    store = store_of(extract_config(good_cohort.manifest, out))
    written = store.slide_ids()
    assert 2 <= len(written) < len(good_cohort.good), stderr[-3000:]
    for slide_id in written:
        assert pq.read_metadata(store.slide_path(slide_id)).num_rows > 0
    assert leftovers(out) == []
    assert not (out / "failures.csv").exists()  # never half-written: absent until a run can write it
    assert list((out / "_runs" / "full").iterdir()) == []


def test_a_rerun_on_a_freed_disk_finishes_the_rest_and_agrees_with_the_store(full_disk_run, good_cohort,
                                                                            tmp_path):
    out = Path(shutil.copytree(full_disk_run[2], tmp_path / "out"))  # the other tests see the run as it ended
    store = store_of(extract_config(good_cohort.manifest, out))
    before = store.slide_ids()
    assert run_job([sys.executable, "-m", "raypath.cli", "extract",
                    *extract_args(good_cohort.manifest, out, "freed")]) == 0
    summary = json.loads((out / "_runs" / "freed" / "summary.json").read_text())
    assert summary["already_done"] == len(before) and summary["done"] == len(good_cohort.good) - len(before)
    missing = sorted(set(good_cohort.good) - set(before))
    tiles = sum(pq.read_metadata(store.slide_path(s)).num_rows for s in missing)
    assert summary["encoded"] == {ENCODER: tiles}  # the slides written before the disk filled stay done
    assert pd.read_csv(out / "failures.csv").empty and leftovers(out) == []
