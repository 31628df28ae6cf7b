"""`raypath extract`, except that the Nth feature-file rename waits: the job writes PAUSED (a path)
with its temporary file in place, then holds until RESUME (a path) exists.

Issue 16, case 1: another run starting while this one is between writing and renaming a file.
Usage: python pause_on_rename.py N PAUSED RESUME <raypath extract arguments...>
"""

import sys
import time
from pathlib import Path

from store_hooks import install

from raypath.cli import main

HOLD_S = 240


def hold(paused: Path, resume: Path) -> None:
    paused.write_text("paused before a rename")
    deadline = time.monotonic() + HOLD_S
    while not resume.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


if __name__ == "__main__":
    at, paused, resume = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    install(at=at, action=lambda: hold(paused, resume))
    sys.exit(main(["extract", *sys.argv[4:]]))
