"""Stage 1: per-slide tiling and tile decoding on CPU tasks, each slide read in a child process.

`read_slides` is the Ray Data UDF (tasks, spread over the cluster). For each slide it streams
chunks of decoded uint8 tiles, or one status row when the slide is skipped or fails. The reading
itself runs in `slide_messages` inside a forked child (see `isolation`): a reader that crashes or
hangs costs one attempt; after `max_attempts` the slide is reported failed and the task moves on.
A retry resumes after the last delivered tile, so no tile reaches the encoder twice.
"""

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import ray
from shapely.errors import ShapelyError

from raypath.extract import rows
from raypath.extract.isolation import ReaderProcessError, stream_in_child
from raypath.extract.references import UNREGISTERED
from raypath.paths import join
from raypath.publish import write_bytes
from raypath.slides import SlideError, SlideReader, detect_tissue, open_slide, plan_tiles, read_tiles
from raypath.slides.config import TilingConfig
from raypath.slides.geojson import feature_collection, tile_features, tissue_features
from raypath.slides.qc import qc_image
from raypath.slides.reader.thumbnail import Thumbnail
from raypath.slides.registration.grid import ReferenceScan, on_reference_grid
from raypath.slides.tiling import TileGrid

log = logging.getLogger(__name__)

PRELOAD = ("raypath.extract.tiles",)


@dataclass(frozen=True)
class ReadSettings:
    """What a reading task needs; small and picklable, shipped once per task."""

    tiling: TilingConfig
    non_pyramidal: str
    tiles_per_chunk: int
    max_attempts: int
    timeout_s: float
    decode_device: Literal["cpu", "cuda"] = "cpu"  # "cuda": the task holds a GPU share (decode_gpus)
    qc_dir: str | None = None  # where each slide's QC picture goes; None = no pictures
    references: Mapping[str, ReferenceScan | None] = field(default_factory=dict)  # grid: reference only

    def reference_of(self, slide_id: str) -> ReferenceScan | str | None:
        """The scan whose grid `slide_id` is tiled on; None: its own; the UNREGISTERED reason: none known."""
        if self.tiling.grid == "reference" and slide_id not in self.references:
            return UNREGISTERED
        return self.references.get(slide_id)

    def for_child(self) -> "ReadSettings":
        """Without the cohort's reference table: a reading child gets its own slide's reference only."""
        return dataclasses.replace(self, references={})


