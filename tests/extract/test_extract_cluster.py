"""A real two-node Ray cluster on this machine: `ray job submit jobs/extract.py`, slides on both nodes.

The cluster is private to the test: its own free ports, its own temp dir, token auth with a token
kept in the environment (never ~/.ray), and teardown kills only processes that belong to it.
"""

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
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raypath.encoders.registry import build_encoder
from raypath.extract.config import ExtractConfig
from raypath.slides import open_slide, read_tiles, tile_slide
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig
from raypath.store import FeatureStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
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
def cluster() -> Iterator[dict]:
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
        yield {"env": env, "dashboard": f"http://127.0.0.1:{dashboard}", "gcs": f"127.0.0.1:{gcs}"}
    finally:
        kill_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_nodes(cluster: dict, count: int, timeout_s: float = 60) -> None:
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


def direct_features(slide_path: str, config: ExtractConfig) -> np.ndarray:
    """The single-process reference: tile, decode and encode one slide without Ray."""
    encoder = build_encoder(config.encoders[0].name)
    with open_slide(slide_path) as reader:
        tiles = read_tiles(reader, tile_slide(reader, config.tiling))
    return encoder(encoder.preprocess(tiles)).numpy() if len(tiles) else np.zeros((0, encoder.embed_dim))


def test_job_submitted_to_a_two_node_cluster_uses_both_nodes(cluster, tmp_path):
    cohort, out = tmp_path / "cohort", tmp_path / "features"
    write_cohort(SynthConfig(specimens=4, field_um=(600.0, 600.0), workers=1), cohort)
    wait_for_nodes(cluster, 2)
    args = ["--config", "jobs/configs/extract-demo.yaml", "--manifest", str(cohort / "manifest.csv"),
            "--out", str(out), "--run-id", "cluster", "--set", "tiles_per_chunk=4"]
    submit = [str(BIN / "ray"), "job", "submit", "--address", cluster["dashboard"],
              "--working-dir", str(REPO), "--", "python", "jobs/extract.py", *args]
    done = subprocess.run(submit, env=cluster["env"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    slides = pd.read_csv(out / "_runs" / "cluster" / "slides.csv").set_index("slide_id")
    assert len(slides) == 8 and set(slides["status"]) <= {"done", "skipped"}
    assert slides["node_id"].nunique() == 2, slides["node_id"]
    config = ExtractConfig.model_validate({"encoders": ["tiny-uni"]})
    store = FeatureStore(out, encoder="tiny-uni", tiling_hash=config.tiling.cache_key())
    assert store.slide_ids() == sorted(slides.index[slides["status"] == "done"])
    for row in pd.read_csv(cohort / "manifest.csv").itertuples():
        expected = direct_features(str(cohort / row.path), config)
        if slides.loc[row.slide_id, "status"] == "skipped":
            assert len(expected) == 0
            continue
        np.testing.assert_allclose(store.read_bag(row.slide_id).features, expected, rtol=1e-4, atol=1e-5)
