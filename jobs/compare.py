"""Job entry point: `python jobs/compare.py --config jobs/configs/compare.yaml` (e.g. as a Ray job).

Thin on purpose: all logic lives in `raypath compare`, so a Ray job and the CLI behave alike.
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["compare", *sys.argv[1:]]))
