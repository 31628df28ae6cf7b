"""Fixtures of the reliability suite (issue 8): a good cohort and a cohort of deliberately bad slides.

The slides and faults are built by `faultkit`, manifests and run settings by `cohortkit`.
"""

from pathlib import Path

import pytest
from cohortkit import (
    GOOD_SLIDES,
    OVERRIDE_ID,
    FaultyCohort,
    extract_config,
    good_slides,
    manifest_row,
    write_manifest,
)
from faultkit import (
    aperio_header,
    corrupt_tile,
    decoder_crashing,
    tissue_image,
    truncate,
    write_blank_slide,
    write_png,
    write_text_svs,
    write_tiff_pyramid,
    write_tissue_slide,
    write_zero_bytes,
)

import raypath.extract.run as extract_run
from raypath.extract.config import ExtractConfig
from raypath.extract.run import run_extraction


@pytest.fixture(scope="session")
def good_cohort(tmp_path_factory: pytest.TempPathFactory) -> FaultyCohort:
    """Six good slides only: for resume, rerun and keyed-location cases."""
    root = tmp_path_factory.mktemp("good-cohort")
    slides = good_slides(root / "slides", 6)
    rows = [manifest_row(slide_id, path, index=i) for i, (slide_id, path) in enumerate(slides)]
    return FaultyCohort(root=root, manifest=write_manifest(root / "manifest.csv", rows),
                        good=[s for s, _ in slides])


@pytest.fixture(scope="session")
def faulty_cohort(tmp_path_factory: pytest.TempPathFactory) -> FaultyCohort:
    """18 good slides + one truncated + one with a corrupt tile (case 1), a decoder-crashing slide
    (case 2), no-tissue / tiny / single-level / mpp-less slides (case 6) and non-slides (case 7)."""
    root = tmp_path_factory.mktemp("faulty-cohort")
    slides_dir = root / "slides"
    slides = good_slides(slides_dir, GOOD_SLIDES)
    donor = slides[0][1]
    image = tissue_image(512, seed=5)
    faults: dict[str, tuple[Path, str]] = {
        "truncated": (truncate(donor, slides_dir / "truncated.svs"), "case 1: truncated file"),
        "corrupt-tile": (corrupt_tile(donor, slides_dir / "corrupt-tile.svs"), "case 1: one bad tile"),
        "crashes-reader": (decoder_crashing(donor, slides_dir / "crash.svs"), "case 2: kills decoder"),
        "no-tissue": (write_blank_slide(slides_dir / "blank.svs"), "case 6: blank glass"),
        "tiny": (write_tiff_pyramid(slides_dir / "tiny.svs", tissue_image(160, seed=2), levels=2,
                                    description=aperio_header(160, 160, mpp=0.5)), "case 6: < 1 tile"),
        "single-level": (write_tissue_slide(slides_dir / "flat.svs", seed=3, size=512),
                         "case 6: not pyramidal"),
        "aperio-no-mpp": (write_tiff_pyramid(slides_dir / "no-mpp.svs", image, levels=2,
                                             description=aperio_header(512, 512, mpp=None)),
                          "case 6: no MPP field"),
        "generic-no-mpp": (write_tiff_pyramid(slides_dir / "generic.tiff", image, levels=2, description=None),
                           "case 6: generic TIFF"),
        "text-svs": (write_text_svs(slides_dir / "text.svs"), "case 7: text file"),
        "zero-bytes": (write_zero_bytes(slides_dir / "empty.svs"), "case 7: empty file"),
        "png-picture": (write_png(slides_dir / "picture.png"), "case 7: unsupported format"),
    }
    rows = [manifest_row(slide_id, path, index=i) for i, (slide_id, path) in enumerate(slides)]
    for offset, (slide_id, (path, _)) in enumerate(faults.items(), start=len(rows)):
        rows.append(manifest_row(slide_id, path, index=offset))
    # The same mpp-less generic TIFF, with the pixel size given in the manifest: must succeed.
    rows.append(manifest_row(OVERRIDE_ID, slides_dir / "generic.tiff", index=len(rows), mpp=0.5))
    return FaultyCohort(root=root, manifest=write_manifest(root / "manifest.csv", rows),
                        good=[s for s, _ in slides], faults={s: why for s, (_, why) in faults.items()})


@pytest.fixture(scope="session")
def baseline_run(local_ray, good_cohort, tmp_path_factory) -> ExtractConfig:
    """An uninterrupted extraction of the good cohort: the reference for resume and rerun cases."""
    config = extract_config(good_cohort.manifest, tmp_path_factory.mktemp("baseline"), run_id="baseline")
    summary = run_extraction(config)
    assert summary.exit_code == 0 and summary.done == len(good_cohort.good)
    return config


@pytest.fixture
def no_extraction_work(monkeypatch):
    """Fail the test if the extraction builds an encoder or connects to Ray (bad input must stop it first)."""
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("extraction started work despite bad input")

    monkeypatch.setattr(extract_run, "describe_encoders", forbidden)
    monkeypatch.setattr(extract_run, "connect", forbidden)
