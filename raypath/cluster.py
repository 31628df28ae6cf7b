"""The one way raypath connects to Ray, and token authentication for the processes it starts.

`connect` joins a named cluster, the cluster a submitted job runs on, or starts a private local
instance: never some other user's `ray start` cluster that happens to run on this host, and never
by writing a token into the user's home. Every command and job (extract, sweep, predict,
finetune) and the test suite go through it.

Ray 2.60 turns token auth on with RAY_AUTH_MODE=token and reads the token from RAY_AUTH_TOKEN, else
the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token. The helpers below build that
environment for a child process explicitly, so a token file can live anywhere (a temp dir in
tests) and nothing writes to the user's real ~/.ray.
"""

import logging
import os
import secrets
import socket
import time
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

log = logging.getLogger(__name__)

AUTH_MODE_VAR = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_PATH = Path("~/.ray/auth_token")


def write_token_file(path: str | Path, token: str | None = None) -> Path:
    """Write a token (a new random 256-bit one by default) readable by its owner only."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token or secrets.token_hex(32))
    path.chmod(0o600)
    return path


def read_token(path: str | Path = DEFAULT_TOKEN_PATH) -> str:
    """The token in a token file, without surrounding whitespace."""
    path = Path(path).expanduser()
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"Ray auth token file {path} is empty")
    return token


def token_auth_env(
    token_path: str | Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """Environment for a Ray child process with token auth on, reading the token from `token_path`.

    Other auth variables in `base` are dropped so that a stray RAY_AUTH_TOKEN cannot win over the file.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != TOKEN_VAR}
    env[AUTH_MODE_VAR] = "token"
    env[TOKEN_PATH_VAR] = str(Path(token_path).expanduser())
    return env


def without_auth_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment with every Ray auth variable removed (a client that holds no token)."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if k not in (AUTH_MODE_VAR, TOKEN_VAR, TOKEN_PATH_VAR)}


def auth_headers(token: str) -> dict[str, str]:
    """HTTP headers the Ray dashboard and job API accept (`JobSubmissionClient(headers=...)`)."""
    return {"Authorization": f"Bearer {token}"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for Ray processes started next to others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


def connect(address: str | None, *, num_cpus: int | None = None, log_to_driver: bool = True) -> bool:
    """Initialise Ray unless already initialised; True when this call started it.

    `ray job submit` sets RAY_ADDRESS for the entrypoint, so a submitted job joins its cluster.
    Without an address Ray would attach to the newest `ray start` cluster on this machine, which
    may belong to someone else; "local" starts a fresh instance instead.
    """
    if ray.is_initialized():
        return False
    cwd = os.getcwd()
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=log_to_driver)
    else:
        private_token_for_local_instance()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver)
    if ray.get_runtime_context().runtime_env.get("working_dir"):
        _settle_working_dir(cwd)
        _prepare_other_nodes()
    resources = ray.cluster_resources()
    log.info("ray: %d node(s), %s CPUs, %s GPUs", len(ray.nodes()), resources.get("CPU", 0),
             resources.get("GPU", 0))
    return True
