"""Issue 8, case 14: untrusted checkpoints cannot run code, and the cluster services refuse clients
without credentials (a real token-protected `ray start --head`, a real auth-enabled MLflow server)."""

import ast
import base64
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from authkit import (
    auth_headers,
    free_port,
    read_token,
    token_auth_env,
    without_auth_env,
    write_token_file,
)

from raypath.encoders.loading import UnsafeCheckpointError, load_state_dict_file

REPO = Path(__file__).resolve().parents[2]
SCANNED = ("raypath", "jobs", "benchmarks")
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- torch.load weights_only=True
class _UnsafeLoads(ast.NodeVisitor):
    """Calls to torch.load (under any import alias) without a literal weights_only=True, and
    numpy loads that allow pickles."""

    def __init__(self) -> None:
        self.torch_names: set[str] = set()
        self.load_names: set[str] = set()
        self.problems: list[str] = []

    def visit_Import(self, node: ast.Import) -> None:
        self.torch_names |= {a.asname or a.name for a in node.names if a.name == "torch"}

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module == "torch":
            self.load_names |= {a.asname or a.name for a in node.names if a.name == "load"}

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        is_torch_load = (isinstance(func, ast.Attribute) and func.attr == "load"
                         and isinstance(func.value, ast.Name) and func.value.id in self.torch_names) or (
                         isinstance(func, ast.Name) and func.id in self.load_names)
        keywords = {k.arg: k.value for k in node.keywords}
        if is_torch_load:
            flag = keywords.get("weights_only")
            if not (isinstance(flag, ast.Constant) and flag.value is True):
                self.problems.append(f"line {node.lineno}: torch.load without weights_only=True")
        allow = keywords.get("allow_pickle")
        if isinstance(allow, ast.Constant) and allow.value is True:
            self.problems.append(f"line {node.lineno}: allow_pickle=True")
        self.generic_visit(node)


def _unsafe_loads(source: str) -> list[str]:
    visitor = _UnsafeLoads()
    visitor.visit(ast.parse(source))
    return visitor.problems


def test_scanner_flags_unsafe_loads():
    assert _unsafe_loads("import torch\ntorch.load('m.pt')")
    assert _unsafe_loads("import torch as th\nth.load('m.pt', weights_only=False)")
    assert _unsafe_loads("from torch import load as tl\ntl('m.pt', map_location='cpu')")
    assert _unsafe_loads("import torch\nkw = {}\ntorch.load('m.pt', **kw)")
    assert _unsafe_loads("import numpy as np\nnp.load('a.npy', allow_pickle=True)")
    assert not _unsafe_loads("import torch\ntorch.load('m.pt', map_location='cpu', weights_only=True)")


def test_every_torch_load_in_the_code_is_weights_only():
    files = [p for folder in SCANNED for p in sorted((REPO / folder).rglob("*.py"))]
    assert any("torch.load" in p.read_text() for p in files), "the scan must see the loaders"
    problems = [f"{p.relative_to(REPO)} {issue}" for p in files for issue in _unsafe_loads(p.read_text())]
    assert problems == []


