"""Job entry point: `ray job submit -- python jobs/train.py --features ... --workers 2` (a Ray job).

Thin on purpose: all logic lives in `raypath train`, so a Ray job and the CLI behave alike (the job's
driver joins the job's cluster through `raypath.cluster.connect`).
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["train", *sys.argv[1:]]))
