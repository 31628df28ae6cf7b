"""`raypath compare`: per FM, baseline vs the best robust configurations, from MLflow runs alone.

Groups come from the replicate phase when it ran (confidence intervals over seeds), else from
single search runs. Failed or unfinished runs never enter a group (issue 8, case 11). Outputs per
FM: table.csv, pareto.png, heatmap_<specimen>.png, report.md/.html (also logged to MLflow as a
'report' run), and the best robust model registered as `raypath-<sweep>-<fm>`.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from raypath.evaluate.config import CompareConfig
from raypath.evaluate.groups import model_groups, sweep_experiments
from raypath.evaluate.heatmaps import heatmap_figure
from raypath.evaluate.pareto import pareto_plot
from raypath.evaluate.publish import log_report, register_model
from raypath.evaluate.report import (
    comparison_table,
    html_report,
    markdown_report,
    present_metrics,
    to_markdown,
    wide_table,
)
from raypath.evaluate.specimen_views import (
    load_manifest_paths,
    load_run_model,
    pick_specimens,
    specimen_views,
)
from raypath.store import FeatureStore
from raypath.sweep.selection import robustness_metric, runs_frame
from raypath.sweep.tracking import RunLedger

log = logging.getLogger(__name__)


@dataclass
class FmComparison:
    """One FM's comparison: the long table, its wide rendering, pictures, registered version."""

    fm: str
    table: pd.DataFrame
    wide: pd.DataFrame
    images: list[str] = field(default_factory=list)
    registered: str | None = None


def _pareto(
    runs: pd.DataFrame, groups: dict[str, pd.DataFrame], config: CompareConfig, *, fm: str, out: Path
) -> str:
    search = runs[(runs["phase"] == "search") & (runs["status"] == "FINISHED")]
    accuracy, robust = config.objectives[0].metric, robustness_metric(config.objectives)
    highlight = {name: search[search["config_key"].isin(set(g["config_key"]))] for name, g in groups.items()}
    pareto_plot(
        search,
        accuracy=accuracy,
        robustness=robust,
        highlight=highlight,
        title=f"{config.sweep_id} / {fm}",
        path=out / "pareto.png",
    )
    return "pareto.png"


def _heatmaps(
    client: MlflowClient, groups: dict[str, pd.DataFrame], config: CompareConfig, *, tags: dict, out: Path
) -> list[str]:
    """Baseline vs best robust of the same seed (paired) on the most scanner-sensitive test specimens."""
    if config.heatmaps.specimens == 0 or not {"baseline", "robust 1"} <= groups.keys():
        return []
    seeds = sorted(set(groups["baseline"]["seed"]) & set(groups["robust 1"]["seed"]))
    if not seeds:
        return []
    runs = {name: groups[name].set_index("seed").loc[seeds[0], "run_id"] for name in ("baseline", "robust 1")}
    loaded = {name: load_run_model(client, run_id) for name, run_id in runs.items()}
    store = FeatureStore(
        tags["raypath.features_root"], encoder=tags["raypath.fm"], tiling_hash=tags["raypath.tiling_hash"]
    )
    predictions = loaded["baseline"].predictions
    manifest = load_manifest_paths(config.heatmaps.manifest)
    images = []
    for specimen in pick_specimens(predictions, count=config.heatmaps.specimens):
        rows = specimen_views(
            models=loaded,
            store=store,
            predictions=predictions,
            specimen=specimen,
            manifest=manifest,
            thumbnail_mpp=config.heatmaps.thumbnail_mpp,
        )
        name = f"heatmap_{specimen}.png"
        heatmap_figure(rows, title=f"specimen {specimen} (seed {seeds[0]})", path=out / name)
        images.append(name)
    return images


