"""Slide readers: scaled JPEG, cuCIM and OpenSlide agree on real and synthetic slides; bad files fail."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from raypath.slides.reader import (
    READERS,
    MissingMppError,
    OpenSlideReader,
    SlideNotFoundError,
    SlideReadError,
    UnsupportedSlideError,
    open_slide,
)
from raypath.slides.reader.base import parse_mpp
from raypath.slides.reader.openslide import composite_on_white
from raypath.slides.reader.runs import find_runs, runs_by_length, split_run

pytest.importorskip("cucim")

BACKENDS = ("jpeg", "cucim", "openslide")
CMU_MPP = 0.499


def _geometry(path: Path, backend: str) -> tuple:
    with open_slide(path, reader=backend) as slide:
        assert slide.backend == backend
        return (
            slide.dimensions, slide.level_count, slide.level_dimensions, slide.level_downsamples, slide.vendor
        )


@pytest.mark.parametrize("fixture", ["cmu_svs", "tiny_svs"])
def test_backends_agree_on_geometry_and_vendor(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    jpeg, cucim, openslide = (_geometry(path, backend) for backend in BACKENDS)
    assert jpeg == cucim == openslide
    assert cucim[-1] == "aperio"


def test_cmu_slide_metadata(cmu_svs: Path) -> None:
    for backend in BACKENDS:
        with open_slide(cmu_svs, reader=backend) as slide:
            assert slide.dimensions == (2220, 2967)
            assert slide.mpp == pytest.approx(CMU_MPP)
            assert slide.mpp_source == "file"
            assert not slide.is_pyramidal


@pytest.mark.parametrize(
    ("fixture", "level"), [("cmu_svs", 0), ("tiny_svs", 0), ("tiny_svs", 1), ("tiny_svs", 2)]
)
def test_backends_agree_on_pixels(fixture: str, level: int, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    regions = []
    for backend in BACKENDS:
        with open_slide(path, reader=backend) as slide:
            regions.append(slide.read_region(location=(96, 160), level=level, size=(80, 60)))
    assert regions[0].shape == regions[1].shape == regions[2].shape == (60, 80, 3)
    assert regions[0].dtype == np.uint8
    for other in regions[1:]:
        assert np.abs(regions[0].astype(int) - other).max() <= 2


def test_pyramidal_synthetic_slide(tiny_svs: Path) -> None:
    with open_slide(tiny_svs) as slide:
        assert slide.backend == "jpeg"  # every level is JPEG-tiled: auto takes the scaled-JPEG reader
        assert slide.is_pyramidal
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert slide.level_mpp(2) == pytest.approx(2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outside_the_slide_reads_white(cmu_svs: Path, backend: str) -> None:
    with open_slide(cmu_svs, reader=backend) as slide:
        width, height = slide.dimensions
        region = slide.read_region(location=(width - 10, height - 10), level=0, size=(40, 40))
        larger_than_slide = slide.read_region(location=(0, 0), level=0, size=(width + 8, 16))
    assert (region[10:, :] == 255).all() and (region[:, 10:] == 255).all()
    assert region[:10, :10].mean() < 255
    assert (larger_than_slide[:, width:] == 255).all()


def test_cucim_batched_reads_match_single_reads_in_order(tiny_svs: Path) -> None:
    locations = np.array([[0, 0], [512, 256], [64, 640], [900, 700], [256, 0]])
    with open_slide(tiny_svs, reader="cucim") as slide:
        batch = slide.read_regions(locations=locations, level=1, size=(64, 48))
        singles = [slide.read_region(location=tuple(loc), level=1, size=(64, 48)) for loc in locations]
    assert batch.shape == (5, 48, 64, 3)
    np.testing.assert_array_equal(batch, np.stack(singles))


@pytest.mark.parametrize("backend", BACKENDS)
def test_thumbnail_maps_exactly_onto_level0(tiny_svs: Path, backend: str) -> None:
    with open_slide(tiny_svs, reader=backend) as slide:
        thumb = slide.thumbnail(mpp=3.0)
    assert thumb.downsample == pytest.approx(6.0)
    assert thumb.mpp == pytest.approx(3.0)
    assert thumb.image.shape == (128, 171, 3)  # ceil(768 / 6), ceil(1024 / 6)
    assert (thumb.image[:, -1] > 230).all()  # the sliver beyond the slide edge is glass


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_mpp_needs_override(no_mpp_tiff: Path, backend: str) -> None:
    with open_slide(no_mpp_tiff, reader=backend) as slide:
        assert slide.file_mpp is None
        with pytest.raises(MissingMppError, match=re.escape(str(no_mpp_tiff))):
            _ = slide.mpp
    with open_slide(no_mpp_tiff, reader=backend, mpp_override=0.25) as slide:
        assert (slide.mpp, slide.mpp_source, slide.file_mpp) == (0.25, "override", None)
        assert slide.vendor == "generic-tiff"


def test_override_that_disagrees_with_the_file_is_logged(
    tiny_svs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), open_slide(tiny_svs, mpp_override=0.25) as slide:
        assert slide.mpp == 0.25 and slide.file_mpp == pytest.approx(0.5)
    assert "differs from the file" in caplog.text


def test_invalid_override_is_rejected(tiny_svs: Path) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        open_slide(tiny_svs, mpp_override=0.0)


def _bad_files(root: Path) -> list[Path]:
    text = root / "notes.svs"
    text.write_text("this is not a slide\n")
    empty = root / "empty.svs"
    empty.write_bytes(b"")
    noise = root / "noise.tiff"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return [text, empty, noise]


@pytest.mark.parametrize("reader", ["auto", *BACKENDS])
def test_unreadable_files_raise_unsupported(tmp_path: Path, reader: str) -> None:
    for path in _bad_files(tmp_path):
        with pytest.raises(UnsupportedSlideError, match="unsupported or unreadable slide") as info:
            open_slide(path, reader=reader)
        assert str(path) in str(info.value)


def test_missing_file_and_unknown_reader(tiny_svs: Path, tmp_path: Path) -> None:
    with pytest.raises(SlideNotFoundError, match=r"absent\.svs"):
        open_slide(tmp_path / "absent.svs")
    with pytest.raises(ValueError, match="unknown slide reader"):
        open_slide(tiny_svs, reader="bioformats")  # type: ignore[arg-type]


def test_auto_uses_openslide_for_other_extensions(no_mpp_tiff: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "slide.vsf"
    shutil.copy(no_mpp_tiff, renamed)
    with open_slide(renamed) as slide:
        assert slide.backend == "openslide"


def test_auto_falls_back_when_cucim_cannot_decode(
    tiny_svs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("jpeg", "cucim"):
        class Refusing(READERS[name]):  # type: ignore[misc, valid-type]
            def _probe(self) -> None:
                raise UnsupportedSlideError(self.path, "cannot decode it: test")

        monkeypatch.setitem(READERS, name, Refusing)
    with open_slide(tiny_svs) as slide:
        assert slide.backend == "openslide"


def test_openslide_reopens_after_a_read_error(tiny_svs: Path, tmp_path: Path) -> None:
    """One corrupt tile must not poison the handle for the rest of the slide."""
    corrupt = tmp_path / "corrupt.svs"
    shutil.copy(tiny_svs, corrupt)
    with tifffile.TiffFile(corrupt) as tif:
        offset, count = tif.pages[0].dataoffsets[1], tif.pages[0].databytecounts[1]
    with corrupt.open("r+b") as handle:
        handle.seek(offset + count // 2)
        handle.write(bytes(count // 2 - 8))
    with OpenSlideReader(corrupt) as slide:
        with pytest.raises(SlideReadError, match=r"corrupt\.svs"):
            slide.read_region(location=(140, 10), level=0, size=(8, 8))
        good = slide.read_region(location=(10, 10), level=0, size=(8, 8))
    assert good.shape == (8, 8, 3)


def test_transparent_pixels_composite_on_white() -> None:
    rgba = np.array([[[10, 20, 30, 255], [0, 0, 0, 0], [0, 0, 200, 128]]], dtype=np.uint8)
    rgb = composite_on_white(Image.fromarray(rgba, mode="RGBA"))
    np.testing.assert_array_equal(rgb[0, :2], [[10, 20, 30], [255, 255, 255]])
    np.testing.assert_allclose(rgb[0, 2], [127, 127, 227], atol=1)


SCATTERED = [[0, 0], [512, 256], [64, 640], [900, 700], [256, 0]]
ROWS = [[0, 0], [32, 0], [64, 0], [96, 0], [992, 0], [96, 64], [128, 64], [160, 64], [64, 700], [96, 700]]


@pytest.mark.parametrize(("backend", "workers"),
                         [("openslide", None), ("cucim", 0), ("cucim", 2), ("jpeg", 1), ("jpeg", 2)])
@pytest.mark.parametrize(("points", "batch", "sizes"), [(SCATTERED, 2, [2, 2, 1]), (ROWS, 6, [6, 4])])
def test_iter_regions_batches_in_input_order(
    tiny_svs: Path, backend: str, workers: int | None, points: list, batch: int, sizes: list[int]
) -> None:
    """cuCIM decodes adjacent tiles as one wide region; the tiles must not change."""
    locations = np.array(points)
    with open_slide(tiny_svs, reader=backend, num_workers=workers) as slide:
        batches = list(slide.iter_regions(locations=locations, level=0, size=(32, 32), batch_size=batch))
        singles = [slide.read_region(location=tuple(loc), level=0, size=(32, 32)) for loc in locations]
    assert [len(b) for b in batches] == sizes
    np.testing.assert_array_equal(np.concatenate(batches), np.stack(singles))


def test_backends_agree_on_synthetic_cohort_slides(request: pytest.FixtureRequest) -> None:
    """raypath's own synthetic scans (odd sizes, non-power-of-two downsamples) read the same in both."""
    cohort = request.getfixturevalue("synth_cohort")
    slides = sorted((cohort / "slides").glob("*.svs"))
    assert slides
    for path in slides:
        with open_slide(path, reader="jpeg") as jpeg:
            geometry = (jpeg.level_dimensions, jpeg.level_downsamples, jpeg.mpp, jpeg.vendor)
            jpeg_region = jpeg.read_region(location=(300, 200), level=0, size=(64, 64))
        with open_slide(path, reader="cucim") as cucim, open_slide(path, reader="openslide") as openslide:
            assert geometry == (cucim.level_dimensions, pytest.approx(openslide.level_downsamples),
                                pytest.approx(openslide.mpp), "aperio")
            assert np.abs(jpeg_region.astype(int) - cucim.read_region(location=(300, 200), level=0,
                                                                     size=(64, 64))).max() <= 2
            assert cucim.level_dimensions == openslide.level_dimensions
            assert cucim.level_downsamples == pytest.approx(openslide.level_downsamples, rel=1e-6)
            assert cucim.mpp == pytest.approx(openslide.mpp) and cucim.vendor == openslide.vendor == "aperio"
            a, b = (s.read_region(location=(300, 200), level=0, size=(64, 64)) for s in (cucim, openslide))
            assert np.abs(a.astype(int) - b).max() <= 2
            # Levels at downsample ~4.004: OpenSlide places regions with sub-pixel interpolation,
            # cuCIM at the floored pixel, so coarse levels agree only on average.
            a, b = (s.thumbnail(mpp=8.0).image for s in (cucim, openslide))
            assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 2


@pytest.mark.parametrize(
    ("value", "mpp"), [("0.2527", 0.2527), (0.5, 0.5), ("", None), (None, None), ("n/a", None), ("0", None),
                       ("-0.25", None), ("nan", None)],
)
def test_parse_mpp_rejects_junk_metadata(value: object, mpp: float | None) -> None:
    assert parse_mpp(value) == mpp


def test_find_runs_breaks_on_row_gap_and_length() -> None:
    locations = np.array([[0, 0], [10, 0], [20, 0], [40, 0], [50, 0], [60, 10], [70, 10], [80, 10], [90, 10]])
    assert find_runs(locations, step=10, max_length=3) == [(0, 3), (3, 2), (5, 3), (8, 1)]
    assert find_runs(locations[:0], step=10, max_length=3) == []
    assert runs_by_length([(0, 3), (3, 2), (5, 3), (8, 1)]) == {3: [0, 5], 2: [3], 1: [8]}


def test_split_run_returns_tiles_left_to_right() -> None:
    tiles = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    wide = np.concatenate(list(tiles), axis=1)
    np.testing.assert_array_equal(split_run(wide, 3), tiles)
