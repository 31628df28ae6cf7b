"""Physical and pixel units as named types, so a micron is never passed where a pixel is meant.

Used in the tiling and tissue configs and in the functions that convert between them: every
conversion from microns to pixels goes through an `mpp` (microns per pixel) that says at which
resolution the pixels are counted.
"""

from typing import NewType

Microns = NewType("Microns", float)
"""A length in micrometres."""

SquareMicrons = NewType("SquareMicrons", float)
"""An area in square micrometres (e.g. the smallest tissue island kept)."""

MicronsPerPixel = NewType("MicronsPerPixel", float)
"""A resolution: the side of one pixel in micrometres (`mpp`)."""

Pixels = NewType("Pixels", int)
"""A length in pixels at a stated level or resolution."""

Level0Pixels = NewType("Level0Pixels", int)
"""A coordinate or length in pixels of the slide's full-resolution level 0."""


def microns_to_pixels(length: Microns, *, mpp: MicronsPerPixel) -> Pixels:
    """Nearest whole number of pixels covering `length` at resolution `mpp`."""
    return Pixels(round(length / mpp))


def area_to_pixels(area: SquareMicrons, *, mpp: MicronsPerPixel) -> float:
    """Pixel count of an area at resolution `mpp` (fractional: a threshold, not a size)."""
    return area / mpp**2
