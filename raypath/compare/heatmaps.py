"""Attention heatmaps: one row per model, one column per scanner, the predicted score in each title.

A reader should see at a glance whether a model attends to the same tissue whatever the scanner.
Attention is shown relative to uniform on a log2 scale fixed at +-3 (1/8x .. 8x the average tile),
so one outlier tile cannot flatten the rest of the picture, and the scale means the same in every
panel and report; a colour bar says so. With real slides the tiles are drawn as a translucent layer
over the slide thumbnail, so the tissue under them stays visible; a feature-level cohort has no
pixels, so the tiles are drawn on their own grid (coordinates are level-0 either way). Each panel
has a scale bar in microns; the scanner held out of training and validation is framed and named.
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
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from raypath.publish import write_bytes

log = logging.getLogger(__name__)
CMAP = "coolwarm"
OVERLAY_ALPHA = 0.45  # the tissue shows through the attention colours
HELD_OUT_COLOUR = "tab:orange"
PANEL_INCHES = 2.7
MARGIN_TILES = 0.5  # panels show half a tile of slide around the tiles
MIN_WIDTH_INCHES = 5.6  # one panel plus its colour bar still leaves the title its full width


@dataclass(frozen=True)
class Backdrop:
    """Slide pixels under a panel: `image` covers level-0 [x0, x0 + width * downsample) x
    [y0, y0 + height * downsample), (x0, y0) = `origin`."""

    image: np.ndarray
    origin: tuple[float, float]
    downsample: float  # level-0 px per image px

    def extent(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) in level-0 px, as imshow takes it (y down)."""
        height, width = self.image.shape[:2]
        (x0, y0), ds = self.origin, self.downsample
        return x0, x0 + width * ds, y0 + height * ds, y0


@dataclass(frozen=True)
class ScanView:
    """One panel: a scan's tiles, the model's attention on them, its score, maybe the slide under them."""

    scanner: str
    coords: np.ndarray  # (n, 2) level-0 x, y
    extent_l0: int
    attention: np.ndarray  # (n,) relative to uniform
    score: float
    backdrop: Backdrop | None = None
    tile_um: float = 0.0  # a tile's side in microns (0 = unknown: no scale bar)
    held_out: bool = False  # the scanner was never seen in training or validation


LOG2_RANGE = 3.0  # colours span 1/8x .. 8x the uniform attention


