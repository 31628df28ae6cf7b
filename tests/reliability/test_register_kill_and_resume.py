"""The registration job (`python jobs/register.py`, its own local Ray) SIGKILLed midway, then run
again: finished specimens are kept as they are and not registered again, the rest are registered,
and the table equals that of an uninterrupted run."""

import json
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
from jobkit import cleanup, kill_session, run_job, start, wait_for

from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig

pytestmark = pytest.mark.slow
PAUSE = Path(__file__).with_name("pause_after_store.py")
COHORT = SynthConfig(seed=7, specimens=4, scanners=["aperio-gt450", "hamamatsu-s360"],
                     field_um=(640.0, 560.0), workers=1, max_rotation_deg=8.0, max_shift_um=30.0)


def stored(out: Path) -> dict[str, tuple[int, int]]:
    files = (out / "registration").rglob("*.parquet")
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}


def args(cohort: Path, out: Path, run_id: str) -> list[str]:
    return ["--manifest", str(cohort / "manifest.csv"), "--out", str(out / "registration.parquet"),
            "--run-id", run_id]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    cohort, out = tmp_path_factory.mktemp("cohort"), tmp_path_factory.mktemp("registered")
    write_cohort(COHORT, cohort)
    paused = out / "PAUSED"
    with cleanup() as started:
        process = start([sys.executable, str(PAUSE), "1", str(paused), *args(cohort, out, "killed")])
        started.append(process)
        wait_for(paused.exists, what="the first stored specimen", process=process)
        kill_session(process.pid)
        process.wait()
    before = {"returncode": process.returncode, "stored": stored(out)}
    code = run_job([sys.executable, "jobs/register.py", *args(cohort, out, "resumed")])
    summary = json.loads((out / "registration" / "_runs" / "resumed" / "summary.json").read_text())
    reference = tmp_path_factory.mktemp("uninterrupted")
    assert run_job([sys.executable, "jobs/register.py", *args(cohort, reference, "whole")]) == 0
    return out, before, code, summary, reference


def test_the_driver_was_killed_midway(killed_and_resumed):
    _, before, _, _, _ = killed_and_resumed
    assert before["returncode"] == -signal.SIGKILL
    assert len(before["stored"]) == 1


def test_the_rerun_registers_only_what_was_not_finished(killed_and_resumed):
    out, before, code, summary, _ = killed_and_resumed
    assert code == 0 and summary["already_done"] == 1 and summary["done"] == 3
    after = stored(out)
    assert {name: after[name] for name in before["stored"]} == before["stored"]  # same inode, same mtime
    records = pd.read_csv(out / "registration" / "_runs" / "resumed" / "specimens.csv")
    finished = {name.split(".")[0] for name in before["stored"]}
    assert len(records) == 3 and not finished & set(records["specimen_id"])


def test_the_resumed_table_equals_an_uninterrupted_run(killed_and_resumed):
    out, _, _, _, reference = killed_and_resumed
    resumed = pd.read_parquet(out / "registration.parquet").sort_values("slide_id", ignore_index=True)
    whole = pd.read_parquet(reference / "registration.parquet").sort_values("slide_id", ignore_index=True)
    pd.testing.assert_frame_equal(resumed, whole)


def test_nothing_of_the_killed_run_is_left_behind(killed_and_resumed):
    out, _, _, _, _ = killed_and_resumed
    hidden = [p for p in (out / "registration").rglob(".*") if p.name != ".lock"]
    claims = [p for p in (out / "registration").rglob("*.claim")]
    owners = list((out / "registration" / "_claims").rglob("*.json"))
    assert hidden == [] and claims == [] and owners == []
