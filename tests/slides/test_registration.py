"""Registration: transforms, phase correlation, recovery of known rotations/shifts, tile pairs.

Bounds reached (asserted below): on synthetic scans the thumbnail estimate maps level-0 points within
1.5 working-thumbnail pixels (x working mpp / reference level-0 mpp) of the truth at every tissue
point checked, and the angle within 0.5 degrees; the fine stage (patches at 2 um/px) within a
quarter of its pixel.
"""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from raypath.cli import main
from raypath.slides.config import TilingConfig
from raypath.slides.reader import open_slide
from raypath.slides.registration import (
    COLUMNS,
    Scan,
    ScanImage,
    Transform,
    choose_references,
    estimate_rigid,
    estimate_transform,
    load_registration,
    register_specimen,
    tile_pairs,
)
from raypath.slides.registration.config import RefineConfig, RegisterConfig
from raypath.slides.registration.estimate import phase_correlation, working_mpp
from raypath.slides.registration.grid import map_grid
from raypath.slides.registration.refine import fit_rigid, trimmed_fit
from raypath.slides.tiling import TileGrid

BOUND_WORK_PX = 1.5
THUMB_MPP = 4.0


def test_transform_inverse_and_composition():
    t = Transform(rotation_deg=12.0, tx=30.0, ty=-7.0, scale=0.5)
    points = np.array([[0.0, 0.0], [100.0, 50.0], [-20.0, 400.0]])
    np.testing.assert_allclose(t.inverse().apply(t.apply(points)), points, atol=1e-9)
    u = Transform(rotation_deg=-40.0, tx=1.0, ty=2.0, scale=3.0)
    np.testing.assert_allclose(t.then(u).apply(points), u.apply(t.apply(points)), atol=1e-9)
    assert t.then(u).scale == pytest.approx(1.5)


def blobs_image(seed: int = 0, shape=(120, 160)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.float32)
    for _ in range(12):
        y, x = rng.uniform(30, shape[0] - 30), rng.uniform(30, shape[1] - 30)
        image[int(y), int(x)] = rng.uniform(1, 3)
    return ndimage.gaussian_filter(image, 4) * 100


def test_phase_correlation_recovers_subpixel_shift():
    image = blobs_image()
    moved = ndimage.shift(image, (-3.4, 5.25), order=3)
    shift, _ = phase_correlation(moved, image)
    np.testing.assert_allclose(shift, [5.25, -3.4], atol=0.3)


def test_estimate_rigid_on_pure_numpy_images():
    moving = blobs_image(1)
    theta, u_true = 7.0, np.array([6.0, -4.0])
    rotation = Transform(rotation_deg=theta).matrix
    inverse = np.linalg.inv(rotation)
    # fixed(k) = moving(R^-1 (k - u)) in (x, y); affine_transform works in (row, col)
    matrix = inverse[::-1, ::-1]
    offset = -(matrix @ u_true[::-1])
    fixed = ndimage.affine_transform(moving, matrix, offset=offset, order=1)
    angle, u, score = estimate_rigid(fixed, moving, max_rotation_deg=10.0)
    assert angle == pytest.approx(theta, abs=0.3)
    points = np.array([[40.0, 40.0], [120.0, 80.0]])
    np.testing.assert_allclose(
        points @ Transform(rotation_deg=angle).matrix.T + u, points @ rotation.T + u_true, atol=BOUND_WORK_PX
    )
    assert score > 0.9


def load_thumbnail(path) -> ScanImage:
    with open_slide(path) as slide:
        thumb = slide.thumbnail(mpp=THUMB_MPP)
        return ScanImage(image=thumb.image, image_mpp=slide.mpp * thumb.downsample, level0_mpp=slide.mpp)


def test_recovers_known_transforms_of_synthetic_scans(synth_cohort):
    truth = pd.read_csv(synth_cohort / "truth.csv")
    moving_rows = truth[truth["slide_id"] != truth["reference_slide_id"]]
    assert len(moving_rows) == 2
    for row in moving_rows.itertuples():
        reference = load_thumbnail(synth_cohort / "slides" / f"{row.reference_slide_id}.svs")
        moving = load_thumbnail(synth_cohort / "slides" / f"{row.slide_id}.svs")
        estimate, score = estimate_transform(reference=reference, moving=moving)
        true = Transform(rotation_deg=row.rotation_deg, tx=row.tx, ty=row.ty, scale=row.scale)
        grid = np.stack(
            np.meshgrid(np.linspace(0.25, 0.75, 5) * row.width, np.linspace(0.25, 0.75, 5) * row.height), -1
        ).reshape(-1, 2)
        error = np.linalg.norm(estimate.apply(grid) - true.apply(grid), axis=1).max()
        bound = BOUND_WORK_PX * working_mpp(reference, moving, max_side=1024) / reference.level0_mpp
        assert error <= bound, f"{row.slide_id}: {error:.1f} level-0 px > {bound:.1f}"
        assert estimate.rotation_deg == pytest.approx(row.rotation_deg, abs=0.5)
        assert estimate.scale == pytest.approx(row.scale, rel=1e-3)
        assert score > 0.8


