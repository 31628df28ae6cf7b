"""Accuracy-vs-robustness Pareto front of a sweep, and its plot (matplotlib Agg, PNG)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

HIGHLIGHT_COLOURS = ("tab:orange", "tab:purple", "tab:green", "tab:brown", "tab:pink")


def pareto_mask(accuracy: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """True where no other point is at least as accurate and as robust, and better in one."""
    accuracy, spread = np.asarray(accuracy, float), np.asarray(spread, float)
    better_or_equal = (accuracy[None, :] >= accuracy[:, None]) & (spread[None, :] <= spread[:, None])
    strictly = (accuracy[None, :] > accuracy[:, None]) | (spread[None, :] < spread[:, None])
    return ~(better_or_equal & strictly).any(axis=1)


def pareto_figure(
    runs: pd.DataFrame,
    *,
    accuracy: str,
    robustness: str,
    highlight: dict[str, pd.DataFrame],
    title: str,
    floor: float = -np.inf,
    champion: str | None = None,
) -> Figure:
    """Every finished search configuration (robust ones as dots, tuned baselines as squares), the
    front, the accuracy floor, and the highlighted groups (the chosen baseline and robust models) as
    rings around their own plotted points, the champion named; the legend sits outside the axes so
    it hides no point."""
    done = runs[np.isfinite(runs[accuracy].astype(float)) & np.isfinite(runs[robustness].astype(float))]
    figure, axis = plt.subplots(figsize=(8.4, 4.8), dpi=120, layout="constrained")
    robust, baseline = done[~done["baseline"]], done[done["baseline"]]
    axis.scatter(robust[robustness], robust[accuracy], s=12, c="0.7", zorder=2,
                 label=f"robust configurations (n={len(robust)})")
    axis.scatter(baseline[robustness], baseline[accuracy], s=16, marker="s", c="0.4", zorder=2,
                 label=f"baseline configurations (n={len(baseline)})")
    if np.isfinite(floor):
        axis.axhline(floor, ls=":", c="tab:red", lw=1, label=f"accuracy floor ({floor:.3f})")
    if len(done):
        front = done[pareto_mask(done[accuracy].to_numpy(), done[robustness].to_numpy())]
        front = front.sort_values(robustness)
        axis.plot(front[robustness], front[accuracy], "-", c="tab:blue", lw=1, zorder=1, label="Pareto front")
    for (name, group), colour in zip(highlight.items(), HIGHLIGHT_COLOURS, strict=False):
        shown = group[group.index.isin(done.index)]
        label = f"{name} (champion)" if name == champion else name
        axis.scatter(shown[robustness], shown[accuracy], s=150 if name == champion else 90,
                     facecolors="none", edgecolors=colour, linewidths=2, zorder=3, label=label)
        for x, y in zip(shown[robustness], shown[accuracy], strict=True):
            axis.annotate(label, (x, y), xytext=(8, 6), textcoords="offset points", fontsize=7, color=colour)
    axis.set_xlabel(f"{robustness} (lower = more robust)")
    axis.set_ylabel(f"{accuracy} (higher = more accurate)")
    axis.set_title(title)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    return figure


def pareto_plot(runs: pd.DataFrame, *, accuracy: str, robustness: str, highlight: dict[str, pd.DataFrame],
                title: str, path: Path, floor: float = -np.inf, champion: str | None = None) -> Path:
    """`pareto_figure` saved as PNG."""
    figure = pareto_figure(runs, accuracy=accuracy, robustness=robustness, highlight=highlight, title=title,
                           floor=floor, champion=champion)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
