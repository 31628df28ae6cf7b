"""Tiling plans on hand-made masks (exact coordinates), plus tile reads through both readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from raypath.slides.config import TilingConfig
from raypath.slides.reader import open_slide
from raypath.slides.tiling import (
    TileGrid,
    choose_level,
    even_subsample,
    iter_tiles,
    plan_tiles,
    read_tiles,
    resize_tiles,
    tile_slide,
    tissue_fractions,
)


def _plan(
    mask: np.ndarray,
    *,
    dimensions: tuple[int, int] = (1000, 700),
    mask_downsample: float = 10.0,
    level_downsamples: tuple[float, ...] = (1.0,),
    slide_mpp: float = 0.5,
    **config: object,
) -> TileGrid:
    settings = {"tile_px": 100, "target_mpp": 0.5, **config}
    return plan_tiles(
        mask=mask, mask_downsample=mask_downsample, dimensions=dimensions,
        level_downsamples=level_downsamples, slide_mpp=slide_mpp, config=TilingConfig(**settings),
    )


def test_exact_coordinates_row_major() -> None:
    mask = np.zeros((70, 100), dtype=bool)
    mask[0:20, 0:30] = True  # level-0 box x 0..300, y 0..200
    grid = _plan(mask)
    expected = [[0, 0], [100, 0], [200, 0], [0, 100], [100, 100], [200, 100]]
    np.testing.assert_array_equal(grid.coords, expected)
    assert grid.coords.dtype == np.int64
    np.testing.assert_array_equal(grid.tissue_fraction, np.ones(6, dtype=np.float32))
    assert (grid.level, grid.read_size, grid.extent_l0, grid.needs_resize) == (0, 100, 100, False)


@pytest.mark.parametrize(("minimum", "kept"), [(0.5, 1), (0.51, 0)])
def test_min_tissue_fraction_boundary_is_inclusive(minimum: float, kept: int) -> None:
    mask = np.zeros((70, 100), dtype=bool)
    mask[0:10, 0:5] = True  # exactly the left half of tile (0, 0)
    grid = _plan(mask, min_tissue_fraction=minimum)
    assert len(grid) == kept


def test_tissue_fraction_is_exact_for_sub_pixel_boxes() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = True
    coords = np.array([[5, 0], [5, 5], [0, 0], [30, 30], [35, 35]])
    fractions = tissue_fractions(mask, mask_downsample=10.0, coords=coords, extent=10)
    np.testing.assert_allclose(fractions, [0.5, 0.25, 1.0, 0.0, 0.0])  # last box half outside the mask


@pytest.mark.parametrize(
    ("slide_mpp", "downsamples", "tolerance", "level"),
    [
        (0.25, (1.0, 2.0, 4.0, 8.0), 0.1, 1),
        (0.25, (1.0, 4.0, 16.0), 0.1, 0),
        (0.5, (1.0, 2.0, 4.0), 0.1, 0),
        (0.24, (1.0, 2.0002, 4.0004), 0.1, 1),
        (0.263, (1.0, 2.0, 4.0), 0.1, 1),
        (0.263, (1.0, 2.0, 4.0), 0.0, 0),
        (1.0, (1.0, 2.0), 0.1, 0),
        (0.125, (1.0, 4.0, 16.0), 0.1, 1),
    ],
)
def test_choose_level(slide_mpp: float, downsamples: tuple[float, ...], tolerance: float, level: int) -> None:
    assert choose_level(downsamples, slide_mpp=slide_mpp, target_mpp=0.5, tolerance=tolerance) == level


@pytest.mark.parametrize(
    ("slide_mpp", "downsamples", "level", "read_size", "extent"),
    [
        (0.25, (1.0, 2.0), 1, 100, 200),  # 40x with a 20x level: read as is
        (0.25, (1.0, 4.0), 0, 200, 200),  # 40x without a 20x level: read 200 px, resize to 100
        (0.263, (1.0, 2.0), 1, 100, 200),  # 0.526 mpp is within 10%: no resize
        (1.0, (1.0,), 0, 50, 50),  # 10x slide: upsample
    ],
)
def test_read_size_and_resize(
    slide_mpp: float, downsamples: tuple[float, ...], level: int, read_size: int, extent: int
) -> None:
    mask = np.ones((70, 100), dtype=bool)
    grid = _plan(mask, slide_mpp=slide_mpp, level_downsamples=downsamples)
    assert (grid.level, grid.read_size, grid.extent_l0) == (level, read_size, extent)
    assert grid.needs_resize == (read_size != 100)
    assert len(grid) == (1000 // extent) * (700 // extent)


def test_stride_and_tiles_stay_inside_the_slide() -> None:
    mask = np.ones((7, 11), dtype=bool)
    grid = _plan(mask, dimensions=(1050, 300), mask_downsample=100.0, stride_px=50)
    xs, ys = np.unique(grid.coords[:, 0]), np.unique(grid.coords[:, 1])
    np.testing.assert_array_equal(xs, np.arange(0, 951, 50))
    np.testing.assert_array_equal(ys, [0, 50, 100, 150, 200])


def test_max_tiles_subsamples_evenly_and_deterministically() -> None:
    np.testing.assert_array_equal(even_subsample(10, 4), [0, 2, 5, 7])
    np.testing.assert_array_equal(even_subsample(3, 4), [0, 1, 2])
    mask = np.ones((70, 100), dtype=bool)
    first, second = (_plan(mask, max_tiles_per_slide=7) for _ in range(2))
    assert len(first) == 7
    np.testing.assert_array_equal(first.coords, second.coords)
    assert first.coords[0].tolist() == [0, 0]


@pytest.mark.parametrize(
    ("mask", "dimensions"),
    [(np.zeros((70, 100), dtype=bool), (1000, 700)), (np.ones((8, 10), dtype=bool), (99, 80))],
    ids=["empty-mask", "slide-smaller-than-a-tile"],
)
def test_empty_grids(mask: np.ndarray, dimensions: tuple[int, int]) -> None:
    grid = _plan(mask, dimensions=dimensions)
    assert len(grid) == 0
    assert grid.coords.shape == (0, 2) and grid.tissue_fraction.shape == (0,)


def test_tile_slide_identical_with_both_readers(cmu_svs: Path) -> None:
    pytest.importorskip("cucim")
    grids, tiles = [], []
    for backend in ("cucim", "openslide"):
        with open_slide(cmu_svs, reader=backend) as slide:
            grid = tile_slide(slide, TilingConfig())
            grids.append(grid)
            tiles.append(read_tiles(slide, grid, np.arange(min(4, len(grid)))))
    np.testing.assert_array_equal(grids[0].coords, grids[1].coords)
    assert len(grids[0]) > 20 and (grids[0].tissue_fraction >= 0.5).all()
    assert tiles[0].shape == (4, 224, 224, 3) and tiles[0].dtype == np.uint8
    assert np.abs(tiles[0].astype(int) - tiles[1]).max() <= 2


def test_read_tiles_resizes_off_target_levels(tiny_svs: Path) -> None:
    config = TilingConfig(tile_px=32, target_mpp=0.75, min_tissue_fraction=0.9)
    with open_slide(tiny_svs) as slide:
        grid = tile_slide(slide, config)
        assert (grid.level, grid.read_size, grid.needs_resize) == (0, 48, True)
        tiles = read_tiles(slide, grid)
        raw = slide.read_regions(locations=grid.coords, level=0, size=(48, 48))
        batches = list(iter_tiles(slide, grid, batch_size=5))
    assert tiles.shape == (len(grid), 32, 32, 3) and tiles.dtype == np.uint8
    np.testing.assert_allclose(tiles.mean(axis=(1, 2)), raw.mean(axis=(1, 2)), atol=3)
    np.testing.assert_array_equal(np.concatenate([batch for _, batch in batches]), tiles)


def test_read_tiles_on_an_empty_grid(tiny_svs: Path) -> None:
    with open_slide(tiny_svs) as slide:
        grid = tile_slide(slide, TilingConfig(tile_px=2048))
        assert len(grid) == 0
        assert read_tiles(slide, grid).shape == (0, 2048, 2048, 3)


def test_resize_tiles_uses_area_mean_for_whole_factors() -> None:
    tiles = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    expected = tiles.reshape(3, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(resize_tiles(tiles, 4), expected, atol=0.5)
    assert resize_tiles(tiles, 8) is tiles
    assert resize_tiles(tiles, 5).shape == (3, 5, 5, 3)
