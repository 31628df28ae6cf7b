"""Physical and pixel units as named types, so a micron is never passed where a pixel is meant."""

from typing import NewType

Microns = NewType("Microns", float)
"""A length in micrometres; `mpp` values are microns per pixel."""

Pixels = NewType("Pixels", int)
"""A length in pixels at a stated level or resolution."""

Level0Pixels = NewType("Level0Pixels", int)
"""A coordinate or length in pixels of the slide's full-resolution level 0."""
