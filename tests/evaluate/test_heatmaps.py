"""Heatmaps people can read: tissue visible under the attention, a colour bar, a scale bar, the
held-out scanner marked, and a single slide's figure wide enough for its title."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from raypath.evaluate.heatmaps import HELD_OUT_COLOUR, OVERLAY_ALPHA, ScanView, heatmap_panels


def _view(*, held_out: bool = False, scanner: str = "aperio-gt450") -> ScanView:
    coords = np.array([[x * 448, y * 448] for y in range(4) for x in range(4)])
    thumbnail = np.full((64, 64, 3), 200, np.uint8)
    return ScanView(scanner=scanner, coords=coords, extent_l0=448, attention=np.geomspace(0.2, 5, 16),
                    score=0.6, thumbnail=thumbnail, downsample=32.0, tile_um=112.0, held_out=held_out)


@pytest.fixture
def figure():
    views = [_view(), _view(scanner="philips-ultrafast", held_out=True)]
    figure = heatmap_panels({"baseline": views, "robust 1": views}, title="specimen S1 (label 1)")
    yield figure
    plt.close(figure)


def test_attention_is_a_translucent_layer_over_the_thumbnail_with_colour_and_scale_bars(figure):
    panel = figure.axes[0]
    thumbnail, heat = panel.get_images()
    assert thumbnail.get_alpha() is None and heat.get_alpha() == OVERLAY_ALPHA < 0.5
    assert any(isinstance(artist, AnchoredSizeBar) for artist in panel.artists), "scale bar"
    colour_bar = figure.axes[-1]
    assert colour_bar.get_ylabel() == "attention vs uniform"
    assert [t.get_text() for t in colour_bar.get_yticklabels()][::3] == ["1/8x", "1x", "8x"]


def test_the_held_out_scanner_is_framed_and_named(figure):
    seen, held_out = figure.axes[0], figure.axes[1]
    assert "(held out)" in held_out.get_title() and "(held out)" not in seen.get_title()
    frame = held_out.spines["top"]
    assert frame.get_linewidth() > seen.spines["top"].get_linewidth()
    assert frame.get_edgecolor() == pytest.approx(plt.matplotlib.colors.to_rgba(HELD_OUT_COLOUR))


def test_one_slide_gets_a_figure_wide_enough_for_its_whole_title():
    figure = heatmap_panels({"": [_view()]}, title="S0010-aperio-gt450-a-long-slide-id: score 0.734")
    try:
        figure.canvas.draw()
        width, _ = figure.canvas.get_width_height()
        box = figure._suptitle.get_window_extent()
        assert width >= 600 and box.x0 >= 0 and box.x1 <= width
    finally:
        plt.close(figure)
