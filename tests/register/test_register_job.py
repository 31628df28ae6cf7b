"""The registration job in this process (the suite's local Ray): results stored per specimen and
reused, a bad slide failing only its specimen (named in failures.csv), inputs and settings that change
a result invalidating only what they change, bad input stopping before Ray."""

import shutil

import pandas as pd
import pytest

import raypath.register.run as register_run
from raypath.cli import main
from raypath.register.run import run_registration
from raypath.slides.registration import COLUMNS, RegistrationError
from raypath.slides.registration.config import RegisterConfig

SPECIMENS = ["S0000", "S0001", "S0002", "S0003"]


def results_of(out) -> dict[str, tuple[int, int]]:
    """Stored result files -> (inode, mtime_ns): unchanged identity means not recomputed."""
    root = out.parent / out.stem / "specimens"
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("*.parquet")}


@pytest.fixture(scope="module")
def first_run(local_ray, register_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("registered") / "registration.parquet"
    config = RegisterConfig(manifest=register_cohort / "manifest.csv", out=out, run_id="first")
    return config, run_registration(config), results_of(out)


def test_every_specimen_is_registered_and_stored_on_its_own(first_run):
    config, summary, stored = first_run
    assert summary.exit_code == 0 and summary.done == 4 and summary.already_done == 0
    table = pd.read_parquet(config.out)
    assert tuple(table.columns) == COLUMNS and len(table) == 8
    assert sorted(table["specimen_id"].unique()) == SPECIMENS
    assert sorted(name.split("/")[-1].split(".")[0] for name in stored) == SPECIMENS
    records = pd.read_csv(config.work_dir() / "_runs" / "first" / "specimens.csv")
    assert set(records["status"]) == {"done"} and records["node_id"].notna().all()
    assert pd.read_csv(config.work_dir() / "failures.csv").empty


def test_a_rerun_skips_every_stored_specimen(first_run):
    config, _, stored = first_run
    again = run_registration(config.model_copy(update={"run_id": "again"}))
    assert again.already_done == 4 and again.done == 0 and again.exit_code == 0
    assert results_of(config.out) == stored
    assert len(pd.read_parquet(config.out)) == 8


def test_other_settings_or_inputs_register_again_only_what_they_change(first_run, register_cohort, tmp_path):
    config, _, stored = first_run
    coarser = run_registration(config.model_copy(update={"run_id": "coarser", "thumbnail_mpp": 8.0}))
    assert coarser.already_done == 0 and coarser.done == 4  # another settings hash: nothing reused
    manifest = pd.read_csv(register_cohort / "manifest.csv")
    manifest["path"] = [str(register_cohort / p) for p in manifest["path"]]
    manifest.loc[manifest["slide_id"] == "S0002-hamamatsu-s360", "mpp"] = 0.46  # one input of one specimen
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    changed = run_registration(config.model_copy(update={"run_id": "changed",
                                                          "manifest": tmp_path / "manifest.csv"}))
    assert changed.already_done == 3 and changed.done == 1
    assert all(results_of(config.out)[name] == identity for name, identity in stored.items())


def test_a_slide_that_cannot_be_read_fails_its_specimen_only(local_ray, register_cohort, tmp_path):
    cohort = tmp_path / "cohort"
    shutil.copytree(register_cohort, cohort)
    (cohort / "slides" / "S0001-hamamatsu-s360.svs").write_bytes(b"not a slide")
    out = tmp_path / "registration.parquet"
    config = RegisterConfig(manifest=cohort / "manifest.csv", out=out, run_id="broken")
    summary = run_registration(config)
    assert summary.exit_code == 1 and summary.failed_specimens == ["S0001"] and summary.done == 3
    failures = pd.read_csv(config.work_dir() / "failures.csv")
    assert failures[["specimen_id", "slide_id", "stage"]].values.tolist() == [
        ["S0001", "S0001-hamamatsu-s360", "open"]]
    assert "S0001" not in set(pd.read_parquet(out)["specimen_id"])
    shutil.copy(register_cohort / "slides" / "S0001-hamamatsu-s360.svs", cohort / "slides")
    fixed = run_registration(config.model_copy(update={"run_id": "fixed"}))
    assert fixed.exit_code == 0 and fixed.already_done == 3 and fixed.done == 1
    assert pd.read_csv(config.work_dir() / "failures.csv").empty


def test_bad_input_stops_before_ray(register_cohort, tmp_path, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start on bad input")

    monkeypatch.setattr(register_run, "connect", no_ray)
    args = ["register", "--manifest", str(register_cohort / "manifest.csv"), "--out",
            str(tmp_path / "registration.parquet")]
    assert main([*args, "--reference-scanner", "no-such-scanner"]) == 2
    with pytest.raises(RegistrationError, match="matches no scanner"):
        run_registration(RegisterConfig(manifest=register_cohort / "manifest.csv", out=tmp_path / "r.parquet",
                                        reference_scanner="no-such-scanner"))
