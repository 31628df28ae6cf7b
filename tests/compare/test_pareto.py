"""The Pareto plot: the legend hides no point, and each highlighted model (the champion named) is
marked on its own plotted point."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from raypath.compare.pareto import pareto_figure


def test_highlights_ring_their_own_points_and_the_legend_stays_outside_the_axes():
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({"val/auc": rng.uniform(0.8, 1.0, 40), "val/score_spread": rng.uniform(0, 0.3, 40),
                         "baseline": [True] * 10 + [False] * 30})
    highlight = {"baseline": runs.iloc[[3]], "robust 1": runs.iloc[[25]]}
    figure = pareto_figure(runs, accuracy="val/auc", robustness="val/score_spread", highlight=highlight,
                           title="t", floor=0.85, champion="robust 1")
    try:
        figure.canvas.draw()
        axis = figure.axes[0]
        points, squares, *rings = axis.collections
        plotted = {tuple(p) for p in np.vstack([points.get_offsets(), squares.get_offsets()]).round(12)}
        assert len(rings) == 2 and all({tuple(p) for p in ring.get_offsets().round(12)} <= plotted
                                       for ring in rings)
        labels = [text.get_text() for text in axis.get_legend().get_texts()]
        assert "robust 1 (champion)" in labels and "baseline" in labels
        legend = axis.get_legend().get_window_extent()
        assert legend.x0 >= axis.get_window_extent().x1, "the legend is beside the axes, not over points"
    finally:
        plt.close(figure)