def test_register_cli_writes_parquet(local_ray, synth_cohort, tmp_path):
    out = tmp_path / "registration.parquet"
    args = ["register", "--manifest", str(synth_cohort / "manifest.csv"), "--out", str(out),
            "--thumbnail-mpp", "8"]
    assert main(args) == 0
    table = pd.read_parquet(out)
    assert tuple(table.columns) == COLUMNS
    registration = load_registration(out)
    reference_id, identity = registration["S0000-aperio-gt450"]
    assert reference_id == "S0000-aperio-gt450" and identity == Transform()
    assert registration["S0000-hamamatsu-s360"][0] == "S0000-aperio-gt450"


def test_fit_rigid_is_exact_and_the_trimmed_fit_drops_disagreeing_points():
    rng = np.random.default_rng(0)
    truth = Transform(rotation_deg=3.7, tx=120.0, ty=-45.0, scale=0.8)
    moving = rng.uniform(0, 5000, (12, 2))
    reference = truth.apply(moving)
    fitted = fit_rigid(moving, reference, scale=0.8)
    np.testing.assert_allclose(fitted.apply(moving), reference, atol=1e-9)
    corrupted = reference.copy()
    corrupted[[2, 7]] += [[300.0, -80.0], [-25.0, 40.0]]  # two patches matched the wrong tissue
    fitted, kept = trimmed_fit(moving, corrupted, scale=0.8, tolerance=4.0, min_points=4)
    assert kept.tolist() == [i not in (2, 7) for i in range(12)]
    np.testing.assert_allclose(fitted.apply(moving), reference, atol=1e-9)
    assert trimmed_fit(moving[:3], reference[:3], scale=0.8, tolerance=4.0, min_points=4) is None


def truth_error_um(row: dict, truth: pd.Series, reference_mpp: float) -> float:
    """Largest distance (microns) between estimated and true mapping over the central field."""
    estimate = Transform(rotation_deg=row["rotation_deg"], tx=row["tx"], ty=row["ty"], scale=row["scale"])
    true = Transform(rotation_deg=truth.rotation_deg, tx=truth.tx, ty=truth.ty, scale=truth.scale)
    points = np.stack(np.meshgrid(np.linspace(0.3, 0.7, 5) * truth.width,
                                  np.linspace(0.3, 0.7, 5) * truth.height), -1).reshape(-1, 2)
    return float(np.linalg.norm(estimate.apply(points) - true.apply(points), axis=1).max() * reference_mpp)


def register_synthetic(cohort, specimen: str, **refine) -> dict:
    truth = pd.read_csv(cohort / "truth.csv").set_index("slide_id")
    scans = {s: Scan(slide_id=s, path=str(cohort / "slides" / f"{s}.svs"))
             for s in truth.index[truth["specimen_id"] == specimen]}
    reference_id = truth.loc[next(iter(scans)), "reference_slide_id"]
    moving = [scan for s, scan in scans.items() if s != reference_id]
    config = RegisterConfig(refine=RefineConfig(**refine))
    rows = register_specimen(specimen, reference=scans[reference_id], moving=moving, config=config)
    assert [r["slide_id"] for r in rows] == [reference_id, *(m.slide_id for m in moving)]
    row = rows[1]
    error = truth_error_um(row, truth.loc[row["slide_id"]], truth.loc[reference_id, "mpp"])
    return {**row, "error_um": error}


FINE_BOUND_UM = 0.25 * 2.0
"""A quarter of a fine-stage pixel (2 um/px): sub-pixel phase correlation over several patches."""


@pytest.mark.parametrize("specimen", ["S0000", "S0001"])
def test_the_fine_stage_registers_within_a_fraction_of_its_pixel(synth_cohort, specimen):
    refined = register_synthetic(synth_cohort, specimen)
    assert refined["error_um"] <= FINE_BOUND_UM, refined
    assert refined["regions"] >= 4 and not refined["weak"]
    assert 0 <= refined["residual_um"] <= FINE_BOUND_UM  # the residual is measured and recorded


def test_a_scan_the_fine_stage_cannot_refine_keeps_its_thumbnail_estimate_and_is_flagged(synth_cohort):
    row = register_synthetic(synth_cohort, "S0000", min_regions=64)  # more patches than the tissue holds
    assert row["weak"] and row["regions"] == 0 and np.isnan(row["residual_um"])
    assert row["error_um"] <= BOUND_WORK_PX * 4.0 * np.sqrt(2)  # the thumbnail estimate's bound (4 um/px)
    disabled = register_synthetic(synth_cohort, "S0000", enabled=False)
    assert not disabled["weak"] and np.isnan(disabled["residual_um"])


def test_choose_references():
    manifest = pd.DataFrame(
        {
            "slide_id": ["a1", "a2", "b1"],
            "specimen_id": ["A", "A", "B"],
            "scanner": ["zeiss", "leica", "zeiss"],
        }
    )
    assert choose_references(manifest) == {"A": "a2", "B": "b1"}
    assert choose_references(manifest, reference_scanner="zeiss") == {"A": "a1", "B": "b1"}


