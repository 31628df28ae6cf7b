"""The one slide interface every stage uses; concrete readers wrap one slide library each."""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal

import numpy as np

from raypath.slides.reader.errors import MissingMppError
from raypath.slides.reader.resize import resize_tiles
from raypath.slides.reader.thumbnail import Thumbnail, render_thumbnail

Backend = Literal["jpeg", "cucim", "openslide"]

READ_BATCH = 64
"""Regions per batch when `read_regions` goes through `iter_regions`: bounds the decode-ahead memory."""


def parse_mpp(value: object) -> float | None:
    """A positive finite microns-per-pixel from metadata text or number; None for absent or junk values."""
    try:
        mpp = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return mpp if math.isfinite(mpp) and mpp > 0 else None


def as_locations(locations: np.ndarray) -> np.ndarray:
    """(n, 2) int64 level-0 x, y from any array-like of points."""
    return np.asarray(locations, dtype=np.int64).reshape(-1, 2)


class SlideReader(abc.ABC):
    """Geometry, pixel size and RGB uint8 reads of one slide, whatever library decodes it.

    Locations are level-0 (x, y); sizes are (width, height) at the requested level, as in OpenSlide.
    Regions beyond the slide edge read as white glass in every backend. At levels whose downsample
    is not a whole number, OpenSlide places regions with sub-pixel interpolation and cuCIM at the
    floored pixel: expect sub-pixel differences there, none at level 0.
    """

    backend: ClassVar[Backend]

    def __init__(self, path: str | Path, *, mpp_override: float | None = None) -> None:
        if mpp_override is not None and not mpp_override > 0:
            raise ValueError(f"{path}: mpp_override must be positive, got {mpp_override}")
        self.path = Path(path)
        self._mpp_override = mpp_override

    @property
    @abc.abstractmethod
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of every pyramid level, finest first."""

    @property
    @abc.abstractmethod
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per level pixel, as the file states them (not always powers of two)."""

    @property
    @abc.abstractmethod
    def vendor(self) -> str:
        """Scanner format in OpenSlide's vocabulary ('aperio', 'generic-tiff', ...)."""

    @property
    @abc.abstractmethod
    def file_mpp(self) -> float | None:
        """Level-0 microns per pixel recorded in the file, None when the file has none."""

    @abc.abstractmethod
    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """Decode one region as uint8 (height, width, 3) RGB."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the library handle."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    @property
    def is_pyramidal(self) -> bool:
        """False for single-level files: still readable, just slower to thumbnail and tile coarsely."""
        return self.level_count > 1

    @property
    def mpp(self) -> float:
        """Level-0 microns per pixel; the manifest override wins over the file."""
        if self._mpp_override is not None:
            return self._mpp_override
        if self.file_mpp is None:
            raise MissingMppError(self.path, self.backend)
        return self.file_mpp

    @property
    def mpp_source(self) -> Literal["file", "override"]:
        """Where `mpp` came from, recorded with the features so overridden slides can be audited."""
        if self._mpp_override is not None:
            return "override"
        if self.file_mpp is None:
            raise MissingMppError(self.path, self.backend)
        return "file"

    def level_mpp(self, level: int) -> float:
        return self.mpp * self.level_downsamples[level]

    def read_region(self, *, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """One region as uint8 (height, width, 3) RGB."""
        self._check_request(level, size)
        return self._read((int(location[0]), int(location[1])), level, (int(size[0]), int(size[1])))

    def read_regions(self, *, locations: np.ndarray, level: int, size: tuple[int, int]) -> np.ndarray:
        """Same-size regions as uint8 (n, height, width, 3), in the order of `locations`."""
        locations = as_locations(locations)
        out = np.empty((len(locations), size[1], size[0], 3), dtype=np.uint8)
        start = 0
        for batch in self.iter_regions(locations=locations, level=level, size=size, batch_size=READ_BATCH):
            out[start : start + len(batch)] = batch
            start += len(batch)
        return out

    def iter_regions(
        self, *, locations: np.ndarray, level: int, size: tuple[int, int], batch_size: int
    ) -> Iterator[np.ndarray]:
        """Batches of at most `batch_size` regions in input order; batched backends decode ahead
        in their own threads while the caller works on the current batch."""
        self._check_request(level, size)
        locations = as_locations(locations)
        size = (int(size[0]), int(size[1]))
        for start in range(0, len(locations), batch_size):
            chunk = locations[start : start + batch_size]
            yield np.stack([self._read((int(x), int(y)), level, size) for x, y in chunk])

    def iter_tiles(
        self, *, locations: np.ndarray, level: int, size: int, tile_px: int, batch_size: int,
        slack: float = 0.0,
    ) -> Iterator[np.ndarray]:
        """Square `size`-px regions at `level` delivered as (b, tile_px, tile_px, 3) batches in input order.

        Here: decode at `level`, then resize (area for whole-number factors, else Lanczos) one batch
        behind decoding in a helper thread, so the two overlap. Readers that can decode nearer the
        output size override this; `slack` is how far below `tile_px` (relative) their decoded
        size may go before the final resize, the tiling's mpp tolerance.
        """
        batches = self.iter_regions(locations=locations, level=level, size=(size, size),
                                    batch_size=batch_size)
        pending = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="resize") as pool:
            for batch in batches:
                resized = pool.submit(resize_tiles, batch, tile_px)
                if pending is not None:
                    yield pending.result()
                pending = resized
            if pending is not None:
                yield pending.result()

    def thumbnail(self, *, mpp: float) -> Thumbnail:
        """The whole slide at `mpp` (never finer than level 0), for tissue detection and registration."""
        return render_thumbnail(self, mpp=mpp)

    def _check_request(self, level: int, size: tuple[int, int]) -> None:
        if not 0 <= level < self.level_count:
            raise ValueError(f"{self.path}: level {level} out of range (slide has {self.level_count})")
        if size[0] <= 0 or size[1] <= 0:
            raise ValueError(f"{self.path}: region size must be positive, got {size}")

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, levels={self.level_count}, dims={self.dimensions})"


class IndexedSlideReader(SlideReader):
    """A reader that learns the pyramid once when it opens (sets `_dims` and `_downsamples`)."""

    _dims: tuple[tuple[int, int], ...]
    _downsamples: tuple[float, ...]

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples
