"""`raypath compare`: per FM, the best-tuned baseline vs the chosen robust configurations, from MLflow.

Models are chosen on validation metrics only (`raypath.compare.groups`); the table is on the test
split, over replicates (seeds or folds) when the replicate phase ran, else single search runs.
Failed or unfinished runs never enter a group, and a sweep whose phases did not all complete is
refused (naming them). When no robust configuration reaches the accuracy floor the most robust one
is still shown, marked, and the report and console say so. Outputs per FM: table.csv,
stability.csv (the picks and their runner-ups), pareto.png, roc_scanners.png,
heatmap_<specimen>.png, report.md/.html (also logged to MLflow as a 'report' run), and the champion
registered as `raypath-<sweep>-<fm>@champion`.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from raypath.compare.champion import champion_group, register_champion
from raypath.compare.config import CompareConfig
from raypath.compare.groups import ModelGroups, compared_experiments, model_groups
from raypath.compare.heatmaps import heatmap_figure
from raypath.compare.pareto import pareto_plot
from raypath.compare.report import (
    FmSection,
    caveat_notes,
    comparison_table,
    html_report,
    markdown_report,
    present_metrics,
    wide_table,
)
from raypath.compare.roc import roc_figure
from raypath.compare.sections import model_lines, notes, split_notes
from raypath.compare.specimen_views import (
    RunModel,
    load_manifest_paths,
    load_run_model,
    pick_specimens,
    specimen_views,
)
from raypath.compare.stability import stability_note, stability_table
from raypath.store import FeatureStore
from raypath.sweep.phases import IncompleteSweepError, incomplete_phases
from raypath.sweep.selection import Selection, rank_robust, robustness_metric
from raypath.tracking.queries import (
    TrackingClient,
    experiment_name_of,
    experiment_tags,
    runs_frame,
    tracking_client,
)
from raypath.tracking.results import log_report
from raypath.tracking.runs import RunLedger
from raypath.tracking.store import ready_store

log = logging.getLogger(__name__)


@dataclass
class FmComparison:
    """One FM's comparison: the long table, its wide rendering, pictures, registered version."""

    fm: str
    table: pd.DataFrame
    wide: pd.DataFrame
    chosen: ModelGroups
    images: list[str] = field(default_factory=list)
    registered: str | None = None
    section: FmSection | None = None


def search_candidates(runs: pd.DataFrame, config: CompareConfig) -> Selection:
    """The search's ranking under the selection rule: the configurations that were (or would have
    been) replicated, with the runner-ups behind them, for the report's stability section."""
    search = runs[runs["phase"] == "search"] if "phase" in runs else runs
    return rank_robust(search, objectives=config.objectives, top_k=config.top_k,
                       tolerance=config.accuracy_tolerance, tie=config.tie_tolerance)


def _pareto(runs: pd.DataFrame, chosen: ModelGroups, config: CompareConfig, *, fm: str, out: Path) -> str:
    search = runs[(runs["phase"] == "search") & (runs["status"] == "FINISHED")]
    accuracy, robust = config.objectives[0].metric, robustness_metric(config.objectives)
    highlight = {name: search[search["config_key"].isin(set(g["config_key"]))]
                 for name, g in chosen.groups.items()}
    pareto_plot(search, accuracy=accuracy, robustness=robust, highlight=highlight,
                floor=chosen.selection.floor, title=f"{config.sweep_id} / {fm}", path=out / "pareto.png",
                champion=champion_group(chosen) if config.register_model else None)
    return "pareto.png"


def _replicate_models(client: TrackingClient, chosen: ModelGroups) -> dict[str, RunModel]:
    """Baseline and robust 1 of the first replicate both have (paired: same seed and split)."""
    groups = chosen.groups
    if chosen.phase != "replicates" or not {"baseline", "robust 1"} <= groups.keys():
        return {}
    shared = sorted(set(groups["baseline"]["seed"]) & set(groups["robust 1"]["seed"]))
    if not shared:
        return {}
    runs = {name: groups[name].set_index("seed").loc[shared[0], "run_id"]
            for name in ("baseline", "robust 1")}
    return {name: load_run_model(client, run_id) for name, run_id in runs.items()}


def _heatmaps(models: dict[str, RunModel], config: CompareConfig, *, tags: dict, out: Path) -> list[str]:
    """Baseline vs best robust on the most scanner-sensitive test specimens, true label in the title."""
    if config.heatmaps.specimens == 0 or not models:
        return []
    store = FeatureStore(tags["raypath.features_root"], encoder=tags["raypath.fm"],
                         tiling_hash=tags["raypath.tiling_hash"])
    predictions = models["baseline"].predictions
    manifest = load_manifest_paths(config.heatmaps.manifest)
    images = []
    for specimen in pick_specimens(predictions, count=config.heatmaps.specimens):
        rows = specimen_views(models=models, store=store, predictions=predictions, specimen=specimen,
                              manifest=manifest, thumbnail_mpp=config.heatmaps.thumbnail_mpp)
        truth = predictions.loc[predictions["specimen_id"] == specimen]
        label = f"label {truth['label'].iloc[0]}" if "label" in truth else f"time {truth['time'].iloc[0]:.1f}"
        name = f"heatmap_{specimen}.png"
        heatmap_figure(rows, title=f"specimen {specimen} ({label}; test split)", path=out / name)
        images.append(name)
    return images


