"""Job entry point for the FM robustness benchmark: `python jobs/evaluate_fm.py --config ...`.

Thin on purpose: all logic lives in `raypath evaluate-fm`, so a Ray job and the CLI behave alike.
"""

import sys

import raypath.cli

if __name__ == "__main__":
    sys.exit(raypath.cli.main(["evaluate-fm", *sys.argv[1:]]))
