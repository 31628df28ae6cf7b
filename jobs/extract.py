"""Ray job entrypoint: `ray job submit --working-dir . -- python jobs/extract.py --config ...`."""

import sys

from raypath.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
