"""The comparison table (mean and confidence interval over seeds) and its Markdown/HTML rendering.

Intervals are Student-t over seed replicates: with the handful of seeds a sweep can afford
(3-10), a percentile bootstrap of the mean is too narrow, while the t interval is the textbook
answer for a mean of few roughly normal values. One run per configuration (no replicates) gives
the value without an interval rather than a made-up one. Intervals are clipped to the metric's
range (a t interval over 3 seeds of an AUC near 1 would otherwise reach past 1).
"""

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

# Test-set metrics in table order; those a task does not produce are left out.
TABLE_METRICS = {
    "test/auc": "AUC",
    "test/c_index": "C-index",
    "test/worst_scanner_auc": "worst-scanner AUC",
    "test/worst_scanner_c_index": "worst-scanner C-index",
    "test/score_spread": "cross-scanner std",
    "test/flip_rate": "flip rate",
    "test/robustness_index": "robustness index",
    "test/scanner_probe_bacc": "scanner probe bacc",
}
# Every table metric lies in [0, 1] except the spread, which for survival is a std of risks.
BOUNDS = {metric: (0.0, np.inf if metric == "test/score_spread" else 1.0) for metric in TABLE_METRICS}


def mean_ci(values: Sequence[float], *, level: float) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; the interval is NaN below two values."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    n = len(finite)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(finite.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * finite.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def present_metrics(frame: pd.DataFrame) -> list[str]:
    """Table metrics that at least one run reported with a finite value."""
    return [m for m in TABLE_METRICS if m in frame and np.isfinite(frame[m].astype(float)).any()]


def comparison_table(
    groups: Mapping[str, pd.DataFrame], *, metrics: Sequence[str], level: float
) -> pd.DataFrame:
    """Long table: one row per (model, metric) with mean, low, high and the number of seeds."""
    rows = []
    for model, runs in groups.items():
        for metric in metrics:
            values = runs[metric].astype(float) if metric in runs else []
            mean, low, high, n = mean_ci(values, level=level)
            floor, ceiling = BOUNDS.get(metric, (-np.inf, np.inf))
            low, high = float(np.clip(low, floor, ceiling)), float(np.clip(high, floor, ceiling))
            rows.append({"model": model, "metric": metric, "mean": mean, "low": low, "high": high, "n": n})
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "low", "high", "n"])


def _cell(row: pd.Series) -> str:
    if not np.isfinite(row["mean"]):
        return "–"
    if not np.isfinite(row["low"]):
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Models as rows, metrics as columns, cells 'mean [low, high]'."""
    cells = table.assign(cell=table.apply(_cell, axis=1), label=table["metric"].map(TABLE_METRICS))
    wide = cells.pivot(index="model", columns="label", values="cell")
    order = [TABLE_METRICS[m] for m in dict.fromkeys(table["metric"])]
    seeds = table.groupby("model")["n"].max().rename("seeds")
    return wide[order].join(seeds).loc[list(dict.fromkeys(table["model"]))]


def to_markdown(wide: pd.DataFrame) -> str:
    header = ["model", *wide.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in wide.iterrows()]
    return "\n".join(lines)


def markdown_report(*, title: str, sections: Sequence[tuple[str, str, Sequence[str]]], level: float) -> str:
    """A report: per FM a heading, the table and its pictures (paths relative to the report)."""
    parts = [f"# {title}", "", f"Cells: mean over seed replicates [{level:.0%} t interval].", ""]
    for heading, table_md, images in sections:
        parts += [f"## {heading}", "", table_md, ""]
        parts += [f"![{image}]({image})" for image in images] + [""]
    return "\n".join(parts)


def html_report(
    *, title: str, sections: Sequence[tuple[str, pd.DataFrame, Sequence[str]]], level: float
) -> str:
    """The same report as standalone HTML (tables via pandas, pictures as <img>)."""
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Cells: mean over seed replicates [{level:.0%} t interval].</p>",
    ]
    for heading, wide, images in sections:
        body += [f"<h2>{html.escape(heading)}</h2>", wide.to_html(escape=True)]
        body += [
            f'<img src="{html.escape(image)}" alt="{html.escape(image)}" style="max-width:100%">'
            for image in images
        ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
