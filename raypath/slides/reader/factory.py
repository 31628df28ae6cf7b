"""`open_slide`: one entry point that picks the slide library, eva-style (one reader per library)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from raypath.slides.reader.base import SlideReader
from raypath.slides.reader.cucim import EXTENSIONS as CUCIM_EXTENSIONS
from raypath.slides.reader.cucim import CuCIMReader
from raypath.slides.reader.errors import SlideError, SlideNotFoundError, UnsupportedSlideError
from raypath.slides.reader.openslide import OpenSlideReader
from raypath.slides.reader.scaled_jpeg import Device, ScaledJPEGReader

logger = logging.getLogger(__name__)

ReaderName = Literal["auto", "jpeg", "cucim", "openslide"]

READERS: dict[str, type[SlideReader]] = {"jpeg": ScaledJPEGReader, "cucim": CuCIMReader,
                                         "openslide": OpenSlideReader}
AUTO_ORDER = ("jpeg", "cucim", "openslide")
"""Fastest first: scaled JPEG decoding where every level is JPEG-tiled, cuCIM for other TIFFs."""

MPP_DISAGREEMENT = 0.05
"""Relative gap between override and file mpp worth a warning: usually a manifest mistake."""


def _candidates(path: Path, reader: ReaderName) -> list[str]:
    if reader != "auto":
        if reader not in READERS:
            raise ValueError(f"unknown slide reader '{reader}'; choose from auto, {', '.join(READERS)}")
        return [reader]
    return list(AUTO_ORDER) if path.suffix.lower() in CUCIM_EXTENSIONS else ["openslide"]


def open_slide(
    path: str | Path,
    *,
    reader: ReaderName = "auto",
    mpp_override: float | None = None,
    num_workers: int | None = None,
    device: Device = "cpu",
) -> SlideReader:
    """Open a slide with the named reader, or with "auto": the first of scaled JPEG, cuCIM and OpenSlide
    that decodes the file.

    `num_workers` caps the decode threads of the jpeg and cuCIM readers (default: the cores this
    process may use); set it to the CPUs a Ray task was given. `device="cuda"` lets the jpeg reader
    decode on a GPU (nvImageCodec), falling back to the CPU where none is usable.
    Raises SlideNotFoundError for a missing path and
    UnsupportedSlideError when no reader can decode the file (its message says why each one failed).
    """
    path = Path(path)
    if not path.is_file():
        raise SlideNotFoundError(path)
    failures: list[str] = []
    for name in _candidates(path, reader):
        try:
            options: dict[str, object] = {}
            if name in ("jpeg", "cucim"):
                options["num_workers"] = num_workers
            if name == "jpeg":
                options["device"] = device
            slide = READERS[name](path, mpp_override=mpp_override, **options)
        except UnsupportedSlideError as exc:
            failures.append(exc.reason)
            continue
        except SlideError as exc:  # library missing: "auto" falls through, an explicit choice fails
            if reader != "auto":
                raise
            failures.append(str(exc))
            continue
        _warn_on_mpp_disagreement(slide)
        return slide
    raise UnsupportedSlideError(path, "; ".join(failures))


def _warn_on_mpp_disagreement(slide: SlideReader) -> None:
    if slide.file_mpp is None or slide.mpp_source != "override":
        return
    if abs(slide.mpp / slide.file_mpp - 1) > MPP_DISAGREEMENT:
        logger.warning(
            "%s: mpp override %.4f differs from the file's %.4f; using the override",
            slide.path, slide.mpp, slide.file_mpp,
        )