def _register(client: MlflowClient, groups: dict[str, pd.DataFrame], table: pd.DataFrame,
              config: CompareConfig, *, fm: str, tags: dict[str, str]) -> str | None:
    """The best seed of the most robust configuration, as `raypath-<sweep>-<fm>@champion`."""
    if not config.register_model or "robust 1" not in groups:
        return None
    replicated = groups["robust 1"][groups["robust 1"]["phase"] == "replicates"]
    if replicated.empty:
        log.warning("%s: the chosen configuration has no replicate runs (replicates.seeds: 0), so no "
                    "model was saved to register", fm)
        return None
    best = replicated.sort_values(config.objectives[0].metric, ascending=False).iloc[0]
    metrics = table[table["model"] == "robust 1"]
    version_tags = {
        "fm": fm, "sweep_id": config.sweep_id, "weights_hash": tags.get("raypath.weights_hash", ""),
        "tiling_hash": tags.get("raypath.tiling_hash", ""), "seed": str(best["seed"]),
        "loss_weights": json.dumps({k: v for k, v in best["params"].items() if k.startswith("losses.")}),
        **{f"metric.{row.metric}": f"{row.mean:.4f} [{row.low:.4f}, {row.high:.4f}] over {row.n} seeds"
           for row in metrics.itertuples()},
    }
    return register_model(client, name=f"raypath-{config.sweep_id}-{fm}", run_id=best["run_id"],
                          description=f"most robust configuration of sweep {config.sweep_id} on {fm}",
                          tags=version_tags)


def compare_fm(client: MlflowClient, config: CompareConfig, *, fm: str, experiment_id: str) -> FmComparison:
    """Table, Pareto plot, heatmaps and registration for one FM; writes under <report_dir>/<fm>."""
    out = config.report_dir() / fm
    out.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(client, experiment_id)
    groups = model_groups(runs, config)
    if not groups:
        raise ValueError(f"sweep '{config.sweep_id}' on {fm}: no finished runs to compare")
    table = comparison_table(
        groups, metrics=present_metrics(pd.concat(groups.values())), level=config.ci_level
    )
    table.to_csv(out / "table.csv", index=False)
    tags = client.get_experiment(experiment_id).tags
    images = [
        _pareto(runs, groups, config, fm=fm, out=out),
        *_heatmaps(client, groups, config, tags=tags, out=out),
    ]
    result = FmComparison(
        fm=fm,
        table=table,
        wide=wide_table(table),
        images=images,
        registered=_register(client, groups, table, config, fm=fm, tags=tags),
    )
    title = f"raypath sweep {config.sweep_id}: {fm}"
    (out / "report.md").write_text(
        markdown_report(title=title, sections=[(fm, to_markdown(result.wide), images)], level=config.ci_level)
    )
    (out / "report.html").write_text(
        html_report(title=title, sections=[(fm, result.wide, images)], level=config.ci_level)
    )
    ledger = RunLedger(
        tracking_uri=config.tracking_uri(), experiment=client.get_experiment(experiment_id).name
    )
    log_report(ledger, sweep_id=config.sweep_id, fm=fm, directory=out)
    return result


def compare_sweep(config: CompareConfig) -> list[FmComparison]:
    """Every FM of the sweep, plus one combined report.md/.html at the top of the report directory."""
    client = MlflowClient(tracking_uri=config.tracking_uri(), registry_uri=config.tracking_uri())
    results = [
        compare_fm(client, config, fm=fm, experiment_id=eid)
        for fm, eid in sweep_experiments(client, config).items()
    ]
    root, title = config.report_dir(), f"raypath sweep {config.sweep_id}"
    (root / "report.md").write_text(
        markdown_report(
            title=title,
            sections=[(r.fm, to_markdown(r.wide), [f"{r.fm}/{i}" for i in r.images]) for r in results],
            level=config.ci_level,
        )
    )
    (root / "report.html").write_text(
        html_report(
            title=title,
            sections=[(r.fm, r.wide, [f"{r.fm}/{i}" for i in r.images]) for r in results],
            level=config.ci_level,
        )
    )
    return results
