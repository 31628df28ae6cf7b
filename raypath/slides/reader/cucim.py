"""cuCIM backend: TIFF-based slides with multi-threaded batched decoding (CPU; GPU when present)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from raypath.slides.reader.base import IndexedSlideReader, as_locations, parse_mpp
from raypath.slides.reader.errors import SlideError, SlideReadError, UnsupportedSlideError
from raypath.slides.reader.runs import find_runs, runs_by_length, split_run
from raypath.slides.reader.tile_check import TileValidator

EXTENSIONS = frozenset({".svs", ".tif", ".tiff"})
"""cuCIM decodes TIFF-based formats only; everything else goes to OpenSlide."""

GLASS = 255
"""What every backend returns beyond the slide's edge."""

MAX_RUN = 8
"""Longest row of adjacent tiles decoded as one region; bounds the wide region's memory."""


def _cuimage_class() -> Any:
    try:
        from cucim import CuImage
    except ImportError as exc:
        raise SlideError("cuCIM is not installed; install raypath[cucim] or use reader='openslide'") from exc
    return CuImage


def default_num_workers() -> int:
    """Decode threads for batched reads: the cores this process may use, capped where gains flatten."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 16))


class CuCIMReader(IndexedSlideReader):
    """Wraps `cucim.CuImage`; `iter_regions` uses its batched, threaded `read_region`.

    Every read first checks the JPEG tiles it touches (`TileValidator`): cuCIM itself returns
    undefined pixels for a damaged tile, or crashes on a crafted one, where OpenSlide raises.
    """

    backend = "cucim"

    def __init__(
        self, path: str | Path, *, mpp_override: float | None = None, num_workers: int | None = None
    ) -> None:
        super().__init__(path, mpp_override=mpp_override)
        if self.path.suffix.lower() not in EXTENSIONS:
            raise UnsupportedSlideError(self.path, f"cuCIM reads only {sorted(EXTENSIONS)} files")
        try:
            self._image = _cuimage_class()(str(self.path))
        except (ValueError, RuntimeError) as exc:
            raise UnsupportedSlideError(self.path, f"cuCIM: {exc}") from exc
        resolutions = self._image.resolutions
        self._dims = tuple((int(w), int(h)) for w, h in resolutions["level_dimensions"])
        self._downsamples = tuple(float(ds) for ds in resolutions["level_downsamples"])
        self._metadata: dict[str, Any] = self._image.metadata
        self.num_workers = num_workers if num_workers is not None else default_num_workers()
        try:
            self._validator = TileValidator(
                self.path, level_dimensions=self._dims, level_downsamples=self._downsamples
            )
        except (OSError, ValueError, IndexError) as exc:
            self._image.close()
            raise UnsupportedSlideError(self.path, f"cannot index its TIFF tiles: {exc}") from exc
        if self._validator.has_sparse_tiles:
            self.close()
            raise UnsupportedSlideError(self.path, "sparse TIFF (tiles without data): cuCIM decodes them "
                                                   "as black, OpenSlide as empty glass")
        self._probe()

    def _probe(self) -> None:
        """Decode one pixel of the coarsest level: cuCIM opens some TIFFs whose tiles it cannot decode."""
        try:
            self._read((0, 0), self.level_count - 1, (1, 1))
        except SlideReadError as exc:
            self.close()
            raise UnsupportedSlideError(self.path, f"cuCIM cannot decode it: {exc}") from exc

    @property
    def vendor(self) -> str:
        for vendor in ("aperio", "philips"):
            if vendor in self._metadata:
                return vendor
        return "generic-tiff"

    @property
    def file_mpp(self) -> float | None:
        """Aperio keeps MPP in its description (cuCIM's spacing() is 1.0 there); TIFF resolution otherwise."""
        aperio_mpp = parse_mpp(self._metadata.get("aperio", {}).get("MPP"))
        if aperio_mpp is not None:
            return aperio_mpp
        units = self._image.spacing_units()
        if len(units) >= 2 and units[1] == "micrometer":
            return parse_mpp(self._image.spacing()[1])
        return None

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """cuCIM pads out-of-slide pixels white but rejects a size larger than the level (split those)
        and a region lying wholly beyond the slide's edge (glass: white, read nothing)."""
        if location[0] >= self._dims[0][0] or location[1] >= self._dims[0][1]:
            return np.full((size[1], size[0], 3), GLASS, dtype=np.uint8)
        level_w, level_h = self._dims[level]
        if size[0] <= level_w and size[1] <= level_h:
            self._validator.check(np.asarray([location], dtype=np.int64), level=level, size=size)
            try:
                region = np.asarray(self._image.read_region(location, size, level))
            except (ValueError, RuntimeError) as exc:
                raise SlideReadError(
                    f"{self.path}: cannot decode region at {location} level {level} size {size}: {exc}"
                ) from exc
            return np.ascontiguousarray(region[..., :3])
        downsample = self._downsamples[level]
        out = np.empty((size[1], size[0], 3), dtype=np.uint8)
        for off_y in range(0, size[1], level_h):
            for off_x in range(0, size[0], level_w):
                part = (min(level_w, size[0] - off_x), min(level_h, size[1] - off_y))
                origin = (location[0] + round(off_x * downsample), location[1] + round(off_y * downsample))
                out[off_y : off_y + part[1], off_x : off_x + part[0]] = self._read(origin, level, part)
        return out

    def iter_regions(
        self, *, locations: np.ndarray, level: int, size: tuple[int, int], batch_size: int
    ) -> Iterator[np.ndarray]:
        """Batches in input order; adjacent tiles of a row are decoded as one wide region, and each
        group of equal-width regions goes through cuCIM's threaded batched `read_region`.
        Batches of 32-64 regions are the sweet spot: larger ones cost more in page faults than they save."""
        locations = as_locations(locations)
        self._check_request(level, size)
        size = (int(size[0]), int(size[1]))
        step = size[0] * self._downsamples[level]
        max_length = max(1, min(MAX_RUN, self._dims[level][0] // size[0])) if step == round(step) else 1
        for start in range(0, len(locations), batch_size):
            chunk = locations[start : start + batch_size]
            out = np.empty((len(chunk), size[1], size[0], 3), dtype=np.uint8)
            runs = find_runs(chunk, step=round(step), max_length=max_length)
            for length, starts in runs_by_length(runs).items():
                wide = self._iter_same_size(chunk[starts], level, (size[0] * length, size[1]))
                for first, region in zip(starts, wide, strict=True):
                    out[first : first + length] = split_run(region[..., :3], length)
            yield out

    def _iter_same_size(
        self, locations: np.ndarray, level: int, size: tuple[int, int]
    ) -> Iterator[np.ndarray]:
        """Regions via cuCIM's batched reader, whose threads decode outside the GIL. Each is a view
        into a buffer cuCIM reuses, valid until the next one is requested: copy it out at once."""
        level_w, level_h = self._dims[level]
        if len(locations) == 1 or self.num_workers < 1 or size[0] > level_w or size[1] > level_h:
            yield from (self._read((int(x), int(y)), level, size) for x, y in locations)
            return
        self._validator.check(locations, level=level, size=size)
        try:
            batches = self._image.read_region(
                locations.tolist(), size, level, num_workers=self.num_workers, batch_size=len(locations)
            )
            for batch in batches:
                array = np.asarray(batch)
                yield from array[None] if array.ndim == 3 else array
        except (ValueError, RuntimeError) as exc:
            message = f"{self.path}: batched read at level {level} size {size} failed: {exc}"
            raise SlideReadError(message) from exc

    def close(self) -> None:
        self._validator.close()
        self._image.close()
