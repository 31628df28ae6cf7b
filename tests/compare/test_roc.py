"""Per-scanner ROC curves: one per scanner with both classes, the held-out scanner named."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from raypath.compare.roc import roc_panels


def test_each_scanner_with_both_classes_gets_a_curve_and_the_held_out_one_says_so():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"split": "test", "scanner": np.repeat(["A", "B", "C"], 10),
                          "label": np.tile([0, 1], 15), "score": rng.random(30)})
    table.loc[table["scanner"] == "C", "label"] = 1  # one class only: no curve
    figure = roc_panels({"baseline": table, "robust 1": table}, title="t", held_out=["B"])
    try:
        labels = [[text.get_text() for text in axis.get_legend().get_texts()] for axis in figure.axes]
        assert [axis.get_title() for axis in figure.axes] == ["baseline", "robust 1"]
        assert [label.split(" (")[0] for label in labels[0]] == ["A", "B"]
        assert labels[0][1].startswith("B (held out) (") and "(held out)" not in labels[0][0]
    finally:
        plt.close(figure)
    assert roc_panels({"baseline": table[table["scanner"] == "C"]}, title="t", held_out=["B"]) is None