def grid(n: int, side: float, origin=(0.0, 0.0)) -> np.ndarray:
    return np.stack(np.meshgrid(np.arange(n) * side, np.arange(n) * side), -1).reshape(-1, 2) + origin


def test_tile_pairs_identity_and_shift():
    a = grid(3, 100)
    pairs = tile_pairs(
        coords_a=a, coords_b=a[::-1], transform_a=Transform(), transform_b=Transform(), extent_l0=100
    )
    np.testing.assert_array_equal(pairs, np.c_[np.arange(9), np.arange(9)[::-1]])
    # B's frame is shifted by 40 px: its tile at (60, 0) shows A's tile at (100, 0)
    b = grid(3, 100, origin=(-40.0, 0.0))
    pairs = tile_pairs(
        coords_a=a, coords_b=b, transform_a=Transform(), transform_b=Transform(tx=40.0), extent_l0=100
    )
    np.testing.assert_array_equal(pairs, np.c_[np.arange(9), np.arange(9)])
    sparse = grid(3, 200)  # tiles 200 px apart: a 60 px misregistration leaves no tile within 50 px
    too_far = tile_pairs(
        coords_a=sparse,
        coords_b=sparse,
        transform_a=Transform(),
        transform_b=Transform(tx=60.0),
        extent_l0=100,
    )
    assert len(too_far) == 0


def test_tile_pairs_mutual_nearest_and_scale():
    a = np.array([[0.0, 0.0], [100.0, 0.0]])
    b = np.array([[10.0, 0.0]])  # nearest to both A tiles' centres is the single B tile: keep only A[0]
    pairs = tile_pairs(
        coords_a=a, coords_b=b, transform_a=Transform(), transform_b=Transform(), extent_l0=100
    )
    np.testing.assert_array_equal(pairs, [[0, 0]])
    # a 0.25 mpp scan (200 px tiles) against a 0.5 mpp reference (100 px tiles), rotated 90 degrees
    fine = np.array([[0.0, 0.0], [200.0, 0.0]])
    to_reference = Transform(rotation_deg=90.0, scale=0.5, tx=100.0)
    reference = np.array([[0.0, 0.0], [0.0, 100.0]])
    pairs = tile_pairs(
        coords_a=fine,
        coords_b=reference,
        transform_a=to_reference,
        transform_b=Transform(),
        extent_l0=(200, 100),
    )
    np.testing.assert_array_equal(pairs, [[0, 0], [1, 1]])
    empty = tile_pairs(
        coords_a=np.zeros((0, 2)),
        coords_b=reference,
        transform_a=Transform(),
        transform_b=Transform(),
        extent_l0=100,
    )
    assert empty.shape == (0, 2)


def reference_grid_of(coords: np.ndarray, extent: int) -> TileGrid:
    return TileGrid(coords=coords, extent_l0=extent, level=0, read_size=extent, tile_px=extent,
                    target_mpp=0.5, tissue_fraction=np.ones(len(coords), np.float32))


def test_map_grid_centres_moving_tiles_on_the_reference_tiles():
    reference = reference_grid_of(grid(6, 100, origin=(200.0, 200.0)).astype(np.int64), 100)
    # the moving scan: 0.25 mpp (tiles of 200 px) rotated 7 degrees and shifted against a 0.5 mpp reference
    to_reference = Transform(rotation_deg=7.0, tx=-150.0, ty=80.0, scale=0.5)
    own = reference_grid_of(np.zeros((0, 2), np.int64), 200)
    mask = np.ones((40, 40), dtype=bool)
    mask[:, 30:] = False  # no tissue on the moving scan's right quarter (x >= 1500 level-0 px)
    moved = map_grid(reference, transform=to_reference, own=own, mask=mask, mask_downsample=50.0,
                     dimensions=(2000, 1400), min_tissue_fraction=0.5)
    centres = to_reference.apply(moved.coords + 100.0)
    nearest = np.linalg.norm(centres[:, None] - (reference.coords + 50.0)[None], axis=2).min(axis=1)
    assert nearest.max() <= 0.5 * np.sqrt(2) * to_reference.scale  # rounding to whole moving pixels only
    assert moved.extent_l0 == 200 and 0 < len(moved) < len(reference)  # off the slide or off the tissue
    assert np.all(moved.coords >= 0) and np.all(moved.coords + 200 <= [2000, 1400])
    assert np.all(moved.coords[:, 0] + 100 <= 1500)  # at least half on tissue: centre left of x = 1500
    everywhere = to_reference.inverse().apply(reference.coords + 50.0)
    assert np.any((everywhere[:, 0] > 1500) & (everywhere[:, 0] < 1900))  # ... so some were dropped for it


def test_the_tiling_hash_tells_the_grids_apart_and_keeps_per_scan_stores_where_they_were():
    per_scan, reference = TilingConfig(), TilingConfig(grid="reference")
    before = hashlib.sha256(json.dumps(per_scan.model_dump(exclude={"reader", "grid"}),
                                       sort_keys=True).encode()).hexdigest()[:12]
    assert per_scan.cache_key() == before and reference.cache_key() != before
