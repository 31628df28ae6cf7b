"""Slide reading behind one interface: `open_slide` picks scaled JPEG, cuCIM or OpenSlide per file."""

from raypath.slides.reader.base import Backend, SlideReader
from raypath.slides.reader.cucim import CuCIMReader
from raypath.slides.reader.errors import (
    MissingMppError,
    SlideError,
    SlideNotFoundError,
    SlideReadError,
    UnsupportedSlideError,
)
from raypath.slides.reader.factory import READERS, ReaderName, open_slide
from raypath.slides.reader.openslide import OpenSlideReader
from raypath.slides.reader.scaled_jpeg import ScaledJPEGReader
from raypath.slides.reader.thumbnail import Thumbnail

__all__ = [
    "READERS",
    "Backend",
    "CuCIMReader",
    "MissingMppError",
    "OpenSlideReader",
    "ReaderName",
    "ScaledJPEGReader",
    "SlideError",
    "SlideNotFoundError",
    "SlideReadError",
    "SlideReader",
    "Thumbnail",
    "UnsupportedSlideError",
    "open_slide",
]
