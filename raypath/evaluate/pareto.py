"""Accuracy-vs-robustness Pareto front of a sweep, and its plot (matplotlib Agg, PNG)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def pareto_mask(accuracy: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """True where no other point is at least as accurate and as robust, and better in one."""
    accuracy, spread = np.asarray(accuracy, float), np.asarray(spread, float)
    better_or_equal = (accuracy[None, :] >= accuracy[:, None]) & (spread[None, :] <= spread[:, None])
    strictly = (accuracy[None, :] > accuracy[:, None]) | (spread[None, :] < spread[:, None])
    return ~(better_or_equal & strictly).any(axis=1)


def pareto_plot(
    runs: pd.DataFrame,
    *,
    accuracy: str,
    robustness: str,
    highlight: dict[str, pd.DataFrame],
    title: str,
    path: Path,
) -> Path:
    """Every finished search configuration, the front, and highlighted groups (baseline, best)."""
    done = runs[np.isfinite(runs[accuracy].astype(float)) & np.isfinite(runs[robustness].astype(float))]
    figure, axis = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    axis.scatter(done[robustness], done[accuracy], s=12, c="0.7", label=f"configurations (n={len(done)})")
    if len(done):
        front = done[pareto_mask(done[accuracy].to_numpy(), done[robustness].to_numpy())]
        front = front.sort_values(robustness)
        axis.plot(front[robustness], front[accuracy], "-o", c="tab:blue", ms=4, label="Pareto front")
    markers = iter(["*", "D", "s", "^", "v"])
    for name, group in highlight.items():
        axis.scatter(
            group[robustness],
            group[accuracy],
            s=90,
            marker=next(markers, "o"),
            label=name,
            edgecolors="black",
            zorder=3,
        )
    axis.set_xlabel(f"{robustness} (lower = more robust)")
    axis.set_ylabel(f"{accuracy} (higher = more accurate)")
    axis.set_title(title)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
