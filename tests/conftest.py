"""Suite-wide settings and shared fixtures: CI's two cores, headless plotting, one private Ray,
and small feature-level simulated cohorts (on disk or in memory)."""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(autouse=True, scope="session")
def _limit_threads():
    """Two cores in CI: oversubscribed thread pools make every test slower."""
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(scope="session")
def local_ray():
    """One private local Ray instance for every in-process Ray test (no token written to ~/.ray)."""
    import ray

    from raypath.cluster import connect

    started = connect(None, num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def write_simulated() -> Callable[..., Path]:
    """`write_simulated(out, **fields)`: feature store, manifest, labels, splits and registration of a
    small simulated cohort (12 tiles x 16 dims unless `fields` say otherwise) under `out`."""
    from raypath.simulate.config import SimulateConfig
    from raypath.simulate.store import write_feature_cohort

    def write(out: Path, **fields) -> Path:
        write_feature_cohort(SimulateConfig(**{"tiles": 12, "dim": 16, "seed": 0, **fields}), out=out)
        return out

    return write


@pytest.fixture(scope="session")
def simulated_bags() -> Callable[..., "BagSet"]:  # noqa: F821
    """`simulated_bags(**fields)`: an in-memory simulated cohort as a BagSet with labels and splits."""
    from raypath.mil.bags import simulated_bagset
    from raypath.simulate.cohort import simulate_cohort
    from raypath.simulate.config import SimulateConfig

    return lambda **fields: simulated_bagset(simulate_cohort(SimulateConfig(**fields)))


@pytest.fixture(scope="session")
def tiny_sweep_data() -> Callable[..., dict]:
    """`tiny_sweep_data(cohort, out, sweep_id=..., train={...}, **rest)`: a sweep config (as YAML-like
    data) over a `write_simulated` cohort with a tiny model; `train` and `rest` come on top."""
    def build(cohort: Path, out: Path, *, sweep_id: str, train: dict, **rest) -> dict:
        return {
            "sweep_id": sweep_id,
            "output_dir": str(out),
            "features": {"root": str(cohort / "features"), "fms": ["sim-16"],
                         "labels": str(cohort / "labels.csv"), "splits": str(cohort / "splits.csv")},
            "train": {"batch_specimens": 6, "robustness_k": 3, **train,
                      "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.0,
                                **train.get("model", {})}},
            **rest,
        }

    return build


# --- a real two-node Ray cluster on this host (extraction and sweep cluster tests) ---------------

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
NODE_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                   "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def node_flags(ports: list[int]) -> list[str]:
    return [f"{flag}={port}" for flag, port in zip(NODE_PORT_FLAGS, ports, strict=True)]


def cluster_pids(temp_dir: str) -> list[int]:
    """Processes whose command line names this cluster's temp dir (gcs, raylets, workers, agents)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if temp_dir in cmdline:
                pids.append(int(entry.name))
    return pids


def kill_cluster(temp_dir: str) -> None:
    """Terminate only this cluster's processes, by pid; never `ray stop` (others use Ray too)."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in cluster_pids(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while cluster_pids(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


@pytest.fixture
def two_node_cluster() -> Iterator[dict]:
    """A private two-node Ray cluster on this host (head: resource `head`, worker: `worker`, 1 CPU each),
    token auth with the token in the environment only; torn down by pid."""
    temp_dir = tempfile.mkdtemp(prefix="rpx", dir="/tmp")  # short: Unix socket paths are limited
    gcs, dashboard, client, *ports = free_ports(3 + 2 * len(NODE_PORT_FLAGS))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    head = [str(BIN / "ray"), "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}", f"--temp-dir={temp_dir}",
            '--resources={"head": 1}', *common, *node_flags(ports[: len(NODE_PORT_FLAGS)])]
    worker = [str(BIN / "ray"), "start", f"--address=127.0.0.1:{gcs}", '--resources={"worker": 1}',
              *common, *node_flags(ports[len(NODE_PORT_FLAGS):])]
    try:
        subprocess.run(head, env=env, check=True, timeout=120, capture_output=True)
        subprocess.run(worker, env=env, check=True, timeout=120, capture_output=True)
        cluster = {"env": env, "dashboard": f"http://127.0.0.1:{dashboard}", "gcs": f"127.0.0.1:{gcs}"}
        _wait_for_nodes(cluster, 2)

        def submit(entrypoint: list[str], *, timeout: float = 240) -> subprocess.CompletedProcess:
            """`ray job submit --working-dir <repo> -- <entrypoint>` to this cluster, waiting for the end."""
            command = [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"], "--working-dir",
                       str(REPO), "--", *entrypoint]
            return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

        yield {**cluster, "submit": submit}
    finally:
        kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_nodes(cluster: dict, count: int, timeout_s: float = 60) -> None:
    script = ("import ray; ray.init(address='{gcs}', logging_level='ERROR'); "
              "print(sum(n['Alive'] for n in ray.nodes()))").format(gcs=cluster["gcs"])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", script], env=cluster["env"], capture_output=True,
                              text=True, timeout=60)
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1] == str(count):
            return
        time.sleep(1)
    raise AssertionError(f"cluster did not reach {count} nodes: {done.stdout} {done.stderr[-2000:]}")
