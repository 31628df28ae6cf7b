"""Job entry point: `python jobs/sweep.py --config jobs/configs/sweep.yaml` (e.g. as a Ray job).

Thin on purpose: all logic lives in `raypath sweep`, so a Ray job and the CLI behave alike.
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["sweep", *sys.argv[1:]]))