# ---------------------------------------------------------------- malicious checkpoints
class _Payload:
    """Unpickling this creates `marker`: a stand-in for any code an attacker could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _malicious(path: Path, marker: Path) -> Path:
    state = {"weight": torch.zeros(2), "payload": _Payload(marker)}
    if path.suffix == ".pkl":
        path.write_bytes(pickle.dumps(state, protocol=2))  # legacy plain pickle
    else:
        torch.save(state, path)  # torch zip format, as a real .bin/.pt checkpoint
    return path


def test_the_payload_is_real(tmp_path):
    """The unsafe loader runs the payload; so the refusals below are meaningful."""
    marker = tmp_path / "pwned"
    torch.load(_malicious(tmp_path / "model.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.pth", "legacy.pkl"])
def test_malicious_pickle_checkpoint_is_refused(tmp_path, name):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        load_state_dict_file(_malicious(tmp_path / name, marker))
    assert not marker.exists()


def test_pickle_disguised_as_safetensors_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; running the payload will not
        load_state_dict_file(_malicious(tmp_path / "model.safetensors", marker))
    assert not marker.exists()


# ---------------------------------------------------------------- Ray token auth
def _http_status(url: str, headers: dict[str, str] | None = None) -> int:
    # a generous per-request wait: a one-worker server hashing a password answered in over 10 s on a
    # 2-core machine under a full test run; a refusal is a status code, never a timeout
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def _kill_tree(process: subprocess.Popen, marker: str) -> None:
    """Stop this cluster only: its process group, then any process whose command line names its
    private temp dir (never `ray stop`, which would stop other people's Ray on this machine)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="ignore"):
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


@contextmanager
def _ray_head(root: Path, env: dict[str, str], temp_dir: Path | None = None) -> Iterator[str]:
    """A one-CPU `ray start --head` on free loopback ports; yields the dashboard URL. Its temp dir
    is short on purpose: Ray's Unix socket paths under it must stay below 108 bytes."""
    temp_dir = temp_dir or Path(tempfile.mkdtemp(prefix="rp-ray-", dir="/tmp"))
    dashboard = free_port()
    ports = {"port": free_port(), "dashboard-port": dashboard, "ray-client-server-port": free_port(),
             "node-manager-port": free_port(), "object-manager-port": free_port(),
             "dashboard-agent-listen-port": free_port(), "dashboard-agent-grpc-port": free_port(),
             "runtime-env-agent-port": free_port(), "metrics-export-port": free_port()}
    command = [str(BIN / "ray"), "start", "--head", "--block", "--num-cpus=1", "--disable-usage-stats",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}",
               *(f"--{name}={port}" for name, port in ports.items())]
    log = (root / "ray-start.log").open("w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_until(lambda: _answers(url + "/api/version", {200, 401, 403}), process, root / "ray-start.log")
        yield url
    finally:
        _kill_tree(process, str(temp_dir))
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _answers(url: str, statuses: set[int]) -> bool:
    try:
        return _http_status(url) in statuses
    except OSError:  # not listening yet
        return False


def _wait_until(ready, process: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    """Poll `ready()`; fail with the server's log if it exits or takes longer than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


@pytest.fixture
def ray_env(tmp_path):
    """Environment of a Ray process with a private HOME (the real ~/.ray is never touched)."""
    home = tmp_path / "home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**base, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}",
            "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ray_job_submission_needs_the_token(tmp_path, ray_env):
    token_path = write_token_file(tmp_path / "secrets" / "auth_token")
    assert token_path.stat().st_mode & 0o077 == 0
    token = read_token(token_path)
    ran = tmp_path / "anonymous-job-ran"
    with _ray_head(tmp_path, token_auth_env(token_path, base=ray_env)) as url:
        # A client holding no token: the job API refuses before anything runs.
        anonymous = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", url, "--no-wait", "--",
             "python", "-c", f"open({str(ran)!r}, 'w')"],
            env=without_auth_env(ray_env), capture_output=True, text=True, timeout=60)
        assert anonymous.returncode != 0
        assert "Unauthorized" in anonymous.stderr + anonymous.stdout
        assert _http_status(url + "/api/jobs/") == 401
        assert _http_status(url + "/api/jobs/", auth_headers("0" * 64)) == 403
        # The same client with the token: the job runs to SUCCEEDED.
        submitted = subprocess.run(
            [str(BIN / "ray"), "job", "submit", "--address", url, "--submission-id", "auth-ok", "--",
             "python", "-c", "print('token-accepted')"],
            env=token_auth_env(token_path, base=ray_env), capture_output=True, text=True, timeout=90)
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        assert "token-accepted" in submitted.stdout
        request = urllib.request.Request(url + "/api/jobs/auth-ok", headers=auth_headers(token))
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.load(reply)["status"] == "SUCCEEDED"
    assert not ran.exists()
    assert not (Path(ray_env["HOME"]) / ".ray" / "auth_token").exists(), "the token stays where it was put"


# ---------------------------------------------------------------- one way to start Ray
_DRIVERS = ("import json, ray, ray._private.state as state; "
            "ray.init(address={address!r}, logging_level='ERROR'); "
            "print(json.dumps([job['Entrypoint'] for job in state.jobs()]))")


def _drivers(address: str, env: dict[str, str]) -> list[str]:
    """The entry points of every driver that has ever connected to the cluster at `address`."""
    done = subprocess.run([sys.executable, "-c", _DRIVERS.format(address=address)], env=env,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _current_cluster(temp_dir: Path, timeout_s: float = 60) -> str:
    """The address `ray start` records for `ray.init()` to find (written once the head is up)."""
    path = temp_dir / "ray_current_cluster"
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)
    return path.read_text().strip()


def _token_files(*roots: Path) -> dict[str, int]:
    """Every file named like a token under `roots`, with its permission bits."""
    return {str(p): p.stat().st_mode & 0o777 for root in roots for p in root.rglob("*")
            if p.is_file() and "token" in p.name}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sweep_without_an_address_never_joins_a_ray_start_cluster_on_the_host(tmp_path, ray_env,
                                                                            tiny_sweep_data, write_simulated):
    """Issue 16, case 2: someone's `ray start` cluster runs here, discoverable the way Ray looks for one
    (RAY_TMPDIR/ray/ray_current_cluster, kept private to this test); `raypath sweep` with no address
    must run on a private instance and write no token readable by others."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))
    env = {**ray_env, "RAY_TMPDIR": str(ray_tmp)}
    cohort = write_simulated(tmp_path / "cohort", n_specimens=12)
    data = tiny_sweep_data(cohort, tmp_path / "sweep", sweep_id="isolated", train={"epochs": 1},
                           num_samples=2, pack_size=2, asha={"enabled": False}, replicates={"seeds": 0})
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(data))
    try:
        with _ray_head(tmp_path, env, temp_dir=ray_tmp / "ray"):
            address = _current_cluster(ray_tmp / "ray")
            joined = subprocess.run([sys.executable, "-c", "import ray; ray.init(logging_level='ERROR'); "
                                     "print(ray.get_runtime_context().gcs_address)"],
                                    env=env, capture_output=True, text=True, timeout=90)
            trap = f"plain ray.init() did not find the cluster: {joined.stderr[-1500:]}"
            assert joined.stdout.strip().endswith(address), trap  # without raypath.cluster, it would join
            sweep = subprocess.run([sys.executable, "-m", "raypath.cli", "sweep", "--config", str(config)],
                                   env=env, cwd=REPO, capture_output=True, text=True, timeout=240)
            assert sweep.returncode == 0, sweep.stderr[-3000:]
            drivers = _drivers(address, env)
            assert any("ray.init(logging_level" in d for d in drivers), drivers  # the trap's driver is seen
            assert [d for d in drivers if "sweep" in d] == [], "raypath sweep connected to the host's cluster"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert not (Path(env["HOME"]) / ".ray" / "auth_token").exists()
    tokens = _token_files(Path(env["HOME"]), tmp_path)
    assert {path: mode for path, mode in tokens.items() if mode & 0o077} == {}


# ---------------------------------------------------------------- MLflow basic auth
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_mlflow_server_refuses_anonymous_clients(tmp_path):
    """cluster/mlflow/entrypoint.sh (what the image runs) on SQLite instead of Postgres."""
    port, password = free_port(), "admin-password-for-tests"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MLFLOW_PORT": str(port),
           "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'runs.db'}",
           "MLFLOW_AUTH_DATABASE_URI": f"sqlite:///{tmp_path / 'users.db'}",
           "MLFLOW_AUTH_ADMIN_PASSWORD": password, "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-csrf-key",
           "MLFLOW_ARTIFACTS_DESTINATION": str(tmp_path / "artifacts")}
    script = REPO / "cluster" / "mlflow" / "entrypoint.sh"
    log = (tmp_path / "mlflow.log").open("w")
    process = subprocess.Popen(["sh", str(script), "--workers", "1"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    api = base + "/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        _wait_until(lambda: _answers(base + "/health", {200}), process, tmp_path / "mlflow.log")
        assert _http_status(api) == 401
        assert _http_status(api, _basic("admin", "wrong-password")) == 401
        assert _http_status(api, _basic("admin", password)) == 200
        assert _http_status(api, {**_basic("admin", password), "Host": "attacker.example:5000"}) == 403
    finally:
        _kill_tree(process, str(tmp_path))
        log.close()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
