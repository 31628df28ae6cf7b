"""A JPEG stream's frame size, from a walk over its markers: a cheap check that a tile is whole.

No entropy decoding: the walk reads the segment headers only (SOI, tables, SOF, SOS) and looks for
EOI at the end, which is what a truncated, overwritten or crafted tile gets wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
"""Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic)."""

SOI, EOI, SOS, APP0, APP14 = 0xD8, 0xD9, 0xDA, 0xE0, 0xEE
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length field (TEM, RST0-7)."""


@dataclass(frozen=True)
class JpegHeader:
    """What a decoder reads before the entropy-coded data: enough to size and colour-check a tile.

    `jfif` and `adobe_transform` (None when there is no Adobe APP14 segment) are the markers
    libjpeg uses to tell RGB from YCbCr data; without them it guesses from `component_ids`.
    """

    width: int
    height: int
    component_ids: tuple[int, ...]
    jfif: bool = False
    adobe_transform: int | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


def _frame(segment: bytes) -> tuple[int, int, tuple[int, ...]]:
    """(width, height, component ids) from an SOF payload; a component count that disagrees with the
    length is junk."""
    if len(segment) < 6:
        raise ValueError("frame header (SOF) is too short")
    height, width, components = int.from_bytes(segment[1:3]), int.from_bytes(segment[3:5]), segment[5]
    if not 1 <= components <= 4 or len(segment) != 6 + 3 * components:
        raise ValueError(f"frame header (SOF) has a malformed component list ({components} components)")
    return width, height, tuple(segment[6 + 3 * i] for i in range(components))


def _ends_with_eoi(data: bytes, start: int) -> bool:
    """EOI as the last marker after `start`, ignoring the zero padding some writers append to tiles."""
    end = len(data)
    while end > start and data[end - 1] == 0:
        end -= 1
    return end - start >= 2 and data[end - 2] == 0xFF and data[end - 1] == EOI


def _next_segment(data: bytes, position: int, *, allow_eoi: bool = False) -> tuple[int, int, int]:
    """(marker, payload start, segment end) of the marker at `position`, after any fill bytes;
    standalone markers (and EOI where allowed) have an empty payload."""
    if position + 2 > len(data) or data[position] != 0xFF:
        raise ValueError(f"no marker at byte {position} (truncated or corrupt header)")
    while position + 1 < len(data) and data[position + 1] == 0xFF:  # fill bytes
        position += 1
    marker = data[position + 1] if position + 1 < len(data) else -1
    if marker in STANDALONE or (allow_eoi and marker == EOI):
        return marker, position + 2, position + 2
    if marker in (SOI, EOI, -1, 0x00):
        raise ValueError(f"unexpected marker 0x{marker & 0xFF:02X} before the scan at byte {position}")
    length = int.from_bytes(data[position + 2 : position + 4])
    end = position + 2 + length
    if length < 2 or end > len(data):
        raise ValueError(f"segment 0xFF{marker:02X} at byte {position} runs past the end of the tile")
    return marker, position + 4, end


def jpeg_header(data: bytes) -> JpegHeader:
    """The header of a JPEG stream whose structure is complete: SOI, a frame header, a scan, EOI.

    Works on abbreviated streams too (TIFF JPEGTables hold the tables; tiles still carry SOF and SOS).
    Raises ValueError saying what is wrong; the entropy-coded data itself is not checked. Runs once
    per tile decoded, so the common segments are walked inline.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != SOI:
        raise ValueError("no JPEG start-of-image (SOI) marker")
    frame: tuple[int, int, tuple[int, ...]] | None = None
    jfif, adobe = False, None
    size, position = len(data), 2
    while True:
        marker = data[position + 1] if position + 3 < size and data[position] == 0xFF else None
        if marker is None or marker == 0xFF or marker in STANDALONE:
            marker, payload, end = _next_segment(data, position)  # fill bytes, RSTn, or the error
        else:
            length = (data[position + 2] << 8) | data[position + 3]
            payload, end = position + 4, position + 2 + length
            if marker in (SOI, EOI, 0x00) or length < 2 or end > size:
                _next_segment(data, position)  # raises the precise error
        if marker in SOF_MARKERS:
            frame = _frame(data[payload:end])
        elif marker == APP0 and data[payload : payload + 5] == b"JFIF\x00":
            jfif = True
        elif marker == APP14 and data[payload : payload + 5] == b"Adobe" and end - payload >= 12:
            adobe = data[payload + 11]
        elif marker == SOS:
            break
        position = end
    if frame is None:
        raise ValueError("scan (SOS) before any frame header (SOF)")
    if not _ends_with_eoi(data, end):
        raise ValueError("no end-of-image (EOI) marker: the tile is truncated")
    width, height, ids = frame
    return JpegHeader(width=width, height=height, component_ids=ids, jfif=jfif, adobe_transform=adobe)


TABLE_MARKERS = frozenset({0xC4, 0xCC, 0xDB, 0xDD})
"""DHT, DAC, DQT, DRI: what a JPEGTables stream is for."""


def jpeg_tables_body(tables: bytes) -> bytes:
    """The table segments of a TIFF JPEGTables stream, ready to splice behind a tile's SOI.

    APPn and comment segments are dropped, so the tables never change how a tile's colours are read.
    Raises ValueError for image data or a broken structure.
    """
    if len(tables) < 4 or tables[0] != 0xFF or tables[1] != SOI:
        raise ValueError("JPEGTables has no start-of-image (SOI) marker")
    kept: list[bytes] = []
    position = 2
    while True:
        marker, payload, end = _next_segment(tables, position, allow_eoi=True)
        if marker == EOI:
            break
        if marker in SOF_MARKERS or marker == SOS:
            raise ValueError(f"JPEGTables holds image data (marker 0xFF{marker:02X})")
        if marker in TABLE_MARKERS:
            kept.append(tables[payload - 4 : end])
        position = end
    if tables[end:].strip(b"\x00"):
        raise ValueError("JPEGTables has data after its end-of-image (EOI) marker")
    return b"".join(kept)
