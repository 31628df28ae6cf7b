"""The one way raypath connects to Ray.

`connect` joins a named cluster, the cluster a submitted job runs on, or starts a private local
instance: never some other user's `ray start` cluster that happens to run on this host, and never
by writing a token into the user's home. Every command and job (extract, sweep, predict,
finetune) and the test suite go through it.

Ray 2.60 turns token auth on with RAY_AUTH_MODE=token and reads the token from RAY_AUTH_TOKEN, else
the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token; raypath never writes that file:
a cluster's operator provides the token (the tests build that environment in `authkit.py`).
"""

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ray
from ray._private import ray_constants, services
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raypath.config import RaySettings
from raypath.errors import RayStartError

log = logging.getLogger(__name__)


def _token_available() -> bool:
    """Whether Ray would find an auth token without creating one (env or ~/.ray/auth_token)."""
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or (Path.home() / ".ray" / "auth_token").is_file())


def private_token_for_local_instance() -> None:
    """Keep token auth on for a local instance without writing ~/.ray/auth_token.

    Ray 2.60 turns token auth on for a new local instance and, lacking a token, saves one in the
    home directory, which silently switches every other Ray cluster of this user to token auth.
    A random token in this process's environment protects the private instance (its workers
    inherit it) and leaves the home directory alone. An explicit RAY_AUTH_MODE is respected.
    """
    if os.environ.get("RAY_AUTH_MODE", "token").lower() == "token" and not _token_available():
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


@ray.remote(num_cpus=0)
def _ready() -> None:
    """Nothing: running it on this node means the node's runtime environment is in place."""


def _settle_working_dir(cwd: str) -> None:
    """Re-enter the job's working directory once Ray has finished setting it up.

    Under `ray job submit --working-dir`, the driver's `ray.init` makes the node unpack the job's
    working directory again, replacing the directory the driver was started in: its cwd then no
    longer exists and anything that asks for it (MLflow, relative paths) fails. A task on this node
    runs only after the runtime environment is ready, so after it the path is stable to re-enter.
    """
    node = ray.get_runtime_context().get_node_id()
    ray.get(_on_node(node))
    os.chdir(cwd)


def _on_node(node: str) -> ray.ObjectRef:
    return _ready.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote()


def _prepare_other_nodes(*, timeout_s: float = 600.0) -> None:
    """Set up the job's runtime environment on every other live node now, in parallel.

    Otherwise each node unpacks the working directory when its first trial starts; while it does,
    Tune (`reuse_actors`) hands that trial to an actor that finished elsewhere, so short trials pile
    onto the first ready node and a node whose set-up fails is only found out mid-sweep. A node that
    cannot set up in `timeout_s` is named in a warning; work is then scheduled on the others.
    """
    this = ray.get_runtime_context().get_node_id()
    others = [n for n in ray.nodes() if n["Alive"] and n["NodeID"] != this]
    pending = [(node, _on_node(node["NodeID"])) for node in others]
    deadline = time.monotonic() + timeout_s
    for node, ready in pending:
        try:
            ray.get(ready, timeout=max(1.0, deadline - time.monotonic()))
        except (ray.exceptions.RayError, ValueError) as error:
            log.warning("node %s (%s) could not set up this job's environment: %s",
                        node["NodeID"][:16], node.get("NodeManagerAddress", "?"), error)


def connect(address: str | None, *, num_cpus: int | None = None, log_to_driver: bool = True,
            settings: RaySettings | None = None) -> bool:
    """Initialise Ray unless already initialised; True when this call started it.

    `ray job submit` sets RAY_ADDRESS for the entrypoint, so a submitted job joins its cluster.
    Without an address Ray would attach to the newest `ray start` cluster on this machine, which
    may belong to someone else; a private local instance is started instead (`start_local`).
    """
    if ray.is_initialized():
        return False
    cwd = os.getcwd()
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=log_to_driver)
    else:
        start_local(num_cpus=num_cpus, log_to_driver=log_to_driver, settings=settings or RaySettings())
    if ray.get_runtime_context().runtime_env.get("working_dir"):
        _settle_working_dir(cwd)
        _prepare_other_nodes()
    resources = ray.cluster_resources()
    log.info("ray: %d node(s), %s CPUs, %s GPUs", len(ray.nodes()), resources.get("CPU", 0),
             resources.get("GPU", 0))
    return True


