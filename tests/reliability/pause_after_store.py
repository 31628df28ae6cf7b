"""`raypath register`, except that after the Nth specimen result is stored the driver writes PAUSED
(a path) and holds (until the test kills it): a run stopped midway, with N specimens finished.

Usage: python pause_after_store.py N PAUSED <raypath register arguments...>
"""

import sys
import time
from pathlib import Path

from raypath.cli import main
from raypath.register.results import SpecimenResults

HOLD_S = 240


def install(*, at: int, paused: Path) -> None:
    original = SpecimenResults.write
    stored = []

    def write(self: SpecimenResults, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        stored.append(1)
        if len(stored) == at:
            paused.write_text(f"{at} specimens stored")
            time.sleep(HOLD_S)

    SpecimenResults.write = write


if __name__ == "__main__":
    install(at=int(sys.argv[1]), paused=Path(sys.argv[2]))
    sys.exit(main(["register", *sys.argv[3:]]))
