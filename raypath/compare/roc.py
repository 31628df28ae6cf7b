"""Per-scanner ROC curves of the compared models on the test split: where a model's accuracy
depends on the scanner, its curves fan out; a robust model's lie on top of each other."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

STYLES = ("-", "--", ":", "-.")


def roc_panels(predictions: Mapping[str, pd.DataFrame], *, title: str, held_out: Sequence[str] = ()
               ) -> Figure | None:
    """One panel per model, one curve per scanner (test split, binary labels), the `held_out` scanner
    named as such and drawn heavier; None when no scanner has both classes (nothing to draw)."""
    tests = {name: table[table["split"] == "test"] for name, table in predictions.items()}
    scanners = sorted(set().union(*(set(t["scanner"]) for t in tests.values())))
    figure, axes = plt.subplots(1, len(tests), figsize=(3.6 * len(tests), 3.6), dpi=110, squeeze=False)
    drawn = 0
    for axis, (model, table) in zip(axes[0], tests.items(), strict=True):
        for index, scanner in enumerate(scanners):
            rows = table[table["scanner"] == scanner]
            if rows["label"].nunique() < 2:
                continue
            fpr, tpr, _ = roc_curve(rows["label"], rows["score"])
            auc = roc_auc_score(rows["label"], rows["score"])
            shown = f"{scanner} (held out)" if scanner in held_out else scanner
            axis.plot(fpr, tpr, STYLES[index % len(STYLES)], label=f"{shown} ({auc:.2f}, n={len(rows)})",
                      lw=2.2 if scanner in held_out else 1.5)
            drawn += 1
        axis.plot([0, 1], [0, 1], c="0.8", lw=0.8)
        axis.set(title=model, xlabel="false positive rate", ylabel="true positive rate", aspect="equal")
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="lower right")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    if drawn == 0:
        plt.close(figure)
        return None
    return figure


def roc_figure(predictions: Mapping[str, pd.DataFrame], *, title: str, path: Path,
               held_out: Sequence[str] = ()) -> Path | None:
    """`roc_panels` saved as PNG; None when there is nothing to draw."""
    figure = roc_panels(predictions, title=title, held_out=held_out)
    if figure is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
