"""Issue 16, case 1: two real `raypath extract` processes on one output, started together and
staggered: no slide is computed twice, no run deletes the other's temporary files, both end with
every slide written and a failures.csv that agrees with the store. Issue 24, case 3: a run that
planned while another was finishing looks at the store again once it holds its claims."""

import json
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from cohortkit import ENCODER, extract_config, hidden_files, leftovers, store_of
from jobkit import cleanup, extract_args, finish, start, wait_for

pytestmark = pytest.mark.slow
PAUSE_ON_RENAME = Path(__file__).with_name("pause_on_rename.py")
PAUSE_BEFORE_CLAIM = Path(__file__).with_name("pause_before_claim.py")
CLI = [sys.executable, "-m", "raypath.cli", "extract"]


def summary_of(out: Path, run_id: str) -> dict:
    return json.loads((out / "_runs" / run_id / "summary.json").read_text())


def assert_complete_and_clean(out: Path, good: list[str], summaries: list[dict]) -> None:
    """Every slide written once, by exactly one run, encoded once; nothing left behind."""
    store = store_of(extract_config(Path("unused.csv"), out))
    assert store.slide_ids() == sorted(good)
    tiles = sum(pq.read_metadata(store.slide_path(s)).num_rows for s in good)
    assert sum(s["encoded"][ENCODER] for s in summaries) == tiles  # no tile went through the FM twice
    assert sum(s["done"] for s in summaries) == len(good)  # each slide written by one run
    for summary in summaries:
        assert summary["done"] + summary["finished_elsewhere"] + summary["already_done"] == len(good)
        assert summary["failed"] == 0 and summary["exit_code"] == 0
    assert pd.read_csv(out / "failures.csv").empty
    assert leftovers(out) == []


def test_two_runs_started_together_compute_every_slide_once(good_cohort, tmp_path):
    out = tmp_path / "out"
    run_ids = ("together-a", "together-b")
    with cleanup() as started:
        started += [start([*CLI, *extract_args(good_cohort.manifest, out, run_id)], stderr=tmp_path / run_id)
                    for run_id in run_ids]
        codes = [finish(process) for process in started]
    assert codes == [0, 0], {r: (tmp_path / r).read_text()[-2000:] for r in run_ids}
    assert_complete_and_clean(out, good_cohort.good, [summary_of(out, run_id) for run_id in run_ids])


def test_a_run_started_while_another_renames_keeps_its_files_and_waits(good_cohort, tmp_path):
    """The first run holds still between writing its second file and renaming it; a second run
    starts, cleans up, and must leave that temporary file alone, then wait for the first run's slides
    instead of computing them again."""
    out, paused, resume = tmp_path / "out", tmp_path / "paused", tmp_path / "resume"
    store = store_of(extract_config(good_cohort.manifest, out))
    with cleanup() as started:
        first = start([sys.executable, str(PAUSE_ON_RENAME), "2", str(paused), str(resume),
                       *extract_args(good_cohort.manifest, out, "first")], stderr=tmp_path / "first.log")
        started.append(first)
        wait_for(paused.exists, what="the first run to pause before a rename", process=first)
        in_flight = hidden_files(store)
        assert in_flight and len(store.slide_ids()) == 1, in_flight  # the other writer thread may wait too
        second = start([*CLI, *extract_args(good_cohort.manifest, out, "second")],
                       stderr=tmp_path / "second.log")
        started.append(second)
        wait_for(lambda: "waiting for" in (tmp_path / "second.log").read_text(),
                 what="the second run to wait for the first run's slides", process=second)
        assert set(in_flight) <= set(hidden_files(store)), "the second run deleted a live run's file"
        resume.write_text("go")
        codes = {"first": finish(first), "second": finish(second)}
    logs = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in codes}
    assert codes == {"first": 0, "second": 0}, logs
    first_summary, second_summary = summary_of(out, "first"), summary_of(out, "second")
    assert first_summary["done"] == len(good_cohort.good)
    assert second_summary["encoded"] == {ENCODER: 0}  # it computed nothing: it waited for the first run
    assert second_summary["already_done"] == 1
    assert second_summary["finished_elsewhere"] == len(good_cohort.good) - 1
    assert_complete_and_clean(out, good_cohort.good, [first_summary, second_summary])


def test_a_run_that_planned_while_another_finished_computes_none_of_its_slides(good_cohort, tmp_path):
    """The second run starts while the first holds its last slide between writing and renaming, plans
    (that slide still to do), and holds before claiming until the first run has finished and released
    it. Before: the claim was free, so the second run computed the slide again."""
    out, good = tmp_path / "out", good_cohort.good
    marks = {f"{run}-{step}": tmp_path / f"{run}-{step}" for run in ("first", "second")
             for step in ("paused", "resume")}
    with cleanup() as started:
        first = start([sys.executable, str(PAUSE_ON_RENAME), str(len(good)), str(marks["first-paused"]),
                       str(marks["first-resume"]), *extract_args(good_cohort.manifest, out, "first")],
                      stderr=tmp_path / "first.log")
        started.append(first)
        wait_for(marks["first-paused"].exists, what="the first run to hold its last rename", process=first)
        second = start([sys.executable, str(PAUSE_BEFORE_CLAIM), str(marks["second-paused"]),
                        str(marks["second-resume"]), *extract_args(good_cohort.manifest, out, "second")],
                       stderr=tmp_path / "second.log")
        started.append(second)
        wait_for(marks["second-paused"].exists, what="the second run to plan", process=second)
        marks["first-resume"].write_text("go")
        codes = {"first": finish(first)}
        marks["second-resume"].write_text("go")
        codes["second"] = finish(second)
    logs = {name: (tmp_path / f"{name}.log").read_text()[-2000:] for name in codes}
    assert codes == {"first": 0, "second": 0}, logs
    first_summary, second_summary = summary_of(out, "first"), summary_of(out, "second")
    assert second_summary["encoded"] == {ENCODER: 0} and second_summary["done"] == 0, logs["second"]
    assert second_summary["already_done"] == len(good) - 1 and second_summary["finished_elsewhere"] == 1
    assert_complete_and_clean(out, good, [first_summary, second_summary])
