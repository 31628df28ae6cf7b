"""Job entry point: `ray job submit -- python jobs/predict.py --model models:/<name>@champion ...`.

Thin on purpose: all logic lives in `raypath predict`, so a Ray job and the CLI behave alike.
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["predict", *sys.argv[1:]]))
