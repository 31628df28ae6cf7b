"""The comparison table (mean and confidence interval over replicates) and its Markdown/HTML report.

Intervals are Student-t over replicates (seeds or cross-validation folds): with the handful a sweep
can afford (3-10), a percentile bootstrap of the mean is too narrow, while the t interval is the
textbook answer for a mean of few roughly normal values. Fewer finite values than `min_replicates`
(one run per configuration, or a metric defined in only some replicates) give the value without an
interval rather than a made-up one, and say so. Intervals are clipped to the metric's range. A
metric that is not defined on the data (see `raypath.metrics.limits`) shows its reason, not a
number; a value that stands on part of the data or on few samples (the runs' caveats) carries a
numbered note, listed under the table.
"""

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

# Test-split metrics in table order: (column label, what it measures, chance / ideal).
TABLE_METRICS = {
    "test/auc": ("AUC", "ROC AUC over all test slides (every scanner)", "chance 0.5, ideal 1"),
    "test/auc_heldout": ("held-out-scanner AUC", "AUC on the scanner never seen in training or validation",
                         "chance 0.5, ideal 1"),
    "test/c_index": ("C-index", "Harrell's C on -risk", "chance 0.5, ideal 1"),
    "test/c_index_heldout": ("held-out-scanner C-index", "C-index on the held-out scanner", "chance 0.5"),
    "test/worst_scanner_auc": ("worst-scanner AUC", "lowest per-scanner AUC", "chance 0.5, ideal 1"),
    "test/worst_scanner_c_index": ("worst-scanner C-index", "lowest per-scanner C-index", "chance 0.5"),
    "test/score_spread": ("cross-scanner std", "mean over specimens of the std of their scans' scores",
                          "ideal 0"),
    "test/flip_rate": ("flip rate", "share of specimens whose decision differs between two of their scans",
                       "ideal 0"),
    "test/robustness_index": ("robustness index", "PathoROB RI of slide embeddings: same-class other-scanner "
                              "vs other-class same-scanner kNN neighbours", "0.5 = no preference, ideal 1"),
    "test/scanner_probe_bacc": ("scanner probe bacc", "balanced accuracy of a linear probe predicting the "
                                "scanner from slide embeddings (5-fold)", "ideal = chance = 1/#scanners"),
    "test/scanner_mi_bits": ("scanner MI (bits)", "lower bound on the mutual information between slide "
                             "embeddings and scanner (H(scanner) - probe cross-entropy)", "ideal 0"),
    "test/center_mi_bits": ("centre MI (bits)", "the same for the centre", "ideal 0"),
}
UNBOUNDED = {"test/score_spread", "test/scanner_mi_bits", "test/center_mi_bits"}
BOUNDS = {m: (0.0, np.inf if m in UNBOUNDED else 1.0) for m in TABLE_METRICS}


def mean_ci(values: Sequence[float], *, level: float, min_values: int = 2) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; the interval is NaN below `min_values` (>= 2)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    n = len(finite)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(finite.mean())
    if n < max(2, min_values):
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * finite.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def present_metrics(frame: pd.DataFrame) -> list[str]:
    """Table metrics a run reported, with a value or with the reason it has none."""
    reasons = set().union(*frame["undefined"]) if "undefined" in frame and len(frame) else set()
    return [m for m in TABLE_METRICS
            if (m in frame and np.isfinite(frame[m].astype(float)).any()) or m in reasons]


def _reason(runs: pd.DataFrame, metric: str) -> str:
    reasons = [r[metric] for r in runs.get("undefined", []) if isinstance(r, Mapping) and metric in r]
    return reasons[0] if reasons else "not reported"


def _caveat(runs: pd.DataFrame, metric: str, *, n: int, min_replicates: int) -> str:
    """What a cell stands on: the runs' own caveats (with how many runs gave each), defined in fewer
    runs than there are, too few values for an interval."""
    given = [c[metric] for c in runs.get("caveats", []) if isinstance(c, Mapping) and metric in c]
    notes = [f"{text} ({given.count(text)} of {len(runs)} runs)" for text in dict.fromkeys(given)]
    if 0 < n < len(runs):
        notes.append(f"defined in {n} of {len(runs)} runs")
    if 0 < n < max(2, min_replicates) and len(runs) > 1:
        notes.append(f"{n} value{'s' if n > 1 else ''} (fewer than {max(2, min_replicates)}): no interval")
    return "; ".join(notes)