def _grid_image(view: ScanView, origin: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    image = np.full(shape, np.nan)
    cells = ((view.coords - origin) // view.extent_l0).astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        image[cells[:, 1], cells[:, 0]] = np.clip(np.log2(view.attention), -LOG2_RANGE, LOG2_RANGE)
    return image


def _scale_bar(axis: plt.Axes, view: ScanView) -> None:
    """A bar of a round length in microns (at most a quarter of the panel), bottom left."""
    if view.tile_um <= 0:
        return
    um_per_unit = view.tile_um / view.extent_l0  # axes are in level-0 px
    width_um = abs(np.diff(axis.get_xlim())[0]) * um_per_unit
    length = next((v for v in (5000, 2000, 1000, 500, 200, 100, 50, 20, 10) if v <= width_um / 4), 10)
    label = f"{length / 1000:g} mm" if length >= 1000 else f"{length} µm"
    axis.add_artist(AnchoredSizeBar(axis.transData, length / um_per_unit, label, "lower left", pad=0.3,
                                    borderpad=0.3, frameon=True, size_vertical=0,
                                    fontproperties={"size": 6}))
    axis.artists[-1].patch.set(alpha=0.7, linewidth=0)


def _draw(axis: plt.Axes, view: ScanView, *, origin: np.ndarray, shape: tuple[int, int]) -> None:
    """The panel in level-0 px: the slide under the tile grid, the attention grid over it."""
    far = origin + np.array(shape[::-1]) * view.extent_l0
    grid = (origin[0], far[0], far[1], origin[1])
    colours = {"cmap": CMAP, "vmin": -LOG2_RANGE, "vmax": LOG2_RANGE, "interpolation": "nearest"}
    if view.backdrop is not None:
        axis.imshow(view.backdrop.image, extent=view.backdrop.extent())
    axis.imshow(_grid_image(view, origin, shape), extent=grid,
                alpha=OVERLAY_ALPHA if view.backdrop is not None else None, **colours)
    margin = view.extent_l0 * MARGIN_TILES
    axis.set(xlim=(grid[0] - margin, grid[1] + margin), ylim=(grid[2] + margin, grid[3] - margin))
    title = f"{view.scanner}{' (held out)' if view.held_out else ''}\nscore {view.score:.3f}"
    axis.set_title(title, fontsize=8, color=HELD_OUT_COLOUR if view.held_out else "black")
    axis.set_xticks([])
    axis.set_yticks([])
    if view.held_out:
        for spine in axis.spines.values():
            spine.set(edgecolor=HELD_OUT_COLOUR, linewidth=2.5)
    _scale_bar(axis, view)


def _grid(views: Sequence[ScanView]) -> tuple[np.ndarray, tuple[int, int]]:
    """Level-0 origin and (rows, columns) of the tile grid shared by every panel."""
    origin = np.min([v.coords.min(axis=0) for v in views], axis=0)
    extent = views[0].extent_l0
    far = np.max([v.coords.max(axis=0) for v in views], axis=0)
    return origin, (int((far[1] - origin[1]) // extent) + 1, int((far[0] - origin[0]) // extent) + 1)


def panel_box(coords: Sequence[np.ndarray], *, extent_l0: int) -> tuple[int, int, int, int]:
    """Level-0 (left, top, right, bottom) that panels of scans with these tile coords show: the
    tiles and a margin around them; where their backdrop is read from."""
    low = np.min([c.min(axis=0) for c in coords], axis=0) - extent_l0 * MARGIN_TILES
    high = np.max([c.max(axis=0) for c in coords], axis=0) + extent_l0 * (1 + MARGIN_TILES)
    return int(np.floor(low[0])), int(np.floor(low[1])), int(np.ceil(high[0])), int(np.ceil(high[1]))


def heatmap_panels(rows: Mapping[str, Sequence[ScanView]], *, title: str) -> Figure:
    """The models x scanners panel grid of one specimen, a colour bar beside it; at least
    `MIN_WIDTH_INCHES` wide so a single panel's title is never cut."""
    views = [v for row in rows.values() for v in row]
    origin, shape = _grid(views)
    n_cols = max(len(row) for row in rows.values())
    width = max(PANEL_INCHES * n_cols + 1.3, MIN_WIDTH_INCHES)
    aspect = np.clip((shape[0] + 2 * MARGIN_TILES) / (shape[1] + 2 * MARGIN_TILES), 0.4, 2.5)
    height = len(rows) * (PANEL_INCHES * aspect + 0.5) + 0.5  # + panel titles, figure title
    figure, axes = plt.subplots(len(rows), n_cols, figsize=(width, height), dpi=110,
                                squeeze=False, layout="constrained")
    for r, (model, row) in enumerate(rows.items()):
        for c in range(n_cols):
            if c < len(row):
                _draw(axes[r][c], row[c], origin=origin, shape=shape)
            else:
                axes[r][c].axis("off")
        axes[r][0].set_ylabel(model, fontsize=9)
    figure.suptitle(title, fontsize=10)
    # the bar shows the colours themselves (opaque), not as blended on the tissue
    colours = ScalarMappable(norm=Normalize(-LOG2_RANGE, LOG2_RANGE), cmap=CMAP)
    bar = figure.colorbar(colours, ax=axes, shrink=0.8, extend="both", label="attention vs uniform")
    bar.set_ticks([-3, -2, -1, 0, 1, 2, 3], labels=["1/8x", "1/4x", "1/2x", "1x", "2x", "4x", "8x"])
    return figure


def heatmap_figure(rows: Mapping[str, Sequence[ScanView]], *, title: str, path: Path) -> Path:
    """`heatmap_panels` saved as PNG."""
    figure = heatmap_panels(rows, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes(str(path), buffer.getvalue())  # never half a picture under its name (a full disk)
    return path
