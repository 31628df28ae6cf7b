"""Issue 16, case 4: the output's disk fills up during a real `raypath extract`. Issue 24, case 2: the
same under `raypath sweep` (while it creates its MLflow store), `raypath predict` (its outputs) and
data-parallel training (its checkpoints), and MLflow stores an earlier full disk left half-migrated.

The fault is real to the process: an LD_PRELOAD shim (`enospc_on_write.c`, test tree only) lets
writes under the output succeed until a byte budget is spent, then fails them with ENOSPC, as a
full filesystem does (each process of a job, Ray's included, has its own budget). For extraction the
budget holds two and a half feature files: some slides are written, the next ones fail mid-file, and
so do the run records. Every run must still end cleanly: one error line naming the file, no
traceback, no half or temporary file; a rerun on a freed disk finishes the rest.
"""

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from cohortkit import ENCODER, extract_config, leftovers, store_of
from jobkit import build_shim, extract_args, job_env, run_job

from raypath.distributed.trainer import recorded_checkpoints
from raypath.paths import temporary_owner
from raypath.tracking.runs import RunLedger
from raypath.tracking.store import StoreError

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


# ---------------------------------------------------------------- issue 24, case 2

CLI = [sys.executable, "-m", "raypath.cli"]


def full(shim: Path, under: Path, budget: int) -> dict[str, str]:
    """The environment of a job whose writes under `under` fail with ENOSPC after `budget` bytes."""
    return job_env(LD_PRELOAD=str(shim), ENOSPC_UNDER=str(under), ENOSPC_BUDGET=str(budget))


RAY_PROCESS_LINE = re.compile(r"\(\w+ pid=\d+(, ip=[\d.]+)?\)")
"""The prefix of lines Ray forwards from its own processes (workers, Ray Train's controller)."""


def one_error(log: Path) -> str:
    """The one error line a job ended with, and no traceback of its own (Ray's processes forward their
    logs to a driver started with `log_to_driver`, tracebacks of their own included)."""
    own = [line for line in log.read_text().splitlines() if not RAY_PROCESS_LINE.search(line)]
    errors = [line for line in own if " ERROR " in line]
    assert not [line for line in own if "Traceback" in line] and len(errors) == 1, "\n".join(own)[-4000:]
    return errors[0]


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if temporary_owner(p.name) is not None)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated) -> Path:
    return write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=12)


def test_a_sweep_whose_disk_fills_while_creating_its_mlflow_store_can_run_again(shim, cohort, tmp_path):
    """Before: a traceback, and a half-migrated mlflow.db that every later run refused
    (`table ... already exists`) until it was deleted by hand."""
    out = tmp_path / "sweep"
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({
        "sweep_id": "full", "output_dir": str(out),
        "features": {"root": str(cohort / "features"), "fms": ["sim-16"],
                     "labels": str(cohort / "labels.csv"), "splits": str(cohort / "splits.csv")},
        "train": {"epochs": 1, "batch_specimens": 4, "robustness_k": 3,
                  "model": {"hidden": 8, "attention_dim": 4, "projection_dim": 4, "dropout": 0.0}},
        "space": {"optimizer.lr": {"type": "loguniform", "low": 1e-3, "high": 3e-3}},
        "num_samples": 2, "pack_size": 2, "asha": {"enabled": False}, "replicates": {"seeds": 0}}))
    log = tmp_path / "full.log"
    code = run_job([*CLI, "sweep", "--config", str(config)], stderr=log, env=full(shim, out, 100_000))
    line = one_error(log)
    assert code == 1 and f"'{out / 'mlflow.db'}'" in line and "no space left on device" in line
    assert not (out / "mlflow.db").exists() and temporaries(out) == []
    assert run_job([*CLI, "sweep", "--config", str(config)], stderr=tmp_path / "freed.log") == 0, (
        (tmp_path / "freed.log").read_text()[-3000:])


def half_migrated(shim: Path, directory: Path) -> Path:
    """mlflow.db as MLflow itself leaves it when the disk fills while it creates the store."""
    database = directory / "mlflow.db"
    create = f"from mlflow import MlflowClient; MlflowClient('sqlite:///{database}').search_experiments()"
    subprocess.run([sys.executable, "-c", create], env=full(shim, directory, 400_000), capture_output=True,
                   check=False, timeout=300)
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    return database


def test_a_half_migrated_store_without_runs_is_set_aside_and_made_anew(shim, tmp_path):
    database = half_migrated(shim, tmp_path)
    ledger = RunLedger(tracking_uri=f"sqlite:///{database}", experiment="raypath/after/full-disk")
    assert ledger.experiment_id and ledger.client.search_experiments()
    assert [p.name for p in tmp_path.glob("mlflow.db.broken-*")], "the broken store is kept beside"


