"""Whole JPEG streams from TIFF tiles: the level's JPEGTables spliced in, the colour space made explicit.

A TIFF JPEG tile is usually an abbreviated stream whose quantisation and Huffman tables live in the
page's JPEGTables tag; any decoder takes the tile once those segments sit behind its SOI. Which colour
space the samples are in is the TIFF's to say (PhotometricInterpretation), not the stream's: Aperio
writes RGB samples (photometric RGB, no JFIF marker, component ids 0, 1, 2) that libjpeg, guessing
from the ids, would treat as YCbCr and turn magenta. Where libjpeg's guess and the TIFF disagree, an
Adobe APP14 segment stating the transform is added, the marker libjpeg trusts over its guess; this
is the rule libtiff and tifffile decode these files by (RGB unless a JFIF marker says YCbCr).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from raypath.slides.reader.jpeg_check import JpegHeader, jpeg_tables_body

PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR = 2, 6
RGB_IDS = (ord("R"), ord("G"), ord("B"))
"""Component ids libjpeg takes as RGB data when no JFIF or Adobe marker says otherwise."""


def adobe_segment(transform: int) -> bytes:
    """APP14 'Adobe' (version 100, no flags): transform 0 = RGB samples, 1 = YCbCr."""
    payload = b"Adobe" + struct.pack(">HHHB", 100, 0, 0, transform)
    return b"\xff\xee" + struct.pack(">H", len(payload) + 2) + payload


def libjpeg_guess(header: JpegHeader) -> str:
    """'rgb' or 'ycbcr': what libjpeg(-turbo) assumes for 3-component data (jdapimin.c)."""
    if header.jfif:
        return "ycbcr"
    if header.adobe_transform is not None:
        return "rgb" if header.adobe_transform == 0 else "ycbcr"
    return "rgb" if header.component_ids == RGB_IDS else "ycbcr"


def tiff_colour(photometric: int, header: JpegHeader) -> str:
    """'rgb' or 'ycbcr': what the samples are according to the TIFF (libtiff and tifffile's rule)."""
    if photometric == PHOTOMETRIC_YCBCR or header.jfif:
        return "ycbcr"
    if photometric == PHOTOMETRIC_RGB:
        return "rgb"
    raise ValueError(f"photometric {photometric} is neither RGB nor YCbCr")


@dataclass
class StreamBuilder:
    """Turns one level's TIFF tiles into complete, colour-explicit JPEG streams (bytes only, no decode)."""

    jpeg_tables: bytes | None
    photometric: int
    _tables: bytes = field(init=False, repr=False)
    _prefixes: dict[str, bytes] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.photometric not in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
            raise ValueError(f"photometric {self.photometric} is neither RGB nor YCbCr")
        self._tables = jpeg_tables_body(self.jpeg_tables) if self.jpeg_tables else b""

    def stream(self, tile: bytes, header: JpegHeader) -> bytes:
        """`tile` (checked, `header` its header) as a stream libjpeg decodes to the TIFF's colours.
        Raises ValueError when the tile's own markers contradict the TIFF in a way no marker can fix."""
        if len(header.component_ids) != 3:
            raise ValueError(f"{len(header.component_ids)}-component JPEG tile; only RGB tiles are read")
        want, guess = tiff_colour(self.photometric, header), libjpeg_guess(header)
        if want == guess:
            key = "as-is"
        elif header.adobe_transform is None and not header.jfif:
            key = want
        else:
            raise ValueError(f"JPEG markers say {guess} samples but the TIFF says {want}")
        prefix = self._prefixes.get(key)
        if prefix is None:
            marker = b"" if key == "as-is" else adobe_segment(0 if key == "rgb" else 1)
            prefix = self._prefixes[key] = b"\xff\xd8" + marker + self._tables
        return prefix + tile[2:]
