"""JPEG tile checks: the marker walk on hand-built streams, and the readers refusing damaged tiles."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from raypath.slides.reader import SlideReadError, open_slide
from raypath.slides.reader import tile_check as tile_check_module
from raypath.slides.reader.jpeg_check import JpegHeader, jpeg_header
from raypath.slides.reader.tile_check import TileValidator, touched_tiles

TILE = 64
SHAPE = (192, 256)  # (height, width): 4 columns x 3 rows of 64-px tiles


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def frame(width: int, height: int, components: int = 3) -> bytes:
    specs = b"".join(bytes([index + 1, 0x11, 0]) for index in range(components))
    return segment(0xC0, bytes([8]) + struct.pack(">HHB", height, width, components) + specs)


def stream(*, width: int = 256, height: int = 256, tables: bool = True, end: bytes = b"\xff\xd9") -> bytes:
    """SOI [DQT DHT] SOF SOS <entropy data with a stuffed 0xFF00> EOI: tables=False is the abbreviated
    form TIFF tiles take when the tables live in the JPEGTables tag."""
    parts = [b"\xff\xd8", segment(0xE0, b"JFIF\x00\x01\x01")]
    if tables:
        parts += [segment(0xDB, bytes(65)), segment(0xC4, bytes(29))]
    scan = segment(0xDA, bytes([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]))
    return b"".join([*parts, frame(width, height), scan, b"\x12\x34\xff\x00\x56\xff\xd0\x78", end])


def test_a_complete_stream_gives_width_then_height() -> None:
    assert jpeg_header(stream(width=320, height=200)).size == (320, 200)
    assert jpeg_header(stream(tables=False)).size == (256, 256)
    assert jpeg_header(stream() + bytes(7)).size == (256, 256)  # zero padding after EOI


def test_a_real_encoder_stream_passes() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 120, 170)).save(buffer, format="JPEG", quality=80)
    assert jpeg_header(buffer.getvalue()).size == (48, 32)


def test_the_claimed_frame_size_is_returned_for_the_caller_to_compare() -> None:
    assert jpeg_header(stream(width=60000, height=60000)).size == (60000, 60000)


@pytest.mark.parametrize(("data", "reason"), [
    (bytes(16) + stream()[16:], "SOI"),
    (stream()[:30], "runs past the end"),
    (stream(end=b""), "EOI"),
    (stream()[:-5], "EOI"),
    (b"\xff\xd8" + segment(0xDA, bytes(10)) + b"\x00\xff\xd9", "before any frame header"),
    (b"\xff\xd8" + segment(0xC0, bytes([8, 0, 16, 0, 16, 3, 1, 0x11, 0])) + b"\xff\xd9", "component"),
    (b"\xff\xd8\x00\x00" + stream()[2:], "no marker"),
    (b"", "SOI"),
])
def test_broken_streams_raise_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        jpeg_header(data)


@pytest.fixture
def tiled_tiff(tmp_path: Path) -> Path:
    """A 2-level JPEG-tiled generic TIFF (64-px tiles), textured so every tile holds real data."""
    rng = np.random.default_rng(0)
    image = rng.integers(100, 230, (*SHAPE, 3), dtype=np.uint8)
    path = tmp_path / "tiled.tiff"
    with tifffile.TiffWriter(path) as tif:
        for subfiletype, level in enumerate((image, image[::2, ::2].copy())):
            tif.write(level, tile=(TILE, TILE), compression="jpeg", photometric="rgb", metadata=None,
                      subfiletype=subfiletype)
    return path


def level0_tile(path: Path, index: int) -> tuple[int, int]:
    with tifffile.TiffFile(path) as tif:
        return int(tif.pages[0].dataoffsets[index]), int(tif.pages[0].databytecounts[index])


def damage(path: Path, index: int, edit: str) -> None:
    """Overwrite the SOI of one level-0 tile ("soi") or make its frame header claim 60000x60000 ("sof")."""
    offset, count = level0_tile(path, index)
    data = bytearray(path.read_bytes())
    if edit == "soi":
        data[offset:offset + 2] = b"\x00\x00"
    else:
        sof = bytes(data[offset:offset + count]).find(b"\xff\xc0")
        struct.pack_into(">HH", data, offset + sof + 5, 60000, 60000)
    path.write_bytes(bytes(data))


def validator(path: Path) -> TileValidator:
    return TileValidator(path, level_dimensions=((256, 192), (128, 96)), level_downsamples=(1.0, 2.0))


@pytest.mark.parametrize(("edit", "reason"), [("soi", "start-of-image"), ("sof", "60000x60000 px but")])
def test_a_damaged_tile_is_named_and_its_neighbours_pass(tiled_tiff: Path, edit: str, reason: str) -> None:
    damage(tiled_tiff, 5, edit)
    tiles = validator(tiled_tiff)
    tiles.check(np.array([[0, 0], [128, 128]]), level=0, size=(64, 64))  # tiles 0 and 10
    named = r"tiled\.tiff: cannot decode region at \(100, 100\) level 0 size \(8, 8\): tile 5 \(column 1"
    with pytest.raises(SlideReadError, match=rf"{named}.*{reason}"):
        tiles.check(np.array([[100, 100]]), level=0, size=(8, 8))
    tiles.check(np.array([[0, 0]]), level=1, size=(128, 96))  # level 1 is intact
    tiles.close()


def test_a_truncated_file_and_an_empty_tile_are_invalid(tiled_tiff: Path) -> None:
    offset, _ = level0_tile(tiled_tiff, 11)
    tiled_tiff.write_bytes(tiled_tiff.read_bytes()[: offset + 10])
    with pytest.raises(SlideReadError, match="truncated file"):
        validator(tiled_tiff).check(np.array([[255, 191]]), level=0, size=(1, 1))
    empty = tiled_tiff.with_name("empty.tiff")
    with tifffile.TiffWriter(empty) as tif:
        tif.write(np.zeros((*SHAPE, 3), np.uint8), tile=(TILE, TILE), compression="jpeg", photometric="rgb")
    with tifffile.TiffFile(empty, mode="r+b") as tif:
        tif.pages[0].tags["TileByteCounts"].overwrite([0] * 12)
    with pytest.raises(SlideReadError, match="byte count 0"):
        TileValidator(empty, level_dimensions=((256, 192),), level_downsamples=(1.0,)).check(
            np.array([[0, 0]]), level=0, size=(1, 1))


def test_each_tile_is_checked_once(tiled_tiff: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(data: bytes) -> JpegHeader:
        calls.append(len(data))
        return jpeg_header(data)

    monkeypatch.setattr(tile_check_module, "jpeg_header", counting)
    tiles = validator(tiled_tiff)
    for _ in range(3):
        tiles.check(np.array([[10, 10], [70, 10]]), level=0, size=(64, 64))  # tiles 0, 1, 2, 4, 5, 6
    assert len(calls) == 6


def test_touched_tiles_follow_the_level_downsample() -> None:
    tiles = tile_check_module.LevelTiles(offsets=np.zeros(6, np.int64), counts=np.zeros(6, np.int64),
                                         tile_size=(64, 64), image_size=(128, 96))
    touched = touched_tiles(tiles, (130, 100), downsample=2.0, size=(64, 64))
    assert sorted(touched) == [1, 3]  # level x 65..128 -> column 1; y 50..113 (clipped at 95) -> rows 0-1
    assert sorted(touched_tiles(tiles, (127, 0), downsample=2.0, size=(1, 1))) == [0, 1]
    for outside in ((-500, 0), (256, 0)):
        assert list(touched_tiles(tiles, outside, downsample=2.0, size=(64, 64))) == []


@pytest.mark.parametrize("reader", ["cucim", "jpeg"])
@pytest.mark.parametrize("edit", ["soi", "sof"])
def test_readers_refuse_regions_over_a_damaged_tile_in_every_read_path(
    tiled_tiff: Path, reader: str, edit: str
) -> None:
    """A damaged or crafted tile (a frame header claiming 60000x60000 px would overrun the decoder's
    buffer) is refused before it is decoded, in every read path; its neighbours still read."""
    if reader == "cucim":
        pytest.importorskip("cucim")
    damage(tiled_tiff, 5, edit)
    with open_slide(tiled_tiff, reader=reader, mpp_override=0.5) as slide:
        with pytest.raises(SlideReadError, match="tile 5"):
            slide.read_region(location=(70, 70), level=0, size=(16, 16))
        locations = np.array([[0, 0], [64, 0], [0, 128], [64, 64]])
        with pytest.raises(SlideReadError, match="tile 5"):
            slide.read_regions(locations=locations, level=0, size=(64, 64))
        with pytest.raises(SlideReadError, match="tile 5"):
            list(slide.iter_tiles(locations=locations, level=0, size=64, tile_px=64, batch_size=2))
        good = slide.read_regions(locations=locations[:3], level=0, size=(64, 64))
        assert good.shape == (3, 64, 64, 3) and good.std() > 10
        slide.thumbnail(mpp=1.0)  # level 1 is intact
        with pytest.raises(SlideReadError, match="tile 5"):
            slide.thumbnail(mpp=0.5)


def test_a_sparse_tiff_is_left_to_openslide(tiled_tiff: Path) -> None:
    """Tiles without data are empty glass in sparse TIFFs: cuCIM refuses, so "auto" uses OpenSlide."""
    from raypath.slides.reader.cucim import CuCIMReader
    from raypath.slides.reader.errors import UnsupportedSlideError

    with tifffile.TiffFile(tiled_tiff, mode="r+b") as tif:
        counts = list(tif.pages[0].databytecounts)
        tif.pages[0].tags["TileByteCounts"].overwrite([0, *counts[1:]])
    validator_ = TileValidator(tiled_tiff, level_dimensions=((256, 192),), level_downsamples=(1.0,))
    assert validator_.has_sparse_tiles
    validator_.close()
    with pytest.raises(UnsupportedSlideError, match="sparse TIFF"):
        CuCIMReader(tiled_tiff, mpp_override=0.5)
