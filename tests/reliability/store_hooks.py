"""A hook on the feature store's renames for the job scripts of the reliability suite: the Nth
`move` (over all stores of the process) runs an action first. Only the store's filesystem handle
is wrapped; the job runs its real code."""

import threading
from collections.abc import Callable
from typing import Any

from raypath.store import FeatureStore


class HookedMove:
    """Delegates to a pyarrow filesystem; renames are serialised so exactly N-1 complete before
    the action runs (an action that returns lets the Nth rename go ahead)."""

    lock = threading.Lock()
    moves = 0

    def __init__(self, filesystem: Any, *, at: int, action: Callable[[], None]) -> None:
        self._filesystem, self._at, self._action = filesystem, at, action

    def move(self, source: str, destination: str) -> None:
        with HookedMove.lock:
            if HookedMove.moves + 1 == self._at:
                self._action()
            self._filesystem.move(source, destination)
            HookedMove.moves += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._filesystem, name)


def install(*, at: int, action: Callable[[], None]) -> None:
    original = FeatureStore.__init__

    def init(self: FeatureStore, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._fs = HookedMove(self._fs, at=at, action=action)

    FeatureStore.__init__ = init
