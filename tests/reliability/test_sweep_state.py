"""Issue 23 (complete phases only) and issue 24 (no code runs from sweep storage), with real processes
where the fault is a process fault.

- A `raypath sweep` process sent SIGINT mid-search exits 130 naming the phase and how far it got,
  replicates nothing, and `raypath compare` refuses the sweep (no registered model); the same
  command then completes the search and replicates what the *full* search selected.
- A malicious pickle (the payload would create a marker) or a modified one planted in a sweep's
  Tune directory, a state file writable by others or owned by another user: the rerun of the same
  command exits 2 with the reason before Ray starts, and no payload runs.
- A search in which no trial reported ends with a message saying so.
"""

import os
import pickle
import shutil
import signal
import sys
from pathlib import Path

import pytest
import yaml
from jobkit import cleanup, finish, start, wait_for
from mlflow import MlflowClient
from mlflow.entities import ViewType

from raypath.sweep.config import SweepConfig

pytestmark = pytest.mark.slow
EXPERIMENT = "raypath/{sweep}/sim-16"


class _Payload:
    """Unpickling this runs os.mkdir(marker): proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory, write_simulated):
    return write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=30, label_strength=3.0)


@pytest.fixture(scope="module")
def sweep_data(tiny_sweep_data, cohort_dir):
    """`sweep_data(out, **changes)`: four packs of two in batches of two, no early stopping."""
    def build(out: Path, **changes) -> dict:
        data = tiny_sweep_data(
            cohort_dir, out, sweep_id="state", train={"epochs": 6, "early_stopping": {"enabled": False}},
            space={"optimizer.lr": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
                   "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 2.0}},
            num_samples=8, pack_size=2, search_batch=2, asha={"enabled": False},
            resources={"max_concurrent_trials": 2}, replicates={"seeds": 0})
        return {**data, **changes}
    return build


def _write(data: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _trial_runs(config: SweepConfig, phase: str) -> list:
    client = MlflowClient(config.tracking_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT.format(sweep=config.sweep_id))
    if experiment is None:
        return []
    query = f"tags.`raypath.kind` = 'trial' and tags.`raypath.phase` = '{phase}'"
    return client.search_runs([experiment.experiment_id], filter_string=query,
                              run_view_type=ViewType.ACTIVE_ONLY, max_results=500)


def test_sigint_mid_search_replicates_nothing_and_the_rerun_completes_from_the_full_search(
        tmp_path, sweep_data):
    from raypath.cli import main
    from raypath.sweep.selection import select_robust
    from raypath.tracking.queries import runs_frame

    data = sweep_data(tmp_path, replicates={"seeds": 2, "top_k": 1, "accuracy_tolerance": 1.0})
    path, config = _write(data, tmp_path / "sweep.yaml"), SweepConfig.model_validate(data)
    command = [sys.executable, "-m", "raypath.cli", "sweep", "--config", str(path)]
    log = tmp_path / "first.log"
    with cleanup() as started:
        driver = start(command, stderr=log)
        started.append(driver)
        wait_for(lambda: any(r.info.status == "FINISHED" for r in _trial_runs(config, "search")),
                 what="a finished search trial", process=driver)
        os.kill(driver.pid, signal.SIGINT)
        assert finish(driver) == 130, log.read_text()[-3000:]
    text = log.read_text()
    assert "sim-16 search stopped by SIGINT after" in text and "Run the same command again" in text
    assert "Traceback" not in text
    finished = [r for r in _trial_runs(config, "search") if r.info.status == "FINISHED"]
    assert 0 < len(finished) < 8 and not _trial_runs(config, "replicates")

    compare = ["compare", "--sweep-id", "state", "--sweep-dir", str(tmp_path), "--set",
               "accuracy_tolerance=1.0", "--set", "heatmaps.specimens=0"]
    assert main(compare) == 2  # names the incomplete phase; registers nothing
    client = MlflowClient(config.tracking_uri())
    assert not client.search_registered_models()

    second = tmp_path / "second.log"
    with cleanup() as started:
        driver = start(command, stderr=second)
        started.append(driver)
        assert finish(driver) == 0, second.read_text()[-3000:]
    search = _trial_runs(config, "search")
    assert len(search) == 8 and {r.info.status for r in search} == {"FINISHED"}
    experiment = client.get_experiment_by_name(EXPERIMENT.format(sweep="state")).experiment_id
    full = runs_frame(client, experiment, phase="search")
    chosen = select_robust(full, objectives=config.objectives, top_k=1, tolerance=1.0)
    replicated = {r.data.tags["raypath.params"] for r in _trial_runs(config, "replicates")}
    assert len(replicated) == 2 and yaml.safe_dump(chosen[0], sort_keys=True) in {
        yaml.safe_dump(yaml.safe_load(p), sort_keys=True) for p in replicated}  # from the full search
    assert main(compare) == 0
    champion = client.get_model_version_by_alias("raypath-state-sim-16", "champion")
    assert champion.run_id in {r.info.run_id for r in _trial_runs(config, "replicates")}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, sweep_data, local_ray) -> Path:
    """A finished search (no replicates) whose directory the cases below tamper with, each on a copy."""
    from raypath.sweep.driver import run_sweep

    out = tmp_path_factory.mktemp("finished")
    run_sweep(SweepConfig.model_validate(sweep_data(out, num_samples=4)))
    return out


def _tampered(finished: Path, tmp_path: Path, sweep_data) -> tuple[Path, Path, list[str]]:
    """A copy of the finished sweep: (its search directory, its config file, the command's argv)."""
    out = tmp_path / "copy"
    shutil.copytree(finished, out, symlinks=True)
    config = _write(sweep_data(out, num_samples=4), tmp_path / "sweep.yaml")
    return out / "tune" / "state-sim-16-search", config, ["sweep", "--config", str(config)]


def _plant(directory: Path, name: str, marker: Path) -> Path:
    target = next(directory.glob(name))
    target.write_bytes(pickle.dumps({"state": _Payload(marker)}))
    return target


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the sweep starts Ray: untrusted state must stop it first."""
    import raypath.sweep.driver as driver

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sweep started Ray despite untrusted state")

    monkeypatch.setattr(driver, "connect", forbidden)


def _refused(argv: list[str], capsys) -> str:
    from raypath.cli import main

    assert main(argv) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("name", ["searcher-state-*.pkl", "tuner.pkl", "search_gen_state-*.json",
                                  "experiment_state-*.json"])
def test_a_malicious_pickle_in_the_sweep_directory_runs_no_code(finished_sweep, tmp_path, sweep_data, name,
                                                                no_ray, capsys):
    directory, _, argv = _tampered(finished_sweep, tmp_path, sweep_data)
    marker = tmp_path / "pwned"
    planted = _plant(directory, name, marker)
    err = _refused(argv, capsys)
    assert f"{planted.name} is not what this raypath wrote there" in err and "Put back a trusted copy" in err
    assert not marker.exists()


def test_the_payload_is_real(tmp_path):
    """Unpickling the planted file runs the payload; so the refusals above are meaningful."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps({"state": _Payload(marker)}))  # the point of the test
    assert marker.is_dir()


def test_a_modified_pickle_and_planted_files_are_refused(finished_sweep, tmp_path, sweep_data, no_ray,
                                                         capsys):
    directory, _, argv = _tampered(finished_sweep, tmp_path, sweep_data)
    tuner = directory / "tuner.pkl"
    tuner.write_bytes(tuner.read_bytes().replace(b"state-sim-16-search", b"state-sim-16-searcH"))
    assert "tuner.pkl is not what this raypath wrote there" in _refused(argv, capsys)

    directory, _, argv = _tampered(finished_sweep, tmp_path / "b", sweep_data)
    trial = next(p for p in directory.iterdir() if p.name.startswith("pack_"))
    (trial / "error.pkl").write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
    assert f"{trial.name}/error.pkl is not what this raypath wrote there" in _refused(argv, capsys)
    assert not (tmp_path / "pwned").exists()


def test_state_writable_by_others_or_owned_by_another_user_is_refused(finished_sweep, tmp_path, sweep_data,
                                                                     no_ray, capsys):
    directory, _, argv = _tampered(finished_sweep, tmp_path, sweep_data)
    state = next(directory.glob("experiment_state-*.json"))
    state.chmod(0o666)
    err = _refused(argv, capsys)
    assert f"{state.name} has mode 666" in err and "chmod go-w" in err

    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    directory, _, argv = _tampered(finished_sweep, tmp_path / "b", sweep_data)
    os.chown(directory / "tuner.pkl", 65534, 65534)
    assert "is owned by uid 65534, not by you" in _refused(argv, capsys)


def test_a_changed_search_config_is_refused_not_mixed_in(finished_sweep, tmp_path, sweep_data, no_ray,
                                                          capsys):
    _, config, _ = _tampered(finished_sweep, tmp_path, sweep_data)
    err = _refused(["sweep", "--config", str(config), "--num-samples", "6"], capsys)
    assert "holds a sweep phase started with another config" in err


def test_a_search_in_which_no_trial_reported_says_so(tmp_path, sweep_data, local_ray, capsys):
    from raypath.cli import main

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the feature cache cannot be created here")
    data = sweep_data(tmp_path, num_samples=2, max_failures=0,
                      features={**sweep_data(tmp_path)["features"], "cache": {"dir": str(blocker)}})
    assert main(["sweep", "--config", str(_write(data, tmp_path / "sweep.yaml"))]) == 1
    err = capsys.readouterr().err  # 2 configurations, 2 trials at once: the tapered tail packs them alone
    assert "sim-16 search: no trial reported val/auc (2 of 2 packs failed after their retries" in err
    assert "KeyError" not in err and "Traceback" not in err
