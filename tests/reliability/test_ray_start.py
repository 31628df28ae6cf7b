"""Issue 24, case 5: the private local Ray instance. Every command that starts Ray takes
`--ray-temp-dir` and `--ray-startup-timeout` (one flag parser); the instance listens on loopback
only, serves no metrics of its node, keeps its temp and session directories to this user, and a
node that does not come up in time ends the command with one line naming the likely cause."""

import ipaddress
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from jobkit import REPO, job_env, run_job

from raypath.cli import build_parser
from raypath.commands.flags import config_from_args, config_from_flags
from raypath.config import RaySettings

LOCAL_INSTANCE_FLAGS = ["--ray-temp-dir", "ray-tmp", "--ray-startup-timeout", "300"]
COMMANDS = {  # command -> its config model's module and name, and the arguments it needs to parse
    "extract": ("raypath.extract.config", "ExtractConfig", []),
    "sweep": ("raypath.sweep.config", "SweepConfig", ["--config", "jobs/configs/sweep.yaml"]),
    "predict": ("raypath.predict.config", "PredictConfig", []),
    "finetune": ("raypath.finetune.config", "FinetuneConfig", ["--config", "jobs/configs/finetune.yaml"]),
    "demo": ("raypath.demo.config", "DemoConfig", []),
}
UNAVOIDABLE_METRICS = {44217, 44227}
"""Ray's autoscaler monitor and dashboard head serve /metrics on these fixed ports (loopback only)."""


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_that_starts_ray_takes_the_start_up_flags(command, monkeypatch, tmp_path):
    import importlib

    module, name, needed = COMMANDS[command]
    monkeypatch.chdir(REPO)
    args = build_parser(command).parse_args([command, *needed, *LOCAL_INSTANCE_FLAGS])
    config = config_from_args(getattr(importlib.import_module(module), name), args,
                              importlib.import_module(f"raypath.commands.{command}").FLAGS)
    assert config.ray == RaySettings(temp_dir=REPO / "ray-tmp", startup_timeout_s=300.0)


def test_train_on_workers_takes_the_start_up_flags(monkeypatch):
    monkeypatch.chdir(REPO)
    args = build_parser("train").parse_args(["train", "--features", "f", "--encoder", "e", "--labels", "l",
                                             *LOCAL_INSTANCE_FLAGS])
    assert config_from_flags(RaySettings, args, ()) == RaySettings(temp_dir=REPO / "ray-tmp",
                                                                   startup_timeout_s=300.0)


def test_a_temp_dir_too_long_for_rays_sockets_is_refused():
    with pytest.raises(ValueError, match="too long for Ray's socket paths"):
        RaySettings(temp_dir="/tmp/" + "x" * 60)


def loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback  # ::ffff:127.0.0.1 is loopback too


@pytest.fixture(scope="module")
def facts() -> dict:
    """What `connect` started: its listening sockets, /metrics answers and directory modes."""
    with tempfile.TemporaryDirectory(prefix="rp-", dir="/tmp") as temp_dir:  # short: Ray's socket paths
        script = Path(__file__).with_name("ray_facts.py")
        done = subprocess.run([sys.executable, str(script), "--ray-temp-dir", f"{temp_dir}/ray"], cwd=REPO,
                              env=job_env(), capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return {**json.loads(done.stdout.splitlines()[-1]), "temp_dir": f"{temp_dir}/ray"}


@pytest.mark.slow
def test_the_local_instance_listens_on_loopback_only(facts):
    """Before: the GCS, raylet, workers and agents listened on every interface."""
    assert facts["listening"] and [s for s in facts["listening"] if not loopback(s["address"])] == []


@pytest.mark.slow
def test_the_local_instance_serves_no_metrics_of_its_node(facts):
    """Before: the dashboard agent's metrics port answered GET /metrics without a token (970 series)."""
    answering = {int(port) for port, status in facts["metrics"].items() if status == 200}
    assert answering <= UNAVOIDABLE_METRICS, facts["listening"]


@pytest.mark.slow
def test_the_temp_dir_is_honoured_and_no_session_directory_is_writable_by_others(facts):
    """Before: no flag, and Ray's directories were mode 777."""
    assert Path(facts["session"]).parent == Path(facts["temp_dir"])
    assert {path: oct(mode) for path, mode in facts["modes"].items() if mode & 0o022} == {}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, write_simulated) -> Path:
    return write_simulated(tmp_path_factory.mktemp("cohort"), n_specimens=6)


@pytest.mark.slow
def test_a_node_that_does_not_start_in_time_ends_with_one_line(cohort, tmp_path):
    """Before: Ray's fixed 30 s, then `The current node timed out during startup` and a traceback."""
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump({"sweep_id": "slow", "output_dir": str(tmp_path / "out"), "features": {
        "root": str(cohort / "features"), "fms": ["sim-16"], "labels": str(cohort / "labels.csv")}}))
    log = tmp_path / "stderr.log"
    code = run_job([sys.executable, str(Path(__file__).with_name("slow_ray_node.py")), "sweep", "--config",
                    str(config), "--ray-startup-timeout", "5"], stderr=log)
    stderr = log.read_text()
    errors = [line for line in stderr.splitlines() if " ERROR " in line]
    assert code == 1 and "Traceback" not in stderr and len(errors) == 1, stderr[-3000:]
    assert "the local Ray node did not start within 5 s: likely" in errors[0]
    assert "--ray-startup-timeout" in errors[0] and "--ray-temp-dir" in errors[0]
