"""Attention heatmaps: one row per model, one column per scanner, the predicted score in each title.

A reader should see at a glance whether a model attends to the same tissue whatever the scanner.
Attention is shown relative to uniform on a log2 scale fixed at +-3 (1/8x .. 8x the average tile),
so one outlier tile cannot flatten the rest of the picture, and the scale means the same in every
panel and report. The true label is in the title and a scale bar in microns in each panel. With
real slides the tiles are drawn over the slide thumbnail; a feature-level cohort has no pixels, so
the tiles are drawn on their own grid (coordinates are level-0 either way).
"""

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from raypath.extract.atomic import write_bytes

log = logging.getLogger(__name__)
CMAP = "coolwarm"


@dataclass(frozen=True)
class ScanView:
    """One panel: a scan's tiles, the model's attention on them, its score, maybe a thumbnail."""

    scanner: str
    coords: np.ndarray  # (n, 2) level-0 x, y
    extent_l0: int
    attention: np.ndarray  # (n,) relative to uniform
    score: float
    thumbnail: np.ndarray | None = None
    downsample: float = 1.0  # level-0 px per thumbnail px
    tile_um: float = 0.0  # a tile's side in microns (0 = unknown: no scale bar)


LOG2_RANGE = 3.0  # colours span 1/8x .. 8x the uniform attention


def _grid_image(view: ScanView, origin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    image = np.full(shape, np.nan)
    cells = ((view.coords - origin) // view.extent_l0).astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        image[cells[:, 1], cells[:, 0]] = np.clip(np.log2(view.attention), -LOG2_RANGE, LOG2_RANGE)
    return image


def _scale_bar(axis: plt.Axes, view: ScanView) -> None:
    """A bar of a round length in microns (about a fifth of the panel), bottom left."""
    if view.tile_um <= 0:
        return
    um_per_unit = (view.tile_um if view.thumbnail is None
                   else view.tile_um / view.extent_l0 * view.downsample)
    width_um = abs(np.diff(axis.get_xlim())[0]) * um_per_unit
    length = next((v for v in (5000, 2000, 1000, 500, 200, 100, 50) if v <= width_um / 4), 50)
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length} µm"
    axis.add_artist(AnchoredSizeBar(axis.transData, length / um_per_unit, label, "lower left", pad=0.3,
                                    frameon=False, size_vertical=0, fontproperties={"size": 6}))


def _draw(axis: plt.Axes, view: ScanView, *, origin: np.ndarray, shape: tuple[int, int]
          ) -> matplotlib.image.AxesImage:
    heat = _grid_image(view, origin, shape)
    if view.thumbnail is None:
        shown = axis.imshow(heat, cmap=CMAP, vmin=-LOG2_RANGE, vmax=LOG2_RANGE, interpolation="nearest")
    else:
        ds = view.downsample
        left, top = origin / ds
        right, bottom = (origin + np.array(shape[::-1]) * view.extent_l0) / ds
        axis.imshow(view.thumbnail)
        shown = axis.imshow(
            heat,
            cmap=CMAP,
            vmin=-LOG2_RANGE,
            vmax=LOG2_RANGE,
            alpha=0.6,
            extent=(left, right, bottom, top),
            interpolation="nearest",
        )
    axis.set_title(f"{view.scanner}: score {view.score:.3f}", fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])
    _scale_bar(axis, view)
    return shown


def heatmap_figure(rows: Mapping[str, Sequence[ScanView]], *, title: str, path: Path) -> Path:
    """Save the models x scanners panel grid of one specimen as PNG."""
    views = [v for row in rows.values() for v in row]
    origin = np.min([v.coords.min(axis=0) for v in views], axis=0)
    extent = views[0].extent_l0
    far = np.max([v.coords.max(axis=0) for v in views], axis=0)
    shape = (int((far[1] - origin[1]) // extent) + 1, int((far[0] - origin[0]) // extent) + 1)
    n_cols = max(len(row) for row in rows.values())
    figure, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.6 * n_cols, 2.6 * len(rows)), dpi=110, squeeze=False
    )
    shown = None
    for r, (model, row) in enumerate(rows.items()):
        for c in range(n_cols):
            if c < len(row):
                shown = _draw(axes[r][c], row[c], origin=origin, shape=shape)
            else:
                axes[r][c].axis("off")
        axes[r][0].set_ylabel(model, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    if shown is not None:
        bar = figure.colorbar(shown, ax=axes, shrink=0.8, extend="both", label="attention vs uniform")
        bar.set_ticks([-3, -2, -1, 0, 1, 2, 3], labels=["1/8x", "1/4x", "1/2x", "1x", "2x", "4x", "8x"])
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes(str(path), buffer.getvalue())  # never half a picture under its name (a full disk)
    return path
