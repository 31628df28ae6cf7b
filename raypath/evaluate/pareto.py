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
    floor: float = -np.inf,
) -> Path:
    """Every finished search configuration (robust ones as dots, tuned baselines as squares), the
    front, the accuracy floor, and highlighted groups (the chosen baseline and robust models)."""
    done = runs[np.isfinite(runs[accuracy].astype(float)) & np.isfinite(runs[robustness].astype(float))]
    figure, axis = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    robust, baseline = done[~done["baseline"]], done[done["baseline"]]
    axis.scatter(robust[robustness], robust[accuracy], s=12, c="0.7",
                 label=f"robust configurations (n={len(robust)})")
    axis.scatter(baseline[robustness], baseline[accuracy], s=16, marker="s", c="0.4",
                 label=f"baseline configurations (n={len(baseline)})")
    if np.isfinite(floor):
        axis.axhline(floor, ls=":", c="tab:red", lw=1, label=f"accuracy floor ({floor:.3f})")
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