def start_local(*, num_cpus: int | None, log_to_driver: bool, settings: RaySettings) -> None:
    """A private local instance: token auth, every process on 127.0.0.1 only, no metrics endpoint,
    files in a temp dir only this user can enter, and a start-up timeout that can be raised.

    Raises RayStartError (one line naming the likely cause) when the node does not come up in time.
    """
    private_token_for_local_instance()
    temp_dir = ray_temp_dir(settings)
    try:
        with _loopback_only(), _startup_deadline(settings.startup_timeout_s):
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver,
                     _temp_dir=str(temp_dir), _system_config={"enable_metrics_collection": False})
    except Exception as exc:
        if not isinstance(exc, _StartupTimeoutError) and "timed out during startup" not in str(exc):
            raise
        raise RayStartError(startup_failure(temp_dir, timeout_s=settings.startup_timeout_s)) from None
    _close_session(temp_dir)


def ray_temp_dir(settings: RaySettings) -> Path:
    """Ray's temp dir: the one asked for, else `<system temp>/raypath-<uid>/ray`. Ray opens every
    directory it makes to all users (mode 777); the default lies in a directory of this user's, mode
    700, that no one else can enter, and one someone else owns or opened is refused."""
    if settings.temp_dir is not None:
        return _writable_directory(settings.temp_dir)
    private = Path(tempfile.gettempdir()) / f"raypath-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        private.mkdir(mode=0o700)
    status = private.lstat()
    if not private.is_dir() or private.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{private} is not a private directory of this user (owner uid "
                              f"{status.st_uid}, mode {status.st_mode & 0o777:o}): remove it, or pass "
                              "--ray-temp-dir")
    return _writable_directory(RaySettings(temp_dir=private / "ray").temp_dir)  # short enough for sockets


def _writable_directory(directory: Path) -> Path:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"Ray temp dir {directory} cannot be created: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"Ray temp dir {directory} is not writable")
    return directory


def _close_session(temp_dir: Path) -> None:
    """Take back the write access for all users that Ray gives its temp and session directories."""
    session = (temp_dir / "session_latest").resolve()
    for directory in [temp_dir, session, *(p for p in session.rglob("*") if p.is_dir())]:
        with contextlib.suppress(OSError):
            if directory.stat().st_mode & 0o022:
                directory.chmod(0o700)


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Start the node on 127.0.0.1. `ray.init` turns a loopback node address into the machine's own
    address (so other machines could join), and the node's servers then listen on every interface;
    Ray's single-machine mode (its default on macOS and Windows) keeps loopback, and with it the GCS,
    raylet, workers and agents listen on 127.0.0.1 only."""
    previous = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous


class _StartupTimeoutError(Exception):
    """The node did not register within raypath's start-up timeout."""


@contextlib.contextmanager
def _startup_deadline(timeout_s: float) -> Iterator[None]:
    """Give a new node `timeout_s` to register instead of Ray's fixed 30 s.

    Ray's start-up loop asks the GCS for the node (`services.get_node`) until it answers or 30 s have
    passed; while this is active, each of those questions is repeated until raypath's own deadline.
    """
    lookup = services.get_node
    deadline = time.monotonic() + timeout_s

    def patient(gcs_address: str, node_id: str) -> dict:
        while True:
            try:
                return lookup(gcs_address, node_id)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise _StartupTimeoutError from None
                time.sleep(0.5)

    services.get_node = patient
    try:
        yield
    finally:
        services.get_node = lookup


def startup_failure(temp_dir: Path, *, timeout_s: float) -> str:
    """One line: what did not start, the likely cause (load, disk, temp dir) and what to change."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    free_gib = shutil.disk_usage(temp_dir).free / 2**30
    causes = [f"the machine is busy (load average {load:.1f} on {cpus} CPUs)"] if load > cpus else []
    causes += [f"the temp dir's disk is nearly full ({free_gib:.1f} GiB free)"] if free_gib < 2 else []
    causes = causes or [f"a slow temp dir (load average {load:.1f} on {cpus} CPUs, {free_gib:.0f} GiB free)"]
    return (f"the local Ray node did not start within {timeout_s:g} s: likely {'; '.join(causes)}; raise "
            f"ray.startup_timeout_s (--ray-startup-timeout) or put --ray-temp-dir on a local disk with room "
            f"(Ray's logs: {temp_dir / 'session_latest' / 'logs'})")
