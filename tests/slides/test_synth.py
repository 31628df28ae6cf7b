"""Synthetic cohort: colour maths, determinism, geometry truth, real SVS files both readers open."""

import dataclasses
import os

import numpy as np
import openslide
import pandas as pd
import pytest

from raypath.cli import main
from raypath.cohort import load_cohort
from raypath.config import ConfigError, load_config
from raypath.slides.synth import PROFILES, SynthError, plan_cohort, true_transform, write_cohort
from raypath.slides.synth.config import SynthConfig
from raypath.slides.synth.render import ScanGeometry, apply_scanner, render_block
from raypath.slides.synth.stain import TISSUE_STAINS, hed_to_rgb, rgb_to_hed
from raypath.slides.synth.tiff import aperio_description, level_dimensions
from raypath.slides.synth.tissue import render_stains


def test_hed_round_trip():
    rgb = np.random.default_rng(0).integers(1, 256, (100, 3))
    np.testing.assert_allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, atol=1e-6)


def test_scanner_matrix_equals_explicit_hed_chain():
    profile = dataclasses.replace(PROFILES["hamamatsu-s360"], noise_sigma=0.0, gamma=1.0, brightness=1.0)
    stains = np.random.default_rng(1).uniform(0.0, 0.6, (64, 2)).astype(np.float32)
    rgb = hed_to_rgb(np.c_[stains, np.zeros(64)], stain_matrix=TISSUE_STAINS)
    hed = rgb_to_hed(rgb) * np.array(profile.stain_scale) + np.array(profile.stain_bias)
    expected = np.clip(np.rint(hed_to_rgb(hed)), 0, 255)
    got = apply_scanner(stains, profile, np.random.default_rng(0))
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_tissue_renders_the_same_in_any_block(synth_small):
    plan = plan_cohort(SynthConfig(**synth_small))[0]
    blob = plan.specimen.tissue.blobs[0]
    xs, ys = np.arange(300) * 0.5 + blob.cx - 75, np.arange(200) * 0.5 + blob.cy - 50
    whole = render_stains(plan.specimen.tissue, xs, ys)
    part = render_stains(plan.specimen.tissue, xs[120:250], ys[30:90])
    np.testing.assert_allclose(part, whole[30:90, 120:250], atol=1e-5)
    assert whole[..., 0].max() > 0.5  # nuclei are drawn


def test_render_is_deterministic_and_scanners_differ(synth_small):
    scans = plan_cohort(SynthConfig(**synth_small))
    first = [s for s in scans if s.specimen.specimen_id == "S0000"]
    kwargs = {"x0": 300, "y0": 300, "width": 96, "height": 64}
    a = render_block(
        tissue=first[0].specimen.tissue,
        profile=first[0].scanner,
        geometry=first[0].geometry,
        noise_seed=first[0].noise_seed,
        **kwargs,
    )
    again = render_block(
        tissue=first[0].specimen.tissue,
        profile=first[0].scanner,
        geometry=first[0].geometry,
        noise_seed=first[0].noise_seed,
        **kwargs,
    )
    other = render_block(
        tissue=first[1].specimen.tissue,
        profile=first[1].scanner,
        geometry=first[1].geometry,
        noise_seed=first[1].noise_seed,
        **kwargs,
    )
    np.testing.assert_array_equal(a, again)
    assert np.abs(a.astype(int) - other).mean() > 5


def test_true_transform_maps_the_same_tissue_point(synth_small):
    a = ScanGeometry(mpp=0.25, field_um=(800, 600), rotation_deg=6.0, shift_um=(12.0, -30.0))
    r = ScanGeometry(mpp=0.5, field_um=(800, 600), rotation_deg=-3.0, shift_um=(-20.0, 8.0))
    scan = dataclasses.replace(plan_cohort(SynthConfig(**synth_small))[0], geometry=a)
    reference = dataclasses.replace(scan, geometry=r)
    transform = true_transform(scan, reference)
    points = np.array([[100.0, 200.0], [2500.0, 1700.0], [1600.0, 1200.0]])
    mapped = transform.apply(points)
    np.testing.assert_allclose(
        np.c_[a.pixel_to_tissue(*points.T)], np.c_[r.pixel_to_tissue(*mapped.T)], atol=1e-9
    )
    assert transform.scale == pytest.approx(0.5) and transform.rotation_deg == pytest.approx(-9.0)


def test_pyramid_levels_and_aperio_description():
    assert level_dimensions((40000, 30000)) == [(40000, 30000), (10000, 7500), (2500, 1875), (625, 468)]
    assert level_dimensions((1200, 1000)) == [(1200, 1000)]
    text = aperio_description(dimensions=(4000, 3000), level=None, mpp=0.2512, quality=80)
    assert text.startswith("Aperio Image Library") and "|AppMag = 40|MPP = 0.2512" in text