def slide_messages(
    *, slide_id: str, path: str, mpp: float | None, settings: ReadSettings, start_tile: int,
    reference: ReferenceScan | str | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Runs in the child: ("stage", name) as it goes, ("grid", n, geometry), then ("tiles", start,
    images, coords, fractions)...; or ("skip", stage, reason) / ("error", stage, reason, retryable).
    Never raises for slide faults: the parent must tell a slide's fault from the child's death."""
    stage = "open"
    try:
        with open_slide(path, reader=settings.tiling.reader, mpp_override=mpp,
                        device=settings.decode_device) as reader:
            slide_mpp = reader.mpp
            if small := too_small(reader.dimensions, slide_mpp, settings.tiling):
                yield ("skip", stage, small)  # before any pixel is read: tiny files trip some readers
                return
            if not reader.is_pyramidal and settings.non_pyramidal == "skip":
                probe_corners(reader)  # a truncated pyramid also shows one level: that is a failure
                yield ("skip", stage, f"not pyramidal (1 level, {reader.dimensions[0]}x"
                                      f"{reader.dimensions[1]} px); set non_pyramidal: process to tile it")
                return
            stage = "tissue"
            yield ("stage", stage)
            tissue = settings.tiling.tissue
            thumb = reader.thumbnail(mpp=tissue.thumbnail_mpp)
            mask = detect_tissue(thumb.image, mpp=thumb.mpp, config=tissue)
            stage = "tiling"
            yield ("stage", stage)
            grid = plan_tiles(mask=mask, mask_downsample=thumb.downsample, dimensions=reader.dimensions,
                              level_downsamples=reader.level_downsamples, slide_mpp=slide_mpp,
                              config=settings.tiling)
            if isinstance(reference, str):
                yield ("error", stage, reference, False)
                return
            if reference is not None:
                grid = on_reference_grid(reader, grid, mask=mask, mask_downsample=thumb.downsample,
                                         reference=reference, config=settings.tiling)
            if settings.qc_dir and start_tile == 0:
                write_qc(settings.qc_dir, slide_id=slide_id, thumbnail=thumb, mask=mask, grid=grid,
                         dimensions=reader.dimensions)
            if len(grid) == 0:
                yield ("skip", stage, _empty_reason(mask, reader.dimensions, slide_mpp, settings.tiling))
                return
            yield ("grid", len(grid), {"extent_l0": grid.extent_l0, "mpp": grid.target_mpp})
            stage = "read"
            yield ("stage", stage)
            for start in range(start_tile, len(grid), settings.tiles_per_chunk):
                index = np.arange(start, min(start + settings.tiles_per_chunk, len(grid)))
                yield ("tiles", start, read_tiles(reader, grid, index), grid.coords[index],
                       grid.tissue_fraction[index])
    except SlideError as exc:  # deterministic: unsupported file, missing mpp, corrupt region
        yield ("error", stage, str(exc), False)
    except Exception as exc:  # anything else may be transient (I/O on network storage)
        yield ("error", stage, f"{type(exc).__name__}: {exc}", True)


def write_qc(directory: str, *, slide_id: str, thumbnail: Thumbnail, mask: np.ndarray, grid: TileGrid,
             dimensions: tuple[int, int]) -> None:
    """The slide's QC picture and the same tissue contour and tile grid as QuPath GeoJSON (level-0
    coordinates), each written atomically; a failure to write them never fails the slide."""
    try:
        picture = qc_image(thumbnail.image, mask, coords=grid.coords, extent_l0=grid.extent_l0,
                           downsample=thumbnail.downsample, mpp=thumbnail.mpp, slide_id=slide_id)
        write_bytes(join(directory, f"{slide_id}.jpg"), picture)
        features = [*tissue_features(mask, downsample=thumbnail.downsample, dimensions=dimensions),
                    *tile_features(grid.coords, extent_l0=grid.extent_l0,
                                   measurements={"tissue fraction": grid.tissue_fraction})]
        write_bytes(join(directory, f"{slide_id}.geojson"), feature_collection(features))
    except (OSError, ValueError, ShapelyError) as exc:
        log.warning("slide %s: QC picture or GeoJSON not written: %s", slide_id, exc)


def probe_corners(reader: SlideReader, *, size: int = 256) -> None:
    """Decode the first and the last region of level 0; raises SlideReadError for a cut-off file."""
    width, height = reader.dimensions
    side = (min(size, width), min(size, height))
    for location in ((0, 0), (width - side[0], height - side[1])):
        reader.read_region(location=location, level=0, size=side)


def too_small(dimensions: tuple[int, int], mpp: float, tiling: TilingConfig) -> str:
    """The skip reason of a slide narrower than one tile in either direction, else ''."""
    side_um = tiling.tile_px * tiling.target_mpp
    if min(dimensions) * mpp < side_um:
        return f"smaller than one tile ({dimensions[0]}x{dimensions[1]} px at {mpp:.3f} um/px < {side_um} um)"
    return ""


def _empty_reason(mask: np.ndarray, dimensions: tuple[int, int], mpp: float, tiling: TilingConfig) -> str:
    if small := too_small(dimensions, mpp, tiling):
        return small
    if not mask.any():
        return "no tissue detected"
    return f"no tile reaches min_tissue_fraction={tiling.min_tissue_fraction}"


class _SlideRead:
    """Attempts at reading one slide; remembers how far the previous attempt got."""

    def __init__(self, task: dict[str, Any], settings: ReadSettings, node: dict[str, str]) -> None:
        self.task, self.settings, self.node = task, settings, node
        self.delivered, self.n_tiles, self.geometry, self.stage = 0, None, None, "open"
        self.attempts, self.started = 0, time.perf_counter()

    def run(self) -> Iterator[dict[str, np.ndarray]]:
        stage, reason = "open", ""
        while self.attempts < self.settings.max_attempts:
            self.attempts += 1
            try:
                outcome = yield from self._attempt()
            except ReaderProcessError as exc:
                stage, reason, retryable = self.stage, str(exc), True
            else:
                if outcome is None:
                    return
                stage, reason, retryable = outcome
            log.warning("slide %s attempt %d/%d failed at %s: %s", self.task["slide_id"],
                        self.attempts, self.settings.max_attempts, stage, reason)
            if not retryable:
                break
        yield self._status(rows.FAILED, stage, reason)

    def _attempt(self) -> Iterator[dict[str, np.ndarray]]:
        """Yield tile chunks; return None when done, or (stage, reason, retryable) on an error."""
        mpp = self.task.get("mpp")
        kwargs = {"slide_id": str(self.task["slide_id"]), "path": self.task["path"],
                  "mpp": None if mpp is None or np.isnan(mpp) else float(mpp),
                  "settings": self.settings.for_child(), "start_tile": self.delivered,
                  "reference": self.settings.reference_of(str(self.task["slide_id"]))}
        for message in stream_in_child(slide_messages, kwargs=kwargs, timeout_s=self.settings.timeout_s,
                                       preload=PRELOAD):
            kind = message[0]
            if kind == "stage":
                self.stage = message[1]
            elif kind == "grid":
                if self.n_tiles is not None and message[1] != self.n_tiles:
                    changed = f"tile count changed between attempts ({self.n_tiles} -> {message[1]})"
                    return "tiling", changed, False
                self.n_tiles, self.geometry = message[1], message[2]
            elif kind == "tiles":
                yield self._tiles(*message[1:])
            elif kind == "skip":
                yield self._status(rows.SKIPPED, message[1], message[2])
                return None
            else:
                return message[1], message[2], message[3]
        return None

    def _tiles(self, start: int, images: np.ndarray, coords: np.ndarray, fractions: np.ndarray):
        self.delivered = start + len(images)
        return rows.tile_batch(task=self.task, images=images, start=start, coords=coords,
                               tissue_fraction=fractions, geometry=self.geometry, n_tiles=self.n_tiles,
                               attempts=self.attempts, node=self.node, read_s=self._elapsed())

    def _status(self, status: str, stage: str, reason: str) -> dict[str, np.ndarray]:
        return rows.status_batch(task=self.task, status=status, stage=stage, reason=reason,
                                 attempts=self.attempts, node=self.node, read_s=self._elapsed(),
                                 tile_px=self.settings.tiling.tile_px)

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started


def current_node() -> dict[str, str]:
    """Which node this task runs on; recorded per slide so a run shows how work was spread."""
    if not ray.is_initialized():
        return {"node_id": "local", "node_ip": "127.0.0.1"}
    return {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}


def read_slides(batch: dict[str, np.ndarray], *, settings: ReadSettings) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data UDF: slide rows in, tile chunks (and status rows) out, one slide at a time."""
    node = current_node()
    for i in range(len(batch["slide_id"])):
        task = {key: _scalar(values[i]) for key, values in batch.items()}
        yield from _SlideRead(task, settings, node).run()


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