def test_a_half_migrated_store_with_runs_is_named_with_the_command_that_sets_it_aside(shim, tmp_path):
    database = half_migrated(shim, tmp_path)
    with sqlite3.connect(database) as connection:  # a run logged before the migration was interrupted
        connection.execute("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage) "
                           "VALUES ('r', 0, 'active')")
    with pytest.raises(StoreError, match="cannot be brought to this MLflow's schema") as error:
        RunLedger(tracking_uri=f"sqlite:///{database}", experiment="x").experiment_id  # noqa: B018
    assert "holds 1 runs" in str(error.value) and f"`mv {database} {database}.broken`" in str(error.value)


@pytest.fixture(scope="module")
def model(cohort, tmp_path_factory) -> Path:
    """A model trained on the simulated cohort in one process (no Ray), packaged for predict."""
    out = tmp_path_factory.mktemp("model")
    assert run_job([*CLI, "train", "--features", str(cohort / "features"), "--encoder", "sim-16", "--labels",
                    str(cohort / "labels.csv"), "--splits", str(cohort / "splits.csv"), "--out", str(out),
                    "--set", "epochs=1", "--set", "batch_specimens=4", "--set", "model.hidden=8"]) == 0
    return out / "model"


def test_predict_on_a_full_disk_names_the_file_and_leaves_no_half_output(shim, cohort, model, tmp_path):
    """Before: a pyarrow traceback without the file's name, and `.predictions.parquet.tmp` left behind."""
    out = tmp_path / "predictions"
    command = [*CLI, "predict", "--model", str(model), "--manifest", str(cohort / "manifest.csv"),
               "--features", str(cohort / "features"), "--out", str(out)]
    code = run_job(command, stderr=tmp_path / "full.log", env=full(shim, out, 0))
    line = one_error(tmp_path / "full.log")
    assert code == 1 and f"No space left on device: '{out / 'predictions.parquet'}'" in line
    assert not out.exists() or list(out.iterdir()) == []
    assert run_job(command) == 0 and len(pd.read_parquet(out / "predictions.parquet")) > 0


CHECKPOINT_BUDGET = 100_000
"""One checkpoint of the small model below (about 60 KB) fits, the second does not."""


def test_training_on_a_full_disk_keeps_its_checkpoints_and_resumes(shim, cohort, tmp_path):
    """`raypath train --workers` and `raypath finetune` checkpoint through the same harness
    (`raypath.distributed`). Before: Ray Train's traceback, and a half-copied checkpoint directory."""
    storage = tmp_path / "storage"
    command = [*CLI, "train", "--features", str(cohort / "features"), "--encoder", "sim-16", "--labels",
               str(cohort / "labels.csv"), "--splits", str(cohort / "splits.csv"), "--out",
               str(tmp_path / "out"), "--storage", str(storage), "--workers", "1", "--checkpoint-every", "1",
               "--max-failures", "0", "--set", "epochs=3", "--set", "batch_specimens=4",
               "--set", "early_stopping.enabled=false", "--set", "model.hidden=16"]
    code = run_job(command, stderr=tmp_path / "full.log", env=full(shim, storage, CHECKPOINT_BUDGET))
    line = one_error(tmp_path / "full.log")
    (run,) = storage.iterdir()
    assert code == 1 and "no space left on device for this run's checkpoints" in line and f"'{run}'" in line
    kept = sorted(p.name for p in run.glob("checkpoint_*") if p.is_dir())
    assert kept == sorted(recorded_checkpoints(run)) and len(kept) == 1  # the first epoch's, complete
    freed = tmp_path / "freed.log"
    assert run_job(command, stderr=freed) == 0, freed.read_text()[-3000:]
    assert "continuing after epoch 0" in freed.read_text()  # the first epoch (0) is not trained again
    assert "best_epoch" in json.loads((tmp_path / "out" / "metrics.json").read_text())


def test_a_sweep_whose_disk_fills_midway_ends_with_one_line_naming_its_output(cohort, tmp_path, monkeypatch,
                                                                            capfd):
    """Before: `sqlite3.OperationalError: database or disk is full` as a traceback when MLflow's store
    filled after Ray had started (the store's creation is the case above)."""
    import sqlalchemy.exc

    from raypath import cli
    from raypath.sweep import driver

    def disk_fills(config):
        full = Exception("database or disk is full")
        raise sqlalchemy.exc.OperationalError("INSERT INTO metrics", {}, full)

    monkeypatch.setattr(driver, "run_sweep", disk_fills)
    out = tmp_path / "sweep"
    code = cli.main(["sweep", "--set", f"output_dir={out}", "--set", f"features.root={cohort / 'features'}",
                     "--set", "features.fms=[sim-16]", "--set", f"features.labels={cohort / 'labels.csv'}",
                     "--set", f"features.splits={cohort / 'splits.csv'}"])
    stderr = capfd.readouterr().err
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert code == 1 and len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "no space left on device during the sweep" in errors[0] and str(out) in errors[0]