def comparison_table(groups: Mapping[str, pd.DataFrame], *, metrics: Sequence[str],
                     level: float, min_replicates: int = 2) -> pd.DataFrame:
    """Long table: one row per (model, metric): mean, low, high, n, when n is 0 the reason, and the
    caveat of the value (empty when it has none)."""
    rows = []
    for model, runs in groups.items():
        for metric in metrics:
            values = runs[metric].astype(float) if metric in runs else []
            mean, low, high, n = mean_ci(values, level=level, min_values=min_replicates)
            floor, ceiling = BOUNDS.get(metric, (-np.inf, np.inf))
            low, high = float(np.clip(low, floor, ceiling)), float(np.clip(high, floor, ceiling))
            rows.append({"model": model, "metric": metric, "mean": mean, "low": low, "high": high, "n": n,
                         "reason": "" if n else _reason(runs, metric),
                         "caveat": _caveat(runs, metric, n=n, min_replicates=min_replicates)})
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "low", "high", "n", "reason", "caveat"])


def _note_numbers(table: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Note number of every (model, metric) whose value carries a caveat, in table order."""
    noted = table[(table.get("caveat", pd.Series("", index=table.index)).fillna("") != "")
                  & np.isfinite(table["mean"].astype(float))]
    return {(m, k): i + 1 for i, (m, k) in enumerate(zip(noted["model"], noted["metric"], strict=True))}


def caveat_notes(table: pd.DataFrame, *, labels: Mapping[str, str] | None = None) -> list[str]:
    """'(note 1) worst-scanner AUC, robust 1: over scanners [...] only; ...' per noted cell."""
    numbers, rows = _note_numbers(table), table.set_index(["model", "metric"])
    names = {m: v[0] for m, v in TABLE_METRICS.items()}
    return [f"(note {n}) {names.get(metric, metric)}, {(labels or {}).get(model, model)}: "
            f"{rows.loc[(model, metric), 'caveat']}" for (model, metric), n in numbers.items()]


def number(value: float, *, decimals: int = 3) -> str:
    """`decimals` fixed places where they keep two significant digits, else two significant digits
    (a score spread of 3.9e-05 never shows as 0.000)."""
    value = float(value)
    if not np.isfinite(value) or value == 0 or abs(value) >= 10.0 ** (1 - decimals):
        return f"{value:.{decimals}f}"
    return f"{value:.2g}"


def _cell(row: pd.Series, note: int | None = None) -> str:
    if not np.isfinite(row["mean"]):
        return f"n/a: {row['reason']}" if row.get("reason") else "–"
    mark = f" (note {note})" if note else ""
    if not np.isfinite(row["low"]):
        return f"{number(row['mean'])}{mark}"
    return f"{number(row['mean'])} [{number(row['low'])}, {number(row['high'])}]{mark}"


def wide_table(table: pd.DataFrame, *, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Models as rows (renamed by `labels`), metrics as columns, cells 'mean [low, high]' and the
    number of the cell's note where its value carries a caveat (`caveat_notes`)."""
    names, numbers = {m: v[0] for m, v in TABLE_METRICS.items()}, _note_numbers(table)
    cells = table.assign(cell=[_cell(row, numbers.get((row["model"], row["metric"])))
                               for _, row in table.iterrows()], label=table["metric"].map(names))
    wide = cells.pivot(index="model", columns="label", values="cell")
    order = [names[m] for m in dict.fromkeys(table["metric"])]
    replicates = table.groupby("model")["n"].max().rename("replicates")
    wide = wide[order].join(replicates).loc[list(dict.fromkeys(table["model"]))]
    return wide.rename(index=dict(labels or {}))


def to_markdown(wide: pd.DataFrame) -> str:
    header = ["model", *wide.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in wide.iterrows()]
    return "\n".join(lines)


@dataclass
class FmSection:
    """One FM's part of the report."""

    fm: str
    wide: pd.DataFrame
    notes: list[str] = field(default_factory=list)  # selection rule, splits, replicates
    models: list[str] = field(default_factory=list)  # per model: loss weights and MLflow runs
    metrics: list[str] = field(default_factory=list)  # the table's metric keys
    images: list[str] = field(default_factory=list)
    stability: pd.DataFrame | None = None  # the picks and their runner-ups (raypath.compare.stability)
    caveats: list[str] = field(default_factory=list)  # the table's numbered notes


def metric_guide(metrics: Sequence[str]) -> list[tuple[str, str, str]]:
    """(column, definition, chance / ideal) of the metrics in a table."""
    return [TABLE_METRICS[m] for m in metrics if m in TABLE_METRICS]


def markdown_report(*, title: str, sections: Sequence[FmSection], level: float) -> str:
    """Per FM: how models were chosen and on which split, the table, the metric guide, the models'
    loss weights and runs, and the pictures (paths relative to the report)."""
    parts = [f"# {title}", "", f"Cells: mean over replicates [{level:.0%} t interval]; n/a names why a "
             "metric is undefined on these data.", ""]
    for s in sections:
        parts += [f"## {s.fm}", "", *[f"- {note}" for note in s.notes], "", to_markdown(s.wide), "",
                  *[f"- {note}" for note in s.caveats], *([""] if s.caveats else []),
                  "| metric | definition | chance / ideal |", "|---|---|---|",
                  *[f"| {a} | {b} | {c} |" for a, b, c in metric_guide(s.metrics)], "",
                  *[f"- {line}" for line in s.models], ""]
        if s.stability is not None and len(s.stability):
            parts += ["Stability of the choice (search runs, validation split; gaps to the pick):", "",
                      to_markdown(s.stability), ""]
        parts += [f"![{image}]({image})" for image in s.images] + [""]
    return "\n".join(parts)


STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2430; max-width: 1200px;
       margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #dde3ea; }
table { border-collapse: collapse; margin: 1em 0; font-size: .92em; }
th, td { border: 1px solid #dde3ea; padding: .35em .7em; text-align: left; vertical-align: top; }
th { background: #f2f5f8; } tr:nth-child(even) td { background: #fafbfc; }
table.results td:not(:first-child) { font-variant-numeric: tabular-nums; white-space: nowrap; }
li { margin: .2em 0; } a { color: #1f5fa8; } code { font-size: .9em; }
img { max-width: 100%; display: block; margin: 1.2em 0; border: 1px solid #eef1f4; }
.muted { color: #5b6675; }
"""
URL = re.compile(r"https?://[^\s,;]+")


def _linked(text: str) -> str:
    """Escaped text whose http(s) URLs (MLflow UI runs, when a tracking server is known) are links."""
    parts, last = [], 0
    for match in URL.finditer(text):
        url = match.group(0)
        shown = url.partition("?")[0].rsplit("/", 1)[-1] if "/runs/" in url else url  # a run: its id
        anchor = f'<a href="{html.escape(url)}">{html.escape(shown)}</a>'
        parts += [html.escape(text[last:match.start()]), anchor]
        last = match.end()
    return "".join(parts) + html.escape(text[last:])


def _html_table(wide: pd.DataFrame) -> str:
    """Models as rows under one header row (pandas' own HTML adds an empty row for the index name)."""
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in ["model", *wide.columns])
    rows = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in [model, *values]) + "</tr>"
                   for model, values in zip(wide.index, wide.itertuples(index=False), strict=True))
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _items(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{_linked(line)}</li>" for line in lines) + "</ul>" if lines else ""


def html_report(*, title: str, sections: Sequence[FmSection], level: float) -> str:
    """The same report as one standalone, styled HTML page."""
    e = html.escape
    body = [f"<h1>{e(title)}</h1>", f'<p class="muted">Cells: mean over replicates [{level:.0%} t interval]; '
            "n/a names why a metric is undefined on these data.</p>"]
    for s in sections:
        guide = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>"
                        for a, b, c in metric_guide(s.metrics))
        body += [f"<h2>{e(s.fm)}</h2>", _items(s.notes), _html_table(s.wide), _items(s.caveats),
                 "<table><thead><tr><th>metric</th><th>definition</th><th>chance / ideal</th></tr></thead>"
                 f"<tbody>{guide}</tbody></table>", "<h3>Models</h3>", _items(s.models)]
        if s.stability is not None and len(s.stability):
            body += ["<h3>Stability of the choice</h3>",
                     "<p>Search runs, validation split; gaps to the pick.</p>", _html_table(s.stability)]
        body += [f'<img src="{e(i)}" alt="{e(i)}">' for i in s.images]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{STYLE}</style></head><body>" + "\n".join(body) + "</body></html>")
