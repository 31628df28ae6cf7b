"""A JPEG stream's frame size, from a walk over its markers: a cheap check that a tile is whole.

No entropy decoding: the walk reads the segment headers only (SOI, tables, SOF, SOS) and looks for
EOI at the end, which is what a truncated, overwritten or crafted tile gets wrong.
"""

from __future__ import annotations

SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
"""Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic)."""

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""Markers without a length field (TEM, RST0-7)."""


def _frame_size(segment: bytes) -> tuple[int, int]:
    """(width, height) from an SOF payload; a component count that disagrees with the length is junk."""
    if len(segment) < 6:
        raise ValueError("frame header (SOF) is too short")
    height, width, components = int.from_bytes(segment[1:3]), int.from_bytes(segment[3:5]), segment[5]
    if not 1 <= components <= 4 or len(segment) != 6 + 3 * components:
        raise ValueError(f"frame header (SOF) has a malformed component list ({components} components)")
    return width, height


def _ends_with_eoi(data: bytes, start: int) -> bool:
    """EOI as the last marker after `start`, ignoring the zero padding some writers append to tiles."""
    end = len(data)
    while end > start and data[end - 1] == 0:
        end -= 1
    return end - start >= 2 and data[end - 2] == 0xFF and data[end - 1] == EOI


def jpeg_frame_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG stream whose structure is complete: SOI, a frame header, a scan, EOI.

    Works on abbreviated streams too (TIFF JPEGTables hold the tables; tiles still carry SOF and SOS).
    Raises ValueError saying what is wrong; the entropy-coded data itself is not checked.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != SOI:
        raise ValueError("no JPEG start-of-image (SOI) marker")
    size: tuple[int, int] | None = None
    position = 2
    while True:
        if position + 2 > len(data) or data[position] != 0xFF:
            raise ValueError(f"no marker at byte {position} (truncated or corrupt header)")
        while position + 1 < len(data) and data[position + 1] == 0xFF:  # fill bytes
            position += 1
        marker = data[position + 1] if position + 1 < len(data) else -1
        if marker in STANDALONE:
            position += 2
            continue
        if marker in (SOI, EOI, -1, 0x00):
            raise ValueError(f"unexpected marker 0x{marker & 0xFF:02X} before the scan at byte {position}")
        length = int.from_bytes(data[position + 2 : position + 4])
        end = position + 2 + length
        if length < 2 or end > len(data):
            raise ValueError(f"segment 0xFF{marker:02X} at byte {position} runs past the end of the tile")
        if marker in SOF_MARKERS:
            size = _frame_size(data[position + 4 : end])
        elif marker == SOS:
            break
        position = end
    if size is None:
        raise ValueError("scan (SOS) before any frame header (SOF)")
    if not _ends_with_eoi(data, end):
        raise ValueError("no end-of-image (EOI) marker: the tile is truncated")
    return size
