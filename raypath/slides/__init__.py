"""Whole-slide images: reading (cuCIM | OpenSlide), tissue detection and tiling at a fixed mpp."""

from raypath.slides.reader import (
    MissingMppError,
    SlideError,
    SlideNotFoundError,
    SlideReader,
    SlideReadError,
    Thumbnail,
    UnsupportedSlideError,
    open_slide,
)
from raypath.slides.tiling import TileGrid, iter_tiles, plan_tiles, read_tiles, tile_slide
from raypath.slides.tissue import detect_tissue

__all__ = [
    "MissingMppError",
    "SlideError",
    "SlideNotFoundError",
    "SlideReadError",
    "SlideReader",
    "Thumbnail",
    "TileGrid",
    "UnsupportedSlideError",
    "detect_tissue",
    "iter_tiles",
    "open_slide",
    "plan_tiles",
    "read_tiles",
    "tile_slide",
]
