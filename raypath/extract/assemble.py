"""Per-slide assembly on the driver: tile rows arrive in any order, a slide is whole when every
one of its `n_tiles` tiles has arrived (the reading stage states the count with every chunk).

Blocks from different reading tasks and inference actors interleave freely (order is not
preserved, which keeps actors busy), so buffers are indexed by tile_index: a duplicate chunk
(a retried task) is harmless and a slide can never be written with a hole.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raypath.extract import rows
from raypath.extract.failures import SlideRecord


@dataclass
class SlideBuffer:
    """One slide's tiles so far; features only for the encoders this slide still needs."""

    slide_id: str
    n_tiles: int
    extent_l0: int
    mpp: float
    features: dict[str, np.ndarray]
    coords: np.ndarray = field(init=False)
    tissue_fraction: np.ndarray = field(init=False)
    filled: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.coords = np.zeros((self.n_tiles, 2), dtype=np.int64)
        self.tissue_fraction = np.zeros(self.n_tiles, dtype=np.float32)
        self.filled = np.zeros(self.n_tiles, dtype=bool)

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())


Outcome = tuple[SlideRecord, SlideBuffer | None]
"""A slide the driver learned the fate of, with its tiles when it is complete (status done)."""


class Assembler:
    """Collects tile rows per slide; returns each slide once, when complete, failed or skipped."""

    def __init__(self, *, needs: dict[str, list[str]], dims: dict[str, int], paths: dict[str, str]) -> None:
        self.needs, self.dims, self.paths = needs, dims, paths
        self.buffers: dict[str, SlideBuffer] = {}
        self.closed: set[str] = set()

    @property
    def open_slides(self) -> int:
        return len(self.buffers)

    def add(self, batch: dict[str, np.ndarray]) -> list[Outcome]:
        """Absorb one batch; return the slides it finished (complete, failed or skipped)."""
        outcomes = []
        slide_ids = np.asarray(batch["slide_id"], dtype=object)
        for slide_id in dict.fromkeys(slide_ids.tolist()):
            if slide_id in self.closed:
                continue  # late chunks of a slide that already failed
            index = np.flatnonzero(slide_ids == slide_id)
            outcome = self._absorb(slide_id, batch, index)
            if outcome is not None:
                self.closed.add(slide_id)
                self.buffers.pop(slide_id, None)
                outcomes.append(outcome)
        return outcomes

    def _absorb(self, slide_id: str, batch: dict[str, np.ndarray], index: np.ndarray) -> Outcome | None:
        status = batch["status"][index]
        problem = index[status != rows.TILE]
        if problem.size:
            first = problem[0]
            return self._record(slide_id, batch, first, status=str(batch["status"][first]),
                                stage=str(batch["stage"][first]), reason=str(batch["reason"][first])), None
        buffer = self.buffers.get(slide_id) or self._open(slide_id, batch, index[0])
        tiles = batch["tile_index"][index]
        buffer.coords[tiles, 0], buffer.coords[tiles, 1] = batch["x"][index], batch["y"][index]
        buffer.tissue_fraction[tiles] = batch["tissue_fraction"][index]
        for name, values in buffer.features.items():
            values[tiles] = batch[rows.feature_column(name)][index]
        buffer.filled[tiles] = True
        if not buffer.complete:
            return None
        return self._record(slide_id, batch, index[-1], status="done", tiles=buffer.n_tiles), buffer

    def _record(self, slide_id: str, batch: dict[str, np.ndarray], row: int, **outcome: Any) -> SlideRecord:
        """The slide's record: where and how long its last chunk was read, and with what outcome."""
        return SlideRecord(slide_id=slide_id, path=self.paths[slide_id], attempts=int(batch["attempts"][row]),
                           node_id=str(batch["node_id"][row]), node_ip=str(batch["node_ip"][row]),
                           seconds=round(float(batch["read_s"][row]), 3), **outcome)

    def _open(self, slide_id: str, batch: dict[str, np.ndarray], row: int) -> SlideBuffer:
        n_tiles = int(batch["n_tiles"][row])
        features = {name: np.zeros((n_tiles, self.dims[name]), dtype=np.float32)
                    for name in self.needs[slide_id]}
        buffer = SlideBuffer(slide_id=slide_id, n_tiles=n_tiles, extent_l0=int(batch["extent_l0"][row]),
                             mpp=float(batch["mpp"][row]), features=features)
        self.buffers[slide_id] = buffer
        return buffer


def encoded_counts(batch: dict[str, np.ndarray], names: Iterable[str]) -> dict[str, int]:
    """Tiles the inference actors actually ran through each model in this batch."""
    return {name: int(np.count_nonzero(batch[rows.encoded_column(name)])) for name in names}