def test_cohort_slides_open_in_openslide_and_cucim(synth_cohort):
    cucim = pytest.importorskip("cucim")
    truth = pd.read_csv(synth_cohort / "truth.csv")
    for row in truth.itertuples():
        path = str(synth_cohort / "slides" / f"{row.slide_id}.svs")
        slide = openslide.OpenSlide(path)
        assert slide.properties["openslide.vendor"] == "aperio"
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(row.mpp, abs=1e-4)
        assert slide.dimensions == (row.width, row.height)
        image = cucim.CuImage(path)
        assert image.resolutions["level_dimensions"] == slide.level_dimensions
        centre = (row.width // 2 - 64, row.height // 2 - 48)
        region = np.asarray(slide.read_region(centre, 0, (128, 96)).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(image.read_region(centre, (128, 96), 0))[..., :3], region)
        assert region.std() > 5  # not blank


def test_pyramid_has_levels_and_stays_consistent(tmp_path, synth_small):
    config = SynthConfig(
        **{
            **synth_small,
            "specimens": 1,
            "scanners": ["leica-at2"],
            "field_um": (600.0, 560.0),
            "magnification": 40,
        }
    )
    write_cohort(config, tmp_path)
    slide = openslide.OpenSlide(str(next((tmp_path / "slides").glob("*.svs"))))
    assert slide.level_count == 2 and slide.level_downsamples[1] == pytest.approx(4.0, rel=0.01)
    full = np.asarray(slide.read_region((0, 0), 0, (1024, 1024)).convert("RGB"), dtype=np.float32)
    low = np.asarray(slide.read_region((0, 0), 1, (256, 256)).convert("RGB"), dtype=np.float32)
    expected = full.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(low - expected).mean() < 4  # JPEG twice, nothing else


def test_cohort_tables(synth_cohort, synth_small):
    cohort = load_cohort(synth_cohort / "manifest.csv", synth_cohort / "labels.csv")
    assert len(cohort.manifest) == 4 and set(cohort.manifest["scanner"]) == set(synth_small["scanners"])
    assert sorted(cohort.labels["label"]) == [0, 1]
    truth = pd.read_csv(synth_cohort / "truth.csv").set_index("slide_id")
    references = truth[truth.index == truth["reference_slide_id"]]
    assert (references["scanner"] == "aperio-gt450").all()
    np.testing.assert_allclose(references[["rotation_deg", "tx", "ty"]], 0, atol=1e-9)
    positive = truth[truth["label"] == 1]
    assert (positive["tumour_burden"] > 0.05).all() and (
        truth[truth["label"] == 0]["tumour_burden"] == 0
    ).all()


def test_rerun_skips_existing_and_refuses_other_config(synth_cohort, synth_small):
    slide = next((synth_cohort / "slides").glob("*.svs"))
    before = os.stat(slide).st_mtime_ns
    write_cohort(SynthConfig(**synth_small), synth_cohort)
    assert os.stat(slide).st_mtime_ns == before
    with pytest.raises(SynthError, match=r"different config.*seed"):
        write_cohort(SynthConfig(**{**synth_small, "seed": 8}), synth_cohort)


def test_confounding_ties_train_scanner_to_label():
    config = SynthConfig(
        specimens=12,
        scanners=["aperio-gt450", "leica-at2", "philips-ultrafast"],
        confounding=1.0,
        test_fraction=0.5,
        seed=3,
    )
    scans = plan_cohort(config)
    by_specimen: dict[str, list] = {}
    for scan in scans:
        by_specimen.setdefault(scan.specimen.specimen_id, []).append(scan)
    for group in by_specimen.values():
        specimen = group[0].specimen
        if specimen.split == "test":
            assert len(group) == 3
        else:
            assert [s.scanner.name for s in group] == [config.scanners[specimen.label % 3]]
    assert sum(s.split == "test" for s in {g[0].specimen for g in by_specimen.values()}) == 6
    unconfounded = plan_cohort(config.model_copy(update={"confounding": 0.0}))
    assert len(unconfounded) == 36


def test_multiclass_and_survival_depend_on_biology():
    config = SynthConfig(specimens=40, classes=4, positive_fraction=0.75, field_um=(400.0, 400.0), seed=1)
    specimens = {s.specimen.specimen_id: s.specimen for s in plan_cohort(config)}.values()
    assert sorted({s.label for s in specimens}) == [0, 1, 2, 3]
    assert all(s.tissue.grade == s.label for s in specimens)
    hazardous = np.median([s.time for s in specimens if s.label == 3])
    assert hazardous < np.median([s.time for s in specimens if s.label == 0])


def test_config_validation_and_cli(tmp_path):
    with pytest.raises(ConfigError, match="unknown scanner profiles"):
        load_config(SynthConfig, overrides=["scanners=[nikon-9000]"])
    with pytest.raises(ConfigError, match="mpp given for scanners not in"):
        load_config(SynthConfig, overrides=["mpp.leica-at2=0.25"])
    code = main(
        [
            "synth",
            "--out",
            str(tmp_path),
            "--specimens",
            "1",
            "--scanners",
            "leica-at2",
            "--field-um",
            "300",
            "260",
            "--mpp",
            "leica-at2=0.5",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    assert manifest["slide_id"].tolist() == ["S0000-leica-at2"]
    assert openslide.OpenSlide(str(tmp_path / manifest["path"][0])).dimensions == (600, 520)


def test_a_block_of_bare_glass_is_rendered_without_tissue_and_exactly_as_zero_stains(synth_small):
    """Full-size slides are mostly glass: such blocks skip the tissue model, with the same pixels."""
    scan = plan_cohort(SynthConfig(**synth_small))[0]
    kwargs = {"x0": 0, "y0": 0, "width": 64, "height": 48}  # the slide's corner
    tx, ty = scan.geometry.pixel_to_tissue(np.arange(-8.0, 72.0)[None], np.arange(-8.0, 56.0)[:, None])
    box = (np.arange(tx.min(), tx.max(), 0.5), np.arange(ty.min(), ty.max(), 0.5))
    assert not render_stains(scan.specimen.tissue, *box).any()  # ... is glass, margin included
    glass = render_block(tissue=scan.specimen.tissue, profile=scan.scanner, geometry=scan.geometry,
                         noise_seed=scan.noise_seed, **kwargs)
    rng = np.random.default_rng([scan.noise_seed, kwargs["x0"], kwargs["y0"]])
    expected = apply_scanner(np.zeros((48, 64, 2), np.float32), scan.scanner, rng)
    np.testing.assert_array_equal(glass, expected)
