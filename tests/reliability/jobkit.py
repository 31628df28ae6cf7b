"""Running `raypath extract` as real processes in the reliability suite: arguments, environment,
start, wait, and the cleanup of everything a job started (its session, by pid)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cohortkit import ENCODER

REPO = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 240


def job_env(**extra: str) -> dict[str, str]:
    """The job must start its own local Ray, never join one named by the environment."""
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | extra


def extract_args(manifest: Path, out: Path, run_id: str, *, batch: int = 16) -> list[str]:
    return ["--manifest", str(manifest), "--out", str(out), "--encoder", ENCODER, "--run-id", run_id,
            "--set", f"batch_size={batch}", "--set", f"tiles_per_chunk={min(batch, 8)}"]


def start(command: list[str], *, stderr: Path | None = None, env: dict[str, str] | None = None
          ) -> subprocess.Popen:
    """A job in its own session; stderr to a file when given (read while it runs), else a pipe."""
    sink = stderr.open("w") if stderr is not None else subprocess.PIPE
    try:
        return subprocess.Popen(command, cwd=REPO, env=env or job_env(), start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=sink)
    finally:
        if stderr is not None:
            sink.close()


def session_members(session: int) -> list[int]:
    """Live processes of a session this test started (the job and the Ray processes it spawned)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def kill_session(session: int) -> None:
    """SIGKILL every process of the job's session (a lost node), and wait until none is left."""
    deadline = time.monotonic() + 30
    while (members := session_members(session)) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    assert not session_members(session), "processes of the killed job survived"


def finish(process: subprocess.Popen) -> int:
    """Wait for a started job (at most JOB_TIMEOUT_S), then end whatever it left running."""
    try:
        process.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        kill_session(process.pid)
    assert process.returncode is not None
    return process.returncode


@contextlib.contextmanager
def cleanup() -> Iterator[list[subprocess.Popen]]:
    """Jobs appended to the yielded list are ended (their whole session) however the test exits."""
    started: list[subprocess.Popen] = []
    try:
        yield started
    finally:
        for process in started:
            kill_session(process.pid)


def run_job(command: list[str], **options: object) -> int:
    return finish(start(command, **options))


def wait_for(condition: Callable[[], bool], *, what: str, process: subprocess.Popen | None = None,
             timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Poll `condition()` until true; fail naming `what` on timeout or when `process` ends first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process is None or process.poll() is None, f"the job ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def build_shim(source: Path, directory: Path) -> Path:
    """Compile a test-tree LD_PRELOAD shim (`*.c` next to the tests) into `directory`."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler is needed to build the fault shims (gcc is on every raypath machine)"
    library = directory / f"{source.stem}.so"
    command = [compiler, "-shared", "-fPIC", "-O1", "-o", str(library), str(source), "-ldl", "-lpthread"]
    subprocess.run(command, check=True)
    return library
