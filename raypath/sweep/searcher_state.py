"""Searcher state as data: the JSON every raypath searcher writes where Tune keeps its own state.

Tune asks a searcher to `save` into its experiment directory and `restore` from there. That
directory may sit on shared storage (NFS, s3://), so what raypath writes there is JSON, read back
only as JSON: a file planted in its place is refused, never executed. `StagingSearcher.on_save`
tells `raypath.sweep.seal` where Tune stages the state files of each save, so they can be sealed.
"""

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ray.tune.search import Searcher

STATE_VERSION = 1
PACK_METRIC = "objective"  # the pack-level metric trials report (raypath.train.engine)


class SearcherStateError(ValueError):
    """A searcher state file that is not the JSON this searcher writes."""


def read_state(path: str) -> dict[str, Any]:
    """A searcher's JSON state; anything else (e.g. a pickle planted in its place) is refused unread."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SearcherStateError(f"{path} is not a raypath searcher state (JSON): {exc}") from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise SearcherStateError(f"{path} is not a raypath searcher state of version {STATE_VERSION}")
    return state


def write_state(path: str, state: Mapping[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"version": STATE_VERSION, **state}, handle)


class StagingSearcher(Searcher):
    """A searcher whose `save` writes JSON and tells `on_save` where Tune stages its state files."""

    on_save: Callable[[str], None] | None = None

    def _saved(self, checkpoint_path: str) -> None:
        if self.on_save is not None:
            self.on_save(os.path.dirname(checkpoint_path))


class PackListSearcher(StagingSearcher):
    """Hands out a fixed list of packs in order (the replicate phase), with JSON state."""

    def __init__(self, packs: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(metric=PACK_METRIC, mode="max")
        self.pack_list, self.handed = [dict(p) for p in packs], 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.handed >= len(self.pack_list):
            return Searcher.FINISHED
        self.handed += 1
        return self.pack_list[self.handed - 1]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn: the replicate grid is fixed."""

    def save(self, checkpoint_path: str) -> None:
        write_state(checkpoint_path, {"handed": self.handed})
        self._saved(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.handed = int(read_state(checkpoint_path)["handed"])