def _roc(models: dict[str, RunModel], *, tags: dict, out: Path) -> list[str]:
    if not models or tags.get("raypath.task") != "binary":
        return []
    figure = roc_figure({name: m.predictions for name, m in models.items()},
                        title="per-scanner ROC, test split (one replicate)", path=out / "roc_scanners.png",
                        held_out=next(iter(models.values())).held_out_scanners)
    return [figure.name] if figure else []


def compare_fm(client: TrackingClient, config: CompareConfig, *, fm: str, experiment_id: str) -> FmComparison:
    """Table, plots, heatmaps, report and registration for one FM; writes under <report_dir>/<fm>."""
    out = config.report_dir() / fm
    out.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(client, experiment_id)
    chosen = model_groups(runs, config)
    if not chosen.groups:
        raise ValueError(f"sweep '{config.sweep_id}' on {fm}: no finished runs to compare")
    frame = pd.concat(chosen.groups.values())
    table = comparison_table(chosen.groups, metrics=present_metrics(frame), level=config.ci_level,
                             min_replicates=config.min_replicates)
    table.to_csv(out / "table.csv", index=False)
    candidates = search_candidates(runs, config)
    stability = stability_table(candidates, top_k=config.top_k)
    stability.to_csv(out / "stability.csv")
    tags = experiment_tags(client, experiment_id)
    models = _replicate_models(client, chosen)
    images = [_pareto(runs, chosen, config, fm=fm, out=out), *_roc(models, tags=tags, out=out),
              *_heatmaps(models, config, tags=tags, out=out)]
    labels = {"robust 1": "robust 1 (below the accuracy floor)"} if chosen.selection.below_floor else {}
    registered = register_champion(client, chosen, table, config, fm=fm, tags=tags)
    result = FmComparison(fm=fm, table=table, wide=wide_table(table, labels=labels), chosen=chosen,
                          images=images, registered=registered)
    prose = [*notes(chosen, config, fm=fm, registered=result.registered), *split_notes(tags),
             stability_note(candidates)]
    section = FmSection(fm=fm, wide=result.wide, notes=prose,
                        models=model_lines(chosen, tracking_uri=config.tracking_uri(),
                                           experiment_id=experiment_id),
                        metrics=list(dict.fromkeys(table["metric"])), images=images, stability=stability,
                        caveats=caveat_notes(table, labels=labels))
    _write_reports(out, title=f"raypath sweep {config.sweep_id}: {fm}", sections=[section], config=config)
    experiment = experiment_name_of(client, experiment_id)
    ledger = RunLedger(tracking_uri=config.tracking_uri(), experiment=experiment)
    log_report(ledger, sweep_id=config.sweep_id, fm=fm, directory=out)
    result.section = section
    return result


def _write_reports(directory: Path, *, title: str, sections: list[FmSection], config: CompareConfig) -> None:
    level = config.ci_level
    (directory / "report.md").write_text(markdown_report(title=title, sections=sections, level=level))
    (directory / "report.html").write_text(html_report(title=title, sections=sections, level=level))


def compare_sweep(config: CompareConfig) -> list[FmComparison]:
    """Every FM of the sweep, plus one combined report.md/.html at the top of the report directory."""
    uri = ready_store(config.tracking_uri())
    client = tracking_client(uri)
    experiments = compared_experiments(client, config)
    incomplete = [p for fm, eid in experiments.items() for p in incomplete_phases(client, eid, fm=fm)]
    if incomplete:
        raise IncompleteSweepError(
            f"sweep '{config.sweep_id}' has phases that did not complete: {'; '.join(incomplete)}. Nothing "
            "was compared or registered: run `raypath sweep` again with the same config to finish them")
    results = [compare_fm(client, config, fm=fm, experiment_id=eid) for fm, eid in experiments.items()]
    sections = [FmSection(fm=r.fm, wide=r.wide, notes=r.section.notes, models=r.section.models,
                          metrics=r.section.metrics, images=[f"{r.fm}/{i}" for i in r.images],
                          stability=r.section.stability, caveats=r.section.caveats)
                for r in results]
    _write_reports(config.report_dir(), title=f"raypath sweep {config.sweep_id}", sections=sections,
                   config=config)
    return results
