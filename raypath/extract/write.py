"""Stage 3: a complete slide becomes one Parquet file per encoder, written atomically by the store.

Writing happens on the driver, off the batch loop in a small thread pool: a slide's tiles come
back from many actors, so only one place sees them all, and the driver already holds them once
the pixels are dropped (features are ~1/40 of the pixel bytes). The store writes to a temporary
name and renames, locally or on s3://, so a killed job never leaves a half file under a final name.
"""

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from raypath.extract.assemble import SlideBuffer
from raypath.store import FeatureStore, tiles_table

log = logging.getLogger(__name__)


class SlideWriter:
    """Writes complete slides through the feature store; `submit` returns a future of the paths."""

    def __init__(
        self, *, stores: Mapping[str, FeatureStore], metadata: Mapping[str, Mapping[str, Any]],
        identities: Mapping[str, Mapping[str, str]], tile_px: int, threads: int, owner: str = "",
    ) -> None:
        self.stores, self.metadata, self.identities = stores, metadata, identities
        self.owner = owner  # in temporary file names: other runs leave them alone while it lives
        self.tile_px = tile_px
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="raypath-write")

    def write(self, buffer: SlideBuffer) -> list[str]:
        """Every needed encoder's file of one slide; an error leaves no file under a final name."""
        identity = self.identities[buffer.slide_id]
        paths = []
        for name, features in buffer.features.items():
            table = tiles_table(slide=identity, coords=buffer.coords, features=features,
                                extent_l0=buffer.extent_l0, tile_px=self.tile_px, mpp=buffer.mpp,
                                tissue_fraction=buffer.tissue_fraction, metadata=self.metadata[name])
            paths.append(self.stores[name].write(buffer.slide_id, table, owner=self.owner))
        return paths

    def submit(self, buffer: SlideBuffer) -> Future:
        return self._pool.submit(self.write, buffer)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
