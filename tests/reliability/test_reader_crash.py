"""Issue 8, case 2 through the whole job: a slide whose reading kills the process (SIGSEGV, not an
exception) is set aside after `max_attempts` and every other slide is extracted.

The crash is real: an LD_PRELOAD shim (`segv_on_open.c`, test tree only) makes any process that
opens a path containing "segfault-on-open" die with SIGSEGV, as a slide library crashing inside its
decoder would. Production code has no hook for it; the job runs as `python jobs/extract.py`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cohortkit import ENCODER, good_slides, manifest_row, write_manifest
from jobkit import build_shim

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).with_name("segv_on_open.c")
ATTEMPTS = 2


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    return build_shim(SHIM, tmp_path_factory.mktemp("shim"))


def test_case2_a_slide_that_kills_its_reader_is_set_aside_and_the_rest_completes(shim, tmp_path):
    slides = good_slides(tmp_path / "slides", 3)
    crashing = shutil.copy(slides[0][1], tmp_path / "slides" / "segfault-on-open.svs")
    rows = [manifest_row(slide_id, path, index=i) for i, (slide_id, path) in enumerate(slides)]
    rows.append(manifest_row("crashing", Path(crashing), index=len(rows)))
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    out = tmp_path / "features"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"LD_PRELOAD": str(shim)}
    job = subprocess.run(
        [sys.executable, "jobs/extract.py", "--manifest", str(manifest), "--out", str(out),
         "--encoder", ENCODER, "--set", f"max_attempts={ATTEMPTS}", "--set", "batch_size=16"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert job.returncode == 1, job.stderr[-3000:]
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures["slide_id"]) == ["crashing"]
    crash = failures.iloc[0]
    assert crash["status"] == "failed" and crash["attempts"] == ATTEMPTS
    assert "SIGSEGV" in crash["reason"]
    written = sorted(p.stem for p in out.glob(f"{ENCODER}/*/*.parquet"))
    assert written == sorted(slide_id for slide_id, _ in slides)
