"""Issue 8, cases 10-12: a killed sweep driver, trials that raise, many trials on one `mlflow server`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import ViewType

from raypath.sweep.config import SweepConfig
from raypath.sweep.tuner import search_packs
from raypath.tracking.queries import runs_frame

pytestmark = pytest.mark.slow
EXPERIMENT = "raypath/{sweep}/sim-16"


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory, write_simulated):
    return write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=30, label_strength=3.0)


@pytest.fixture(scope="module")
def sweep_data(tiny_sweep_data):
    """`sweep_data(cohort_dir, out, **changes)`: the suite's small sweep, with top-level changes."""
    return lambda cohort_dir, out, **changes: {**_sweep_data(tiny_sweep_data, cohort_dir, out), **changes}


def _sweep_data(tiny_sweep_data, cohort_dir: Path, out: Path) -> dict:
    return tiny_sweep_data(
        cohort_dir, out, sweep_id="faults",
        train={"epochs": 3, "early_stopping": {"enabled": False}},
        space={
            "optimizer.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
            "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 2.0},
        },
        num_samples=8, pack_size=2, asha={"enabled": False}, replicates={"seeds": 0},
        resources={"max_concurrent_trials": 2},
    )


def _runs(config: SweepConfig, *, view: ViewType = ViewType.ACTIVE_ONLY) -> list:
    """The trial runs (one per trained configuration; the phases' parent runs left out)."""
    client = MlflowClient(config.tracking_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT.format(sweep=config.sweep_id))
    return (
        []
        if experiment is None
        else client.search_runs([experiment.experiment_id], filter_string="tags.`raypath.kind` = 'trial'",
                                run_view_type=view, max_results=1000)
    )


def test_killed_driver_resumes_to_exactly_n_trials_without_duplicates(local_ray, cohort_dir, tmp_path,
                                                                      sweep_data):
    """Case 10: SIGKILL the driver (and its local Ray) after k of N configurations, rerun the same sweep."""
    from raypath.sweep.driver import run_sweep

    data = sweep_data(
        cohort_dir,
        tmp_path,
        sweep_id="killed",
        num_samples=12,
        train={**sweep_data(cohort_dir, tmp_path)["train"], "epochs": 5},
    )
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    config = SweepConfig.model_validate(data)
    driver = subprocess.Popen(
        [sys.executable, "-m", "raypath.cli", "sweep", "--config", str(path)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150
        # Killed while a later pack runs (between two batches nothing runs: no stale run to close).
        while not ((statuses := [r.info.status for r in _runs(config)]).count("FINISHED") >= 2
                   and "RUNNING" in statuses):
            assert driver.poll() is None, "the sweep ended before it could be interrupted"
            assert time.monotonic() < deadline, "no trial finished in time"
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert any(r.info.status == "RUNNING" for r in _runs(config)), "kill landed between trials; no stale run"

    outcome = next(o for o in run_sweep(config) if o.phase == "search")

    active = _runs(config)
    assert outcome.trials == 12 and len(active) == 12
    assert len({r.data.tags["raypath.trial_key"] for r in active}) == 12
    assert {r.info.status for r in active} == {"FINISHED"}
    assert not [r for r in _runs(config, view=ViewType.ALL) if r.info.status == "RUNNING"]
    replaced = [r for r in _runs(config, view=ViewType.DELETED_ONLY)]
    assert replaced and "KILLED" in {r.info.status for r in replaced}
    state_file = max(Path(outcome.path).glob("searcher-state-*.pkl"))
    state = json.loads(state_file.read_text())  # the searcher's state is data (issue 24)
    assert state["handed"] == len(search_packs(config)) == outcome.packs
    assert sum(len(outcomes) for outcomes in state["outcomes"].values()) == 12
    # Issue 16, case 7: the run MLflow kept for each key holds the results Tune last reported for it
    # (a trial the restored Tune retrained replaced its pre-kill run, even a finished one).
    reported = {}
    for result in Path(outcome.path).glob("pack_*/result.json"):
        for line in result.read_text().splitlines():
            for member in json.loads(line).get("members", []):
                reported[member["key"]] = member["metrics"]
    client = MlflowClient(config.tracking_uri())
    for run in active:
        expected = reported[run.data.tags["raypath.trial_key"]]
        assert client.get_run(run.info.run_id).data.metrics["val/auc"] == pytest.approx(expected["val/auc"])


def test_trials_that_raise_are_retried_then_failed_and_compare_ignores_them(local_ray, cohort_dir, tmp_path,
                                                                           sweep_data):
    """Case 11: a tile-level loss without registration raises in every attempt of its pack."""
    from raypath.compare.config import CompareConfig
    from raypath.compare.groups import model_groups
    from raypath.sweep.driver import run_sweep

    space = {
        **sweep_data(cohort_dir, tmp_path)["space"],
        "losses.tile_consistency": {"type": "choice", "values": [0.0, 0.5]},
    }
    config = SweepConfig.model_validate(
        sweep_data(
            cohort_dir, tmp_path, sweep_id="raising", space=space, num_samples=6, pack_size=1, max_failures=1
        )
    )
    (outcome,) = run_sweep(config)
    runs = _runs(config)
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert outcome.trials == 6 and len(runs) == 6 and outcome.errored_packs == len(failed) > 0
    assert all(r.data.params["losses.tile_consistency"] == "0.5" for r in failed)
    assert {r.data.tags["raypath.attempt"] for r in failed} == {"2"}  # first try + max_failures retries
    experiment = MlflowClient(config.tracking_uri()).get_experiment_by_name(
        EXPERIMENT.format(sweep="raising")
    )
    frame = runs_frame(MlflowClient(config.tracking_uri()), experiment.experiment_id)
    groups = model_groups(
        frame, CompareConfig(sweep_id="raising", output_dir=tmp_path, accuracy_tolerance=1.0)
    )
    used = {run_id for group in groups.groups.values() for run_id in group["run_id"]}
    assert "baseline" in groups.groups and not used & {r.info.run_id for r in failed}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_parallel_trials_log_exact_metric_counts_to_an_mlflow_server(
    local_ray, cohort_dir, tmp_path, mlflow_server
, sweep_data):
    """Case 12: every run has exactly one point per epoch plus the final one; nothing is lost or locked."""
    from raypath.sweep.driver import run_sweep

    config = SweepConfig.model_validate(
        sweep_data(cohort_dir, tmp_path, sweep_id="served", num_samples=8, tracking={"uri": mlflow_server})
    )
    (outcome,) = run_sweep(config)
    runs = _runs(config)
    client = MlflowClient(mlflow_server)
    assert outcome.errored_packs == 0 and len(runs) == 8
    assert {r.info.status for r in runs} == {"FINISHED"}
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val/auc")
        assert [m.step for m in history] == [1, 2, 3, 3]  # three epochs, then the final evaluation
        assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3
    assert not (tmp_path / "mlflow.db").exists()  # nothing fell back to the embedded store
