"""Job entry point: `ray job submit --working-dir . -- python jobs/finetune.py --config FILE ...`.

Thin on purpose: all logic lives in `raypath finetune`, so a Ray job and the CLI behave alike.
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["finetune", *sys.argv[1:]]))
