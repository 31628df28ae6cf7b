"""Connect to Ray the way the job was launched: a named cluster, the cluster a submitted job runs
on, or a private local instance (never some other user's `ray start` cluster on this host)."""

import logging
import os
import secrets
from pathlib import Path

import ray

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


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless already initialised; True when this call started it.

    `ray job submit` sets RAY_ADDRESS for the entrypoint, so a submitted job joins its cluster.
    Without an address Ray would attach to the newest `ray start` cluster on this machine, which
    may belong to someone else; "local" starts a fresh instance instead.
    """
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    elif os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        private_token_for_local_instance()
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False)
    resources = ray.cluster_resources()
    log.info("ray: %d node(s), %s CPUs, %s GPUs", len(ray.nodes()), resources.get("CPU", 0),
             resources.get("GPU", 0))
    return True
