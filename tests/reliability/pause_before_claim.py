"""`raypath extract`, except that the run holds still after planning, before it claims its slides:
it writes PAUSED (a path), then waits until RESUME (a path) exists.

Issue 24, case 3: a run that planned while another was finishing the same slides.
Usage: python pause_before_claim.py PAUSED RESUME <raypath extract arguments...>
"""

import sys
from pathlib import Path

from pause_on_rename import hold

from raypath.cli import main
from raypath.extract.coordination import Coordination

if __name__ == "__main__":
    paused, resume = Path(sys.argv[1]), Path(sys.argv[2])
    claim = Coordination.claim

    def held_claim(self: Coordination, *args: object, **kwargs: object) -> object:
        if not paused.exists():
            hold(paused, resume)
        return claim(self, *args, **kwargs)

    Coordination.claim = held_claim
    sys.exit(main(["extract", *sys.argv[3:]]))
