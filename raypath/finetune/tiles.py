"""Tile pixels for a step: read from the slides by extraction's reader, or from a per-slide tile cache.

Each Ray Train worker holds one `TileSource` (a per-worker reader: the worker's own specimens come
from `shard`, so no two workers read the same tiles in a step). `slides` opens each slide with the
extraction reader factory and reads only the sampled tiles with `read_tiles` (a few open readers are
kept per worker); `cache` writes each slide's tissue tiles once as a uint8 `.npy` (atomically,
under a file lock, like the feature cache) and memory-maps it, which pays off from the second epoch.
"""

from collections import OrderedDict
from pathlib import Path

import numpy as np

from raypath.finetune.plan import grid_of
from raypath.mil.bags import BagSet
from raypath.mil.cache import cached_array
from raypath.mil.sampling import Selection
from raypath.slides import SlideReader, open_slide, read_tiles


class TileSource:
    """uint8 tiles of plan slides by (slide, tile rows)."""

    def __init__(self, plan: BagSet, *, source: str, cache_dir: Path | None, reader: str = "auto",
                 open_slides: int = 16) -> None:
        if source == "cache" and cache_dir is None:
            raise ValueError("the tile cache needs a directory")
        self.plan, self.source, self.reader = plan, source, reader
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.open_slides = open_slides
        self._readers: OrderedDict[int, SlideReader] = OrderedDict()

    def tiles(self, slide: int, rows: np.ndarray) -> np.ndarray:
        """(len(rows), tile_px, tile_px, 3) uint8 tiles of plan slide `slide` (rows within the slide)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.source == "cache":
            return np.asarray(self._cached(slide)[np.sort(rows)][np.argsort(np.argsort(rows))])
        return read_tiles(self._open(slide), grid_of(self.plan, slide), rows)

    def for_selection(self, selection: Selection) -> np.ndarray:
        """The real tiles of a batch, bag by bag (row-major over its (B, N) mask), as one array."""
        parts = [self.tiles(slide, selection.tile[b][selection.real[b]].numpy() - self.plan.offsets[slide])
                 for b, slide in enumerate(selection.slides.tolist())]
        return np.concatenate(parts)

    def _open(self, slide: int) -> SlideReader:
        if slide in self._readers:
            self._readers.move_to_end(slide)
            return self._readers[slide]
        row = self.plan.slides.iloc[slide]
        mpp = float(row["mpp"])
        reader = open_slide(row["path"], reader=self.reader, mpp_override=None if np.isnan(mpp) else mpp)
        self._readers[slide] = reader
        while len(self._readers) > self.open_slides:
            self._readers.popitem(last=False)[1].close()
        return reader

    def _cached(self, slide: int) -> np.ndarray:
        slide_id = str(self.plan.slides.iloc[slide]["slide_id"])
        path = self.cache_dir / f"{slide_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        return cached_array(path, lambda: read_tiles(self._open(slide), grid_of(self.plan, slide)))

    def close(self) -> None:
        while self._readers:
            self._readers.popitem()[1].close()
