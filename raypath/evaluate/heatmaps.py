"""Attention heatmaps: one row per model, one column per scanner, the predicted score in each title.

A reader should see at a glance whether a model attends to the same tissue whatever the scanner.
Attention is shown relative to uniform (weight x tiles: 1 = average tile), on a shared colour
scale. With real slides the tiles are drawn over the slide thumbnail; a feature-level cohort has
no pixels, so the tiles are drawn on their own grid (coordinates are level-0 either way).
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

log = logging.getLogger(__name__)


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


def _grid_image(view: ScanView, origin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    image = np.full(shape, np.nan)
    cells = ((view.coords - origin) // view.extent_l0).astype(int)
    image[cells[:, 1], cells[:, 0]] = view.attention
    return image


def _draw(
    axis: plt.Axes, view: ScanView, *, origin: np.ndarray, shape: tuple[int, int], vmax: float
) -> matplotlib.image.AxesImage:
    heat = _grid_image(view, origin, shape)
    if view.thumbnail is None:
        shown = axis.imshow(heat, cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
    else:
        ds = view.downsample
        left, top = origin / ds
        right, bottom = (origin + np.array(shape[::-1]) * view.extent_l0) / ds
        axis.imshow(view.thumbnail)
        shown = axis.imshow(
            heat,
            cmap="magma",
            vmin=0,
            vmax=vmax,
            alpha=0.55,
            extent=(left, right, bottom, top),
            interpolation="nearest",
        )
    axis.set_title(f"{view.scanner}: score {view.score:.3f}", fontsize=8)
    axis.set_xticks([])
    axis.set_yticks([])
    return shown


def heatmap_figure(rows: Mapping[str, Sequence[ScanView]], *, title: str, path: Path) -> Path:
    """Save the models x scanners panel grid of one specimen as PNG."""
    views = [v for row in rows.values() for v in row]
    origin = np.min([v.coords.min(axis=0) for v in views], axis=0)
    extent = views[0].extent_l0
    far = np.max([v.coords.max(axis=0) for v in views], axis=0)
    shape = (int((far[1] - origin[1]) // extent) + 1, int((far[0] - origin[0]) // extent) + 1)
    vmax = float(np.nanpercentile(np.concatenate([v.attention for v in views]), 99))
    n_cols = max(len(row) for row in rows.values())
    figure, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.6 * n_cols, 2.6 * len(rows)), dpi=110, squeeze=False
    )
    shown = None
    for r, (model, row) in enumerate(rows.items()):
        for c in range(n_cols):
            if c < len(row):
                shown = _draw(axes[r][c], row[c], origin=origin, shape=shape, vmax=vmax)
            else:
                axes[r][c].axis("off")
        axes[r][0].set_ylabel(model, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    if shown is not None:
        figure.colorbar(shown, ax=axes, shrink=0.8, label="attention x tiles (1 = uniform)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
