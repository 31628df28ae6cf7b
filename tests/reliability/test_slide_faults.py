"""Issue 8, cases 1, 2, 6 and 7 at the reader level (no Ray): each damaged file fails the way the
extraction job relies on, with an error that names the file."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cohortkit import FaultyCohort
from faultkit import level0_tiles, tissue_tile_index

from raypath.slides import (
    MissingMppError,
    SlideError,
    SlideReadError,
    UnsupportedSlideError,
    open_slide,
    read_tiles,
    tile_slide,
)
from raypath.slides.config import TilingConfig

READERS = ("auto", "openslide")


def slide_path(cohort: FaultyCohort, slide_id: str) -> Path:
    manifest = pd.read_csv(cohort.manifest).set_index("slide_id")
    return Path(manifest.loc[slide_id, "path"])


@pytest.mark.parametrize("slide_id", ["text-svs", "zero-bytes", "png-picture"])
@pytest.mark.parametrize("reader", READERS)
def test_non_slides_are_unsupported_or_unreadable(faulty_cohort, slide_id, reader):
    path = slide_path(faulty_cohort, slide_id)
    with pytest.raises(UnsupportedSlideError, match="unsupported or unreadable slide") as error:
        open_slide(path, reader=reader)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("reader", READERS)
def test_reading_a_truncated_slide_raises(faulty_cohort, reader):
    """Half a file may still open (its first IFDs are intact), but its tissue never reads as pixels."""
    path = slide_path(faulty_cohort, "truncated")
    with pytest.raises(SlideError, match=path.name), open_slide(path, reader=reader) as slide:
        read_tiles(slide, tile_slide(slide, TilingConfig()))


@pytest.mark.parametrize("reader", READERS)
def test_a_corrupt_jpeg_tile_raises_instead_of_returning_pixels(faulty_cohort, reader):
    path = slide_path(faulty_cohort, "corrupt-tile")
    x, y = level0_tiles(path).location(tissue_tile_index(path))
    with open_slide(path, reader=reader) as slide, pytest.raises(SlideReadError, match=path.name):
        slide.read_region(location=(x + 8, y + 8), level=0, size=(32, 32))


@pytest.mark.parametrize("slide_id", ["aperio-no-mpp", "generic-no-mpp"])
def test_missing_mpp_fails_clearly_unless_overridden(faulty_cohort, slide_id):
    path = slide_path(faulty_cohort, slide_id)
    with open_slide(path) as slide, pytest.raises(MissingMppError, match="'mpp' column"):
        _ = slide.mpp
    with open_slide(path, mpp_override=0.5) as slide:
        assert slide.mpp == 0.5 and slide.mpp_source == "override"


def test_single_level_and_tiny_slides_open_and_say_what_they_are(faulty_cohort):
    with open_slide(slide_path(faulty_cohort, "single-level")) as slide:
        assert not slide.is_pyramidal and slide.level_count == 1
    with open_slide(slide_path(faulty_cohort, "tiny")) as slide:
        assert slide.is_pyramidal and len(tile_slide(slide, TilingConfig())) == 0


@pytest.mark.parametrize("reader", READERS)
def test_a_tile_that_would_crash_the_decoder_is_refused_cleanly(faulty_cohort, reader):
    """Case 2 through raypath: the frame header's 60000x60000 px is caught before any decoding."""
    path = slide_path(faulty_cohort, "crashes-reader")
    with open_slide(path, reader=reader) as slide, pytest.raises(SlideReadError, match=path.name) as error:
        read_tiles(slide, tile_slide(slide, TilingConfig()))
    assert "60000x60000" in str(error.value)


@pytest.mark.slow
def test_the_crafted_slide_really_kills_the_raw_decoder(faulty_cohort):
    """Case 2's premise: cuCIM itself, without raypath's tile check, dies on this slide (SIGSEGV),
    so the refusal above is what stands between the file and a process death."""
    code = ("import sys; from cucim import CuImage;"
            "CuImage(sys.argv[1]).read_region((0, 0), (512, 512), 0)")
    result = subprocess.run([sys.executable, "-c", code, str(slide_path(faulty_cohort, "crashes-reader"))],
                            capture_output=True, timeout=120)
    assert result.returncode < 0, f"expected a signal death, got {result.returncode}: {result.stderr[-500:]}"
