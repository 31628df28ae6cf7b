"""`raypath extract`, except that the process SIGKILLs itself at the Nth feature-file rename.

Issue 8, case 4: a job dying between writing a feature file and renaming it into place. Only the
store's filesystem handle is wrapped (in this test-tree script); the job runs its real code.
Usage: python die_on_rename.py N <raypath extract arguments...>
"""

import os
import signal
import sys
import threading
from typing import Any

from raypath.cli import main
from raypath.store import FeatureStore


class DieOnMove:
    """Delegates to a pyarrow filesystem; the Nth `move` (over all stores) kills the process."""

    lock = threading.Lock()
    moves = 0

    def __init__(self, filesystem: Any, *, die_at: int) -> None:
        self._filesystem, self._die_at = filesystem, die_at

    def move(self, source: str, destination: str) -> None:
        """Renames are serialised so exactly N-1 of them complete before the process dies."""
        with DieOnMove.lock:
            if DieOnMove.moves + 1 == self._die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            self._filesystem.move(source, destination)
            DieOnMove.moves += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._filesystem, name)


def install(die_at: int) -> None:
    original = FeatureStore.__init__

    def init(self: FeatureStore, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._fs = DieOnMove(self._fs, die_at=die_at)

    FeatureStore.__init__ = init


if __name__ == "__main__":
    install(int(sys.argv[1]))
    sys.exit(main(["extract", *sys.argv[2:]]))
