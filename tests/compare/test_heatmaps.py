"""Heatmaps people can read: tissue visible under the attention, a colour bar, a scale bar, the
held-out scanner marked, and a single slide's figure wide enough for its title."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from raypath.compare.heatmaps import HELD_OUT_COLOUR, OVERLAY_ALPHA, Backdrop, ScanView, heatmap_panels


def _view(*, held_out: bool = False, scanner: str = "aperio-gt450") -> ScanView:
    coords = np.array([[x * 448, y * 448] for y in range(4) for x in range(4)])
    backdrop = Backdrop(image=np.full((64, 64, 3), 200, np.uint8), origin=(0.0, 0.0), downsample=32.0)
    return ScanView(scanner=scanner, coords=coords, extent_l0=448, attention=np.geomspace(0.2, 5, 16),
                    score=0.6, backdrop=backdrop, tile_um=112.0, held_out=held_out)


@pytest.fixture
def figure():
    views = [_view(), _view(scanner="philips-ultrafast", held_out=True)]
    figure = heatmap_panels({"baseline": views, "robust 1": views}, title="specimen S1 (label 1)")
    yield figure
    plt.close(figure)


def test_attention_is_a_translucent_layer_over_the_thumbnail_with_colour_and_scale_bars(figure):
    panel = figure.axes[0]
    slide, heat = panel.get_images()
    assert slide.get_alpha() is None and heat.get_alpha() == OVERLAY_ALPHA < 0.5
    assert slide.get_extent() == [0, 64 * 32, 64 * 32, 0], "the slide in level-0 px, as the tiles"
    assert heat.get_extent() == [0, 4 * 448, 4 * 448, 0]
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


def test_the_backdrop_is_the_slide_under_the_box_fine_enough_to_show_tissue():
    """A 1.1 mm box at the 16 µm/px default would be 70 px across: it is read finer (400 px), and
    the image sits exactly where the box is in level-0 pixels."""
    from pathlib import Path

    from raypath.compare.backdrop import MIN_PANEL_PX, tissue_backdrop
    from raypath.slides import open_slide

    slide = Path(__file__).parents[1] / "data" / "cmu_small_region.svs"  # 2220 x 2967 px at 0.499 µm/px
    box = (200, 300, 2400, 2500)
    backdrop = tissue_backdrop(slide, box=box, mpp=16.0)
    left, right, bottom, top = backdrop.extent()
    assert bottom == pytest.approx(2500, abs=backdrop.downsample)
    assert max(backdrop.image.shape[:2]) >= MIN_PANEL_PX - 1 and backdrop.downsample < 16 / 0.499
    assert left <= box[0] < left + backdrop.downsample and top <= box[1] < top + backdrop.downsample
    assert right == pytest.approx(2220, abs=backdrop.downsample), "clipped to the slide's width"
    with open_slide(slide) as reader:
        thumb = reader.thumbnail(mpp=backdrop.downsample * reader.mpp)
    row, column = round(top / backdrop.downsample), round(left / backdrop.downsample)
    np.testing.assert_array_equal(backdrop.image, thumb.image[row:row + backdrop.image.shape[0],
                                                              column:column + backdrop.image.shape[1]])
    assert tissue_backdrop(None, box=box, mpp=16.0) is None
