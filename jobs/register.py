"""Ray job entrypoint: `ray job submit --working-dir . -- python jobs/register.py --manifest M --out R`."""

import sys

from raypath.cli import main

if __name__ == "__main__":
    sys.exit(main(["register", *sys.argv[1:]]))
