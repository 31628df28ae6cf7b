"""The report folder: per-FM table (Markdown + CSV), RI/accuracy curves over k and the plot."""

import logging
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("row", "level", "n", "n_knn", "ri", "best_k", "knn_bacc", "apd_id", "apd_ood", "cs",
                 "ari_class", "ari_center", "k_clusters", "ri_specimen", "ri_raypath_k", "apd_id_specimen",
                 "apd_ood_specimen")
CORRECTION_NAMES = {"none": "", "center": " + centering", "combat": " + ComBat"}
MARKERS = {"none": "o", "center": "s", "combat": "^"}


def row_name(fm: str, correction: str) -> str:
    """'tiny-uni', 'tiny-uni + centering', 'tiny-uni + ComBat'."""
    return fm + CORRECTION_NAMES[correction]


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table with 3 decimals, ordered by level then RI (most robust first): PathoROB's metrics,
    then raypath's variants that were computed."""
    columns = [c for c in TABLE_COLUMNS if c in table.columns]
    shown = table.sort_values(["level", "ri"], ascending=[True, False])[columns]
    header = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
    lines = ["| " + " | ".join(_cell(v) for v in record) + " |" for record in shown.itertuples(index=False)]
    return header + "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def plot_ri_vs_accuracy(table: pd.DataFrame, path: Path) -> Path:
    """RI (y) against biological kNN balanced accuracy (x): one point per FM row, one panel per level.

    Top right is the goal: features that both classify biology well and ignore the center. Colour
    = FM, marker = correction (circle none, square centering, triangle ComBat).
    """
    levels = sorted(table["level"].unique())
    colours = {fm: f"C{i % 10}" for i, fm in enumerate(sorted(table["fm"].unique()))}
    figure = Figure(figsize=(5.5 * len(levels), 4.5))  # no pyplot: no global state, no GUI backend
    axes = figure.subplots(1, len(levels), squeeze=False)
    for axis, level in zip(axes[0], levels, strict=True):
        for record in table[table["level"] == level].itertuples(index=False):
            axis.scatter(record.knn_bacc, record.ri, marker=MARKERS[record.correction], s=50,
                         color=colours[record.fm])
            axis.annotate(record.row, (record.knn_bacc, record.ri), fontsize=7, xytext=(4, 3),
                          textcoords="offset points")
        axis.set(title=f"{level} features", xlabel="biological kNN balanced accuracy",
                 ylabel="robustness index (PathoROB)", ylim=(-0.02, 1.02))
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return path


def write_report(table: pd.DataFrame, curves: pd.DataFrame, out: Path, *, confounder: str) -> list[Path]:
    """Write table.md (saying which manifest column was the confounder), table.csv, curves.csv and
    ri_vs_accuracy.png; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "table.md", out / "table.csv", out / "curves.csv", out / "ri_vs_accuracy.png"]
    paths[0].write_text(f"Confounder (PathoROB's centers): the manifest column {confounder}.\n\n"
                        + markdown_table(table))
    table.to_csv(paths[1], index=False)
    curves.to_csv(paths[2], index=False)
    plot_ri_vs_accuracy(table, paths[3])
    log.info("report written to %s", out)
    return paths
