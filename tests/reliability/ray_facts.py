"""Start a private local Ray through `raypath extract`'s own flags and `connect`, then print, as JSON,
what a local attacker could reach: every listening socket of its processes, what answers
`GET /metrics` on them, and the modes of Ray's temp and session directories.

Issue 24, case 5. Usage: python ray_facts.py <raypath extract flags, e.g. --ray-temp-dir DIR>
"""

import http.client
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import ray

from raypath.cli import build_parser
from raypath.cluster import connect
from raypath.commands.extract import FLAGS
from raypath.commands.flags import config_from_args
from raypath.extract.config import ExtractConfig


def metrics_status(port: int) -> int | str:
    """The HTTP status of `GET /metrics`, or why there was none (a gRPC port answers no HTTP)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__


def listening() -> list[dict]:
    found = []
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        name = " ".join(process.cmdline()[:2])[-80:]
        found += [{"process": name, "address": c.laddr.ip, "port": c.laddr.port}
                  for c in connections if c.status == psutil.CONN_LISTEN]
    return found


if __name__ == "__main__":
    args = build_parser("extract").parse_args(["extract", *sys.argv[1:]])
    config = config_from_args(ExtractConfig, args, FLAGS)
    connect(None, num_cpus=1, settings=config.ray)
    ray.get(ray.remote(lambda: None).remote())  # a worker process is up too
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    sockets = listening()
    directories = [session.parent, session, *(p for p in session.rglob("*") if p.is_dir())]
    modes = {str(p): p.stat().st_mode & 0o777 for p in directories}
    print(json.dumps({"session": str(session), "listening": sockets,
                      "metrics": {s["port"]: metrics_status(s["port"]) for s in sockets}, "modes": modes}))
    ray.shutdown()
