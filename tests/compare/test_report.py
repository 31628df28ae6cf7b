"""Comparison report pieces: intervals, Pareto front, table rendering, heatmaps from saved weights."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raypath.compare.groups import ModelGroups
from raypath.compare.heatmaps import ScanView, heatmap_figure
from raypath.compare.pareto import pareto_mask, pareto_plot
from raypath.compare.report import (
    FmSection,
    comparison_table,
    html_report,
    markdown_report,
    mean_ci,
    number,
    present_metrics,
    to_markdown,
    wide_table,
)
from raypath.compare.sections import model_lines


def test_mean_ci_is_the_student_t_interval_and_never_invents_one():
    values = [0.70, 0.74, 0.72, 0.78, 0.71]
    mean, low, high, n = mean_ci([*values, float("nan")], level=0.95)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / np.sqrt(5)
    assert n == 5 and mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx((mean - half, mean + half))
    assert np.isnan(mean_ci([0.7], level=0.95)[1]) and mean_ci([], level=0.95)[3] == 0


def test_pareto_mask_keeps_exactly_the_non_dominated_points():
    accuracy = np.array([0.90, 0.85, 0.80, 0.90, 0.70])
    spread = np.array([0.10, 0.05, 0.20, 0.12, 0.01])
    assert pareto_mask(accuracy, spread).tolist() == [True, True, False, False, True]


def test_table_rows_are_models_and_cells_carry_intervals():
    groups = {
        "baseline": pd.DataFrame({"test/auc": [0.7, 0.8, 0.75], "test/score_spread": [0.1, 0.2, 0.15]}),
        "robust 1": pd.DataFrame({"test/auc": [0.76], "test/score_spread": [0.05]}),
    }
    table = comparison_table(groups, metrics=["test/auc", "test/score_spread"], level=0.95)
    wide = wide_table(table)
    assert list(wide.index) == ["baseline", "robust 1"]
    assert list(wide.columns) == ["AUC", "cross-scanner std", "replicates"]
    assert wide.loc["baseline", "AUC"].startswith("0.750 [") and wide.loc["robust 1", "AUC"] == "0.760"
    assert "| robust 1 | 0.760 | 0.050 | 1 |" in to_markdown(wide)
    section = FmSection(fm="fm", wide=wide, notes=["chosen on validation"], models=["robust 1: {...}"],
                        metrics=["test/auc", "test/score_spread"], images=["p.png"])
    page = html_report(title="t", sections=[section], level=0.95)
    assert "<table" in page and "chosen on validation" in page and "chance 0.5" in page
    text = markdown_report(title="t", sections=[section], level=0.95)
    assert "| cross-scanner std | mean over specimens of the std" in text and "![p.png](p.png)" in text


def test_small_values_keep_significant_digits():
    assert [number(v) for v in (0.0, 3.9e-05, 0.0039, 0.912)] == ["0.000", "3.9e-05", "0.0039", "0.912"]
    runs = pd.DataFrame({"test/score_spread": [4e-05]})
    wide = wide_table(comparison_table({"robust 1": runs}, metrics=["test/score_spread"], level=0.95))
    assert wide.loc["robust 1", "cross-scanner std"] == "4e-05"


def test_html_has_style_one_header_row_and_links_runs_only_on_a_server():
    wide = pd.DataFrame({"AUC": ["0.900"]}, index=pd.Index(["baseline"], name="model"))
    wide.columns.name = "label"
    server = model_lines(ModelGroups(groups={"baseline": pd.DataFrame({"run_id": ["abc123"], "params": [
        {"optimizer.weight_decay": 3.9e-05}]})}, selection=None, phase="replicates"),
        tracking_uri="http://mlflow:5000", experiment_id="1")
    lines = [*server, "robust 1: lr=0.001; runs runs:/def456"]
    assert server == ["baseline: optimizer.weight_decay=3.9e-05; runs http://mlflow:5000/#/experiments/1/runs/"
                      "abc123?workflowType=machine_learning"]
    page = html_report(title="t", sections=[FmSection(fm="fm", wide=wide, models=lines)], level=0.95)
    results = page[page.index('class="results"'):]
    assert "<style>" in page and results.split("</thead>")[0].count("<tr>") == 1
    assert f'<a href="{server[0].split("runs ")[-1]}">abc123</a>' in page
    assert "runs:/def456" in page and 'href="runs:/' not in page


def test_an_undefined_metric_shows_its_reason_never_a_number_with_an_interval():
    runs = pd.DataFrame({"test/auc": [0.8, 0.9], "test/robustness_index": [np.nan, np.nan],
                         "undefined": [{"test/robustness_index": "k=10 >= 7 eligible neighbours"}] * 2})
    assert present_metrics(runs) == ["test/auc", "test/robustness_index"]
    table = comparison_table({"baseline": runs}, metrics=present_metrics(runs), level=0.95)
    wide = wide_table(table, labels={"baseline": "baseline (tuned)"})
    assert wide.loc["baseline (tuned)", "robustness index"] == "n/a: k=10 >= 7 eligible neighbours"


def test_pareto_plot_writes_a_png(tmp_path):
    runs = pd.DataFrame({"val/auc": [0.8, 0.7, 0.9], "val/score_spread": [0.1, 0.05, 0.2],
                         "config_key": list("abc"), "baseline": [True, False, False]})
    path = pareto_plot(
        runs,
        accuracy="val/auc",
        robustness="val/score_spread",
        highlight={"baseline": runs.iloc[:1]},
        title="t",
        path=tmp_path / "p.png",
        floor=0.75,
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_heatmap_draws_scans_side_by_side_and_tolerates_unscored_tiles(tmp_path):
    rng = np.random.default_rng(0)
    coords = np.array([[x * 100, y * 100] for y in range(3) for x in range(4)])
    attention = rng.random(12).astype(np.float32)
    attention[3] = np.nan  # a tile left out by eval_max_tiles
    view = ScanView(scanner="A", coords=coords, extent_l0=100, attention=attention, score=0.7)
    path = heatmap_figure({"baseline": [view, view], "robust": [view]}, title="s", path=tmp_path / "h.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_intervals_stay_inside_the_metric_range():
    import pandas as pd

    from raypath.compare.report import comparison_table

    runs = pd.DataFrame({"test/auc": [0.9, 1.0, 1.0], "test/score_spread": [0.0, 0.001, 0.03]})
    table = comparison_table({"baseline": runs}, metrics=["test/auc", "test/score_spread"], level=0.95)
    by_metric = table.set_index("metric")
    auc, spread = by_metric.loc["test/auc"], by_metric.loc["test/score_spread"]
    assert auc["high"] == 1.0 and 0.8 < auc["low"] < auc["mean"]
    assert spread["low"] == 0.0 and spread["high"] > spread["mean"]


def test_a_caveat_rides_with_its_cell_as_a_numbered_note():
    from raypath.compare.report import caveat_notes

    excluded = "over scanners ['A', 'B'] only; excluded ['C'] (only one class on scanner C (1 present))"
    caveats = [{"test/worst_scanner_auc": excluded}, {}, {"test/worst_scanner_auc": excluded}]
    runs = pd.DataFrame({"test/worst_scanner_auc": [0.7, 0.8, 0.75], "test/auc": [0.8, 0.82, np.nan],
                         "caveats": caveats})
    table = comparison_table({"robust 1": runs}, metrics=["test/auc", "test/worst_scanner_auc"], level=0.95,
                             min_replicates=3)
    by_metric = table.set_index("metric")
    assert by_metric.loc["test/worst_scanner_auc", "caveat"] == f"{excluded} (2 of 3 runs)"
    assert by_metric.loc["test/auc", "caveat"] == ("defined in 2 of 3 runs; 2 values (fewer than 3): "
                                                   "no interval")
    assert np.isnan(by_metric.loc["test/auc", "low"])  # two values are not an interval here
    wide = wide_table(table)
    assert wide.loc["robust 1", "AUC"] == "0.810 (note 1)"
    assert wide.loc["robust 1", "worst-scanner AUC"].endswith("] (note 2)")
    notes = caveat_notes(table)
    assert notes[0].startswith("(note 1) AUC, robust 1: defined in 2 of 3 runs")
    assert notes[1] == f"(note 2) worst-scanner AUC, robust 1: {excluded} (2 of 3 runs)"
    section = FmSection(fm="fm", wide=wide, metrics=["test/auc"], caveats=notes)
    assert f"- {notes[1]}" in markdown_report(title="t", sections=[section], level=0.95)


def test_the_report_says_where_the_split_comes_from_and_shows_the_leakage_audit():
    import json

    from raypath.compare.sections import split_notes

    audit = {"splits": {"train": {"patients": 24, "specimens": 24, "slides": 40, "scanners": {"A": 40}},
                        "test": {"patients": 21, "specimens": 21, "slides": 63, "scanners": {"A": 21}}},
             "held_out_scanners": ["C"], "passed": True, "checks": {}}
    origin = "random patient-grouped split (seed 0, train 0.6, val 0.2): no split was given"
    tags = {"raypath.split.source": "random", "raypath.split.held_out_scanners": "C",
            "raypath.split.origin": origin, "raypath.leakage.audit": json.dumps(audit)}
    lines = split_notes(tags)
    assert lines[0] == f"Split: {origin}; held-out scanners: C (test only)."
    assert lines[1].startswith("Leakage audit passed")
    assert "train 24 patients / 24 specimens / 40 slides" in lines[1]
    assert split_notes({}) == ["Split: not recorded (a sweep from before the split policy)."]
