"""Fault builders for the reliability suite (issue 8): small slides, broken on purpose.

Good slides are 1024 px pyramidal Aperio SVS files written by the synthetic cohort's own TIFF
writer (`raypath.slides.synth.tiff.write_svs`) with a cheap renderer: two tissue ellipses per
slide, so every good slide is guaranteed to yield tiles. Each fault is a copy of a good slide
damaged in one precise way (truncated, one corrupt JPEG tile, a JPEG header that crashes the
decoder), or a small file that is not a usable slide at all.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from raypath.slides.synth.tiff import write_svs

GLASS = (242, 240, 244)
TISSUE = (205, 130, 180)


def tissue_renderer(seed: int, size: int) -> Callable[[int, int, int, int], np.ndarray]:
    """Two textured pink ellipses on glass; deterministic per seed, rendered block by block."""
    rng = np.random.default_rng(seed)
    blobs = [(rng.uniform(0.3, 0.4), rng.uniform(0.35, 0.5), 0.25, 0.3), (0.72, 0.65, 0.14, 0.18)]

    def render(x0: int, y0: int, width: int, height: int) -> np.ndarray:
        yy, xx = np.mgrid[y0:y0 + height, x0:x0 + width]
        image = np.empty((height, width, 3), dtype=np.float32)
        image[:] = GLASS
        for cx, cy, rx, ry in blobs:
            inside = ((xx - cx * size) / (rx * size)) ** 2 + ((yy - cy * size) / (ry * size)) ** 2 < 1
            image[inside] = TISSUE
        texture = np.sin(xx * 0.37 + seed) * np.cos(yy * 0.23) * 12
        return np.clip(image + texture[..., None], 0, 255).astype(np.uint8)

    return render


def write_tissue_slide(path: Path, *, seed: int, size: int = 1024, mpp: float = 0.5) -> Path:
    """A pyramidal (2-level) Aperio SVS with tissue; `size` < 1024 gives a single-level file."""
    write_svs(path, render=tissue_renderer(seed, size), dimensions=(size, size), mpp=mpp, quality=85)
    return path


def write_blank_slide(path: Path, *, size: int = 1024) -> Path:
    """Blank glass: a valid pyramidal slide with nothing to tile."""
    def glass(x0: int, y0: int, width: int, height: int) -> np.ndarray:
        return np.full((height, width, 3), 245, dtype=np.uint8)

    write_svs(path, render=glass, dimensions=(size, size), mpp=0.5, quality=85)
    return path


def write_tiff_pyramid(
    path: Path, image: np.ndarray, *, levels: int, description: str | None, tile: int = 64,
) -> Path:
    """A JPEG-tiled pyramid written page by page; `description=None` gives a generic TIFF."""
    with tifffile.TiffWriter(path) as tif:
        level = image
        for index in range(levels):
            tif.write(level, tile=(tile, tile), compression="jpeg", photometric="rgb", metadata=None,
                      description=description if index == 0 else None,
                      subfiletype=0 if index == 0 else 1)
            level = np.asarray(Image.fromarray(level).reduce(2))
    return path


def aperio_header(width: int, height: int, *, mpp: float | None) -> str:
    """Aperio ImageDescription, with or without the MPP field."""
    text = f"Aperio Image Library v12.0.0 \r\n{width}x{height} [0,0 {width}x{height}] (64x64) JPEG/RGB Q=90"
    return f"{text}|AppMag = 20" + (f"|MPP = {mpp}" if mpp is not None else "")


def tissue_image(size: int, *, seed: int) -> np.ndarray:
    return tissue_renderer(seed, size)(0, 0, size, size)


@dataclass(frozen=True)
class TileLayout:
    """Level 0's JPEG tiles: byte offsets and counts in the file, tile side and grid columns."""

    offsets: list[int]
    counts: list[int]
    side: int
    columns: int

    def location(self, index: int) -> tuple[int, int]:
        """Level-0 (x, y) of a tile's top-left corner."""
        return (index % self.columns) * self.side, (index // self.columns) * self.side


def level0_tiles(path: Path) -> TileLayout:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return TileLayout(offsets=list(page.dataoffsets), counts=list(page.databytecounts),
                          side=page.tilewidth, columns=-(-page.imagewidth // page.tilewidth))


def tissue_tile_index(path: Path) -> int:
    """A level-0 tile in the middle of the first (large) tissue ellipse (slides are square)."""
    columns = level0_tiles(path).columns
    return (columns * 2 // 5) * columns + columns // 3


def truncate(source: Path, target: Path) -> Path:
    """The first half of a slide, as an interrupted copy leaves it."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def corrupt_tile(source: Path, target: Path) -> Path:
    """Overwrite the JPEG start-of-image marker of one tissue tile: that tile cannot be decoded."""
    data = bytearray(source.read_bytes())
    start = level0_tiles(source).offsets[tissue_tile_index(source)]
    data[start:start + 16] = bytes(16)
    target.write_bytes(bytes(data))
    return target


def decoder_crashing(source: Path, target: Path) -> Path:
    """Every level-0 tile's JPEG frame header claims 60000x60000 px.

    cuCIM's own decoder writes such a tile into its tile-sized buffer and dies with SIGSEGV: a real
    process death, not a Python exception. raypath's cuCIM reader checks every tile's frame header
    before decoding and refuses it, as OpenSlide does.
    """
    layout = level0_tiles(source)
    data = bytearray(source.read_bytes())
    for start, count in zip(layout.offsets, layout.counts, strict=True):
        frame = bytes(data[start:start + count]).find(b"\xff\xc0")
        if frame >= 0:
            struct.pack_into(">HH", data, start + frame + 5, 60000, 60000)
    target.write_bytes(bytes(data))
    return target


def write_text_svs(path: Path) -> Path:
    path.write_text("slide_id,path\nthis is a CSV file, not a slide\n")
    return path


def write_zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_png(path: Path) -> Path:
    """An ordinary PNG picture of tissue: a format no slide reader supports."""
    Image.fromarray(tissue_image(256, seed=1)).save(path)
    return path
