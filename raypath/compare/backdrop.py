"""The slide under a heatmap: the part of a whole-slide thumbnail its tiles cover, fine enough to see.

Heatmaps show tissue under the attention, so the picture must resolve tissue: a small biopsy at the
configured thumbnail resolution can be a few dozen pixels across. The thumbnail is therefore read at
the configured mpp or finer, so that the tiles' box is at least `MIN_PANEL_PX` across, but never so
fine that the whole-slide thumbnail exceeds `MAX_THUMBNAIL_PIXELS` (it is read in strips either way).
"""

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from raypath.compare.heatmaps import Backdrop

if TYPE_CHECKING:
    from raypath.slides.reader import SlideReader

log = logging.getLogger(__name__)
MIN_PANEL_PX = 400
MAX_THUMBNAIL_PIXELS = 1 << 24


def backdrop_mpp(reader: "SlideReader", box: tuple[int, int, int, int], *, mpp: float) -> float:
    """`mpp`, or finer until the box spans MIN_PANEL_PX, bounded by the whole thumbnail's size."""
    span_um = max(box[2] - box[0], box[3] - box[1]) * reader.mpp
    width_um, height_um = (side * reader.mpp for side in reader.dimensions)
    floor = math.sqrt(width_um * height_um / MAX_THUMBNAIL_PIXELS)
    return max(min(mpp, span_um / MIN_PANEL_PX), floor, reader.mpp)


def tissue_backdrop(path: str | Path | None, *, box: tuple[int, int, int, int], mpp: float
                    ) -> Backdrop | None:
    """The slide within the level-0 `box` (left, top, right, bottom); None when there is no image to read
    (a feature-level cohort's path is a feature file): heatmaps then draw on the tile grid alone."""
    from raypath.slides.reader import SlideError, open_slide  # slide readers only where slides are drawn

    if path is None:
        return None
    try:
        with open_slide(Path(path)) as reader:
            thumb = reader.thumbnail(mpp=backdrop_mpp(reader, box, mpp=mpp))
    except (SlideError, OSError) as exc:
        log.info("no thumbnail for %s (%s); drawing on the tile grid", path, exc)
        return None
    ds = thumb.downsample
    height, width = thumb.image.shape[:2]
    left, top = max(0, math.floor(box[0] / ds)), max(0, math.floor(box[1] / ds))
    right, bottom = min(width, math.ceil(box[2] / ds)), min(height, math.ceil(box[3] / ds))
    return Backdrop(image=thumb.image[top:bottom, left:right], origin=(left * ds, top * ds), downsample=ds)
