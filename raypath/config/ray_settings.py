"""How a command starts its private local Ray instance: where Ray keeps its files, how long it may take.

A section of every stage that starts Ray (`ray:` in its config; `--ray-temp-dir` and
`--ray-startup-timeout` on its command line). Ignored when the command joins a cluster.
"""

from pydantic import Field, field_validator

from raypath.config.base import LocalPath, StrictModel

UNIX_SOCKET_BYTES = 107
SOCKET_SUFFIX = "/session_2026-01-01_00-00-00_000000_4194304/sockets/plasma_store"
"""What Ray appends to its temp dir for its longest socket path (pid up to Linux's largest)."""


class RaySettings(StrictModel):
    """Ray's temp directory and start-up timeout for a local instance."""

    temp_dir: LocalPath | None = Field(
        None, description="Ray's temp directory (sessions, sockets, logs, spilled objects); default "
                          "<system temp>/raypath-<uid>/ray, inside a directory only this user can enter")
    startup_timeout_s: float = Field(
        120.0, gt=0, description="seconds the local Ray node may take to start (Ray's own limit is 30 s, "
                                 "too short on a loaded machine)")

    @field_validator("temp_dir")
    @classmethod
    def _short_enough(cls, value: LocalPath | None) -> LocalPath | None:
        """Ray's Unix sockets live under the temp dir, and a socket path is at most 107 bytes."""
        if value is not None and len(f"{value}{SOCKET_SUFFIX}".encode()) > UNIX_SOCKET_BYTES:
            limit = UNIX_SOCKET_BYTES - len(SOCKET_SUFFIX)
            raise ValueError(f"{value} is too long for Ray's socket paths: use a directory of at most "
                             f"{limit} characters")
        return value


class RayJob(StrictModel):
    """The fields of every stage that runs on Ray: the cluster it joins, or how it starts its own."""

    ray_address: str | None = Field(
        None, description="Ray cluster to join ('auto', host:port, ray://); default the job's cluster when "
                          "submitted with `ray job submit`, else a private local instance")
    ray: RaySettings = Field(RaySettings(), description="start-up of a local Ray instance")
