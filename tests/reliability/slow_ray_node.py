"""`raypath <command>`, except that the local Ray node never registers with its GCS, as on a machine
too loaded (or a temp dir too slow) for the raylet to come up: Ray's node lookup keeps failing.

Issue 24, case 5. Usage: python slow_ray_node.py <raypath arguments...>
"""

import sys

from ray._private import services

from raypath.cli import main


def never_registered(gcs_address: str, node_id: str) -> dict:
    raise RuntimeError(f"node {node_id} is not registered yet (test)")


if __name__ == "__main__":
    services.get_node = never_registered
    sys.exit(main(sys.argv[1:]))
