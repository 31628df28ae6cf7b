"""Scaled-JPEG backend: JPEG-tiled TIFF/SVS decoded at the tile's target scale, straight from the file.

Most slides are scanned at about 0.25 um/px and most foundation models want 0.5: the other readers
decode every tile at full size and then shrink it. This one reads the compressed tiles itself
(tifffile for where they lie, `jpeg_tiles` to check and decode them) and asks libjpeg-turbo for them
at 1/2, 1/4 or 1/8 scale, which skips most of the inverse DCT, upsampling and colour work; which
level and factor is `scale_plan`'s choice. It accepts a file only when every pyramid level is
JPEG-tiled RGB; anything else is left to cuCIM and OpenSlide.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
from PIL import Image

from raypath.slides.reader.base import IndexedSlideReader, as_locations, parse_mpp
from raypath.slides.reader.cucim import EXTENSIONS, default_num_workers
from raypath.slides.reader.errors import SlideReadError, UnsupportedSlideError
from raypath.slides.reader.jpeg_tiles import DeviceDecoder, TileDecoder
from raypath.slides.reader.scale_plan import DecodePlan, LevelOption, choose_plan, is_whole, snap, span
from raypath.slides.reader.tile_check import LevelTiles, level_tiles

Device = Literal["cpu", "cuda"]
VENDOR_FORMATS = ("ndpi", "philips", "scn", "bif", "qpi", "ome", "nih", "imagej")
"""TIFF dialects whose geometry or metadata OpenSlide and cuCIM interpret their own way: left to them."""
RESOLUTION_UNIT_UM = {2: 25400.0, 3: 10000.0}  # inch, centimetre
WHITE = 255


def _device_decoder(device: Device) -> DeviceDecoder | None:
    """None for the CPU, or where no GPU decoder is usable (the reader then decodes on the CPU)."""
    if device == "cpu":
        return None
    from raypath.slides.reader.device import gpu_decoder

    return gpu_decoder()


def _aperio_mpp(description: str) -> float | None:
    match = re.search(r"\|\s*MPP\s*=\s*([^|]+)", description)
    return parse_mpp(match.group(1).strip()) if match else None


class ScaledJPEGReader(IndexedSlideReader):
    """Pyramidal JPEG-tiled TIFF/SVS; `iter_tiles` decodes each JPEG tile once, at the scale it is needed."""

    backend = "jpeg"

    def __init__(
        self, path: str | Path, *, mpp_override: float | None = None, num_workers: int | None = None,
        device: Device = "cpu",
    ) -> None:
        super().__init__(path, mpp_override=mpp_override)
        if self.path.suffix.lower() not in EXTENSIONS:
            raise UnsupportedSlideError(self.path, f"scaled JPEG reads only {sorted(EXTENSIONS)} files")
        try:
            levels, description, resolution = self._index()
        except (OSError, ValueError, IndexError, KeyError, tifffile.TiffFileError) as exc:
            raise UnsupportedSlideError(self.path, f"scaled JPEG: cannot index its tiles: {exc}") from exc
        self._tiles = levels
        self._dims = tuple(level.image_size for level in levels)
        width0, height0 = self._dims[0]
        self._downsamples = tuple((width0 / w + height0 / h) / 2 for w, h in self._dims)  # as OpenSlide
        self._aperio = description.startswith("Aperio")
        self._file_mpp = _aperio_mpp(description) if self._aperio else resolution
        self.num_workers = num_workers if num_workers is not None else default_num_workers()
        try:
            self._decoder = TileDecoder(self.path, levels, num_workers=self.num_workers,
                                        device=_device_decoder(device))
        except ValueError as exc:
            raise UnsupportedSlideError(self.path, f"scaled JPEG: {exc}") from exc
        self._plans: dict[tuple[int, int, int, float], DecodePlan | None] = {}
        self._probe()

    def _index(self) -> tuple[list[LevelTiles], str, float | None]:
        """Every tiled page as a level, largest first; refuses the file unless each is 8-bit RGB JPEG."""
        with tifffile.TiffFile(self.path) as tif:
            dialect = next((name for name in VENDOR_FORMATS if getattr(tif, f"is_{name}", False)), None)
            if dialect is not None:
                raise ValueError(f"{dialect} TIFF dialect")
            pages = [page for page in tif.pages if isinstance(page, tifffile.TiffPage) and page.is_tiled]
            if not pages:
                raise ValueError("no tiled page")
            levels: list[LevelTiles] = []
            for page in sorted(pages, key=lambda p: -int(p.imagewidth) * int(p.imagelength)):
                tiles = level_tiles(page)
                rgb8 = page.samplesperpixel == 3 and page.bitspersample == 8 and page.planarconfig == 1
                if tiles is None or not rgb8:
                    raise ValueError(f"page {page.index} is not 8-bit RGB JPEG-tiled")
                if levels and not (tiles.image_size[0] < levels[-1].image_size[0]
                                   and tiles.image_size[1] < levels[-1].image_size[1]):
                    raise ValueError(f"page {page.index} does not shrink the pyramid")
                levels.append(tiles)
            first = tif.pages[0]
            return levels, str(first.description or ""), self._resolution_mpp(first)

    @staticmethod
    def _resolution_mpp(page: tifffile.TiffPage) -> float | None:
        unit = page.tags.get("ResolutionUnit")
        resolution = page.tags.get("XResolution")
        if unit is None or resolution is None or int(unit.value) not in RESOLUTION_UNIT_UM:
            return None
        numerator, denominator = resolution.value
        if not numerator or not denominator:
            return None
        return parse_mpp(RESOLUTION_UNIT_UM[int(unit.value)] * denominator / numerator)

    def _probe(self) -> None:
        """Decode one tile of the coarsest level: a file that indexes fine may still not decode."""
        level = self.level_count - 1
        tiles = self._tiles[level]
        present = np.flatnonzero(tiles.counts)
        try:
            if len(present):
                self._decoder.tiles(level, 1, [int(present[0])])
        except SlideReadError as exc:
            self.close()
            raise UnsupportedSlideError(self.path, f"scaled JPEG cannot decode it: {exc}") from exc

    @property
    def vendor(self) -> str:
        return "aperio" if self._aperio else "generic-tiff"

    @property
    def decode_device(self) -> Device:
        """Where tiles are decoded now: "cuda" only while a GPU decoder works (it falls back for good)."""
        return "cpu" if self._decoder.device is None else "cuda"

    @property
    def file_mpp(self) -> float | None:
        return self._file_mpp

    # ---- regions at one level and DCT factor -------------------------------------------------------

    def _regions(
        self, level: int, factor: int, boxes: list[tuple[int, int, int, int]], *,
        out: list[np.ndarray] | None = None, ahead: list[tuple[int, int, int, int]] | None = None,
    ) -> list[np.ndarray]:
        """Pixel boxes (x0, y0, x1, y1) of level `level` decoded at 1/`factor`, into `out` (arrays of the
        boxes' shapes) or new arrays; outside the level and tiles without data are white. Every JPEG
        tile the boxes touch is decoded once (threads), then pasted while the tiles under the `ahead`
        boxes (the next batch) decode."""
        tiles = self._tiles[level]
        tile_w, tile_h = tiles.tile_size[0] // factor, tiles.tile_size[1] // factor
        valid_w, valid_h = -(-tiles.image_size[0] // factor), -(-tiles.image_size[1] // factor)
        columns = tiles.columns
        spans, wanted = self._touched(level, factor, boxes)
        decoded = self._decoder.tiles(level, factor, wanted)
        if ahead:
            self._decoder.prefetch(level, factor, self._touched(level, factor, ahead)[1])
        if out is None:
            out = [np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8) for x0, y0, x1, y1 in boxes]
        for (x0, y0, x1, y1), (rows, cols), region in zip(boxes, spans, out, strict=True):
            inside = x0 >= 0 and y0 >= 0 and x1 <= valid_w and y1 <= valid_h
            if not inside or any(decoded[r * columns + c] is None for r in rows for c in cols):
                region.fill(WHITE)
            for row in rows:
                top = row * tile_h
                sy0, sy1 = max(y0, top), min(y1, top + tile_h, valid_h)
                for col in cols:
                    tile = decoded[row * columns + col]
                    if tile is None:
                        continue
                    left = col * tile_w
                    sx0, sx1 = max(x0, left), min(x1, left + tile_w, valid_w)
                    region[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = \
                        tile[sy0 - top : sy1 - top, sx0 - left : sx1 - left]
        return out

    def _touched(
        self, level: int, factor: int, boxes: list[tuple[int, int, int, int]]
    ) -> tuple[list[tuple[range, range]], set[int]]:
        """Per box the (rows, columns) of JPEG tiles under it, and all their indices."""
        tiles = self._tiles[level]
        tile_w, tile_h = tiles.tile_size[0] // factor, tiles.tile_size[1] // factor
        valid_w, valid_h = -(-tiles.image_size[0] // factor), -(-tiles.image_size[1] // factor)
        spans = []
        wanted: set[int] = set()
        for x0, y0, x1, y1 in boxes:
            cols = range(max(x0, 0) // tile_w, (min(x1, valid_w) - 1) // tile_w + 1) if x1 > 0 else range(0)
            rows = range(max(y0, 0) // tile_h, (min(y1, valid_h) - 1) // tile_h + 1) if y1 > 0 else range(0)
            spans.append((rows, cols))
            wanted.update(row * tiles.columns + col for row in rows for col in cols)
        return spans, wanted

    def _level_box(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> tuple[int, int, int, int]:
        """The level pixels of a region, placed at the floored pixel as cuCIM does."""
        downsample = self._downsamples[level]
        x, y = math.floor(snap(location[0] / downsample)), math.floor(snap(location[1] / downsample))
        return x, y, x + size[0], y + size[1]

    def _read(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        return self._regions(level, 1, [self._level_box(location, level, size)])[0]

    def iter_regions(
        self, *, locations: np.ndarray, level: int, size: tuple[int, int], batch_size: int
    ) -> Iterator[np.ndarray]:
        self._check_request(level, size)
        locations = as_locations(locations)
        size = (int(size[0]), int(size[1]))
        for start in range(0, len(locations), batch_size):
            chunk = locations[start:start + batch_size]
            boxes = [self._level_box((int(x), int(y)), level, size) for x, y in chunk]
            yield np.stack(self._regions(level, 1, boxes))

    # ---- tiles at the target scale -----------------------------------------------------------------

    def decode_plan(self, *, level: int, size: int, tile_px: int, slack: float = 0.0) -> DecodePlan | None:
        """Where a `size`-px region at `level` is decoded from to make a `tile_px` tile (cached)."""
        key = (level, size, tile_px, slack)
        if key not in self._plans:
            options = [LevelOption(ds, tiles.tile_size)
                       for ds, tiles in zip(self._downsamples, self._tiles, strict=True)]
            self._plans[key] = choose_plan(options, extent_l0=size * self._downsamples[level],
                                           tile_px=tile_px, slack=slack)
        return self._plans[key]

    def iter_tiles(
        self, *, locations: np.ndarray, level: int, size: int, tile_px: int, batch_size: int,
        slack: float = 0.0,
    ) -> Iterator[np.ndarray]:
        """Each tile decoded at the plan's level and DCT factor, then cropped, or resized when the
        decoded grid does not land on whole pixels of the tile size."""
        self._check_request(level, (size, size))
        plan = self.decode_plan(level=level, size=size, tile_px=tile_px, slack=slack)
        if plan is None:  # no level is fine enough: decode and upsample as every reader does
            yield from super().iter_tiles(locations=locations, level=level, size=size, tile_px=tile_px,
                                          batch_size=batch_size, slack=slack)
            return
        locations = as_locations(locations)
        scale = self._downsamples[plan.level] * plan.factor  # level-0 px per decoded px
        side = plan.decoded_px
        exact = is_whole(side) and round(side) == tile_px
        batches = [self._boxes(locations[start:start + batch_size], level, size, plan, scale)
                   for start in range(0, len(locations), batch_size)]
        for position, (origins, boxes) in enumerate(batches):
            ahead = batches[position + 1][1] if position + 1 < len(batches) else None
            out = np.empty((len(boxes), tile_px, tile_px, 3), dtype=np.uint8)
            if exact and all(is_whole(ox) and is_whole(oy) for ox, oy in origins):  # decoded into place
                self._regions(plan.level, plan.factor, boxes, out=list(out), ahead=ahead)
            else:
                regions = self._regions(plan.level, plan.factor, boxes, ahead=ahead)
                jobs = [(region, (ox - box[0], oy - box[1]))
                        for region, (ox, oy), box in zip(regions, origins, boxes, strict=True)]
                finished = self._decoder.map(
                    lambda job: finish(job[0], offset=job[1], side=side, tile_px=tile_px), jobs)
                for i, tile in enumerate(finished):
                    out[i] = tile
            yield out

    def _boxes(
        self, chunk: np.ndarray, level: int, size: int, plan: DecodePlan, scale: float
    ) -> tuple[list[tuple[float, float]], list[tuple[int, int, int, int]]]:
        """Tile origins in decoded pixels of the plan, and the whole-pixel boxes covering the tiles."""
        origins = [self._origin((int(x), int(y)), level, size, plan, scale) for x, y in chunk]
        boxes = []
        for ox, oy in origins:
            (x0, x1), (y0, y1) = span(ox, plan.decoded_px), span(oy, plan.decoded_px)
            boxes.append((x0, y0, x1, y1))
        return origins, boxes

    def _origin(
        self, location: tuple[int, int], level: int, size: int, plan: DecodePlan, scale: float
    ) -> tuple[float, float]:
        """Top-left of a tile in decoded pixels of the plan; at the requested level the pixel is
        placed as the other readers place it."""
        if plan.level == level:
            x0, y0, _, _ = self._level_box(location, level, (size, size))
            return snap(x0 / plan.factor), snap(y0 / plan.factor)
        return snap(location[0] / scale), snap(location[1] / scale)

    def close(self) -> None:
        self._decoder.close()


def finish(region: np.ndarray, *, offset: tuple[float, float], side: float, tile_px: int) -> np.ndarray:
    """The tile from a decoded region that covers it: a crop when the grid lands on whole pixels of
    the tile size, an area mean for whole-number shrink factors, else Lanczos over the exact box."""
    if is_whole(offset[0]) and is_whole(offset[1]) and is_whole(side):
        x, y, whole = round(offset[0]), round(offset[1]), round(side)
        crop = region[y : y + whole, x : x + whole]
        if whole == tile_px:
            return crop
        if whole % tile_px == 0:
            return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).reduce(whole // tile_px))
    box = (offset[0], offset[1], offset[0] + side, offset[1] + side)
    return np.asarray(Image.fromarray(region).resize((tile_px, tile_px), Image.Resampling.LANCZOS, box=box))

