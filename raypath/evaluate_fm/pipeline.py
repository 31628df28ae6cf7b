"""`raypath evaluate-fm` end to end: every FM × correction × level, then table, plot and MLflow.

Every (FM, correction, level) is an independent evaluation of a small array. Its clustering score
and APD (seconds each) run as separate tasks on `config.workers` processes (`parallel`), the
largest (tile level) first; meanwhile this process computes every RI (its torch kNN is loaded
here only). Each metric is logged as it finishes, each row once it is complete, and the rows are
reported in a fixed order whatever order they finish in.
"""

import logging
from functools import partial
from pathlib import Path

import pandas as pd

from raypath.evaluate_fm.config import EvaluateFMConfig
from raypath.evaluate_fm.data import (
    FeatureSet,
    check_encoders,
    cohort_frame,
    confounder_column,
    feature_sources,
    load_features,
)
from raypath.evaluate_fm.evaluate import LevelResult, level_result, robustness
from raypath.evaluate_fm.measure import POOLED, measure, timed
from raypath.evaluate_fm.parallel import run_unordered, single_threaded, usable_workers
from raypath.evaluate_fm.report import row_name, write_report
from raypath.mil.correction import Method, fit_correction
from raypath.store import FeatureStore
from raypath.train.split_policy import held_out_scanners

log = logging.getLogger(__name__)
Keys = dict[str, object]  # fm, correction, row, level of one table row


def corrected(tiles: FeatureSet, slides: FeatureSet, *, method: Method) -> tuple[FeatureSet, FeatureSet]:
    """Post-hoc per-center correction (raypath.mil.correction), fit on the tiles of every slide.

    The correction is an affine map per center, so applying it to slide means equals averaging the
    corrected tiles: both levels see the same corrected features.
    """
    if method == "none":
        return tiles, slides
    fitted = fit_correction(tiles.features, tiles.centers, method=method)
    return (tiles.with_features(fitted.transform(tiles.features, tiles.centers)),
            slides.with_features(fitted.transform(slides.features, slides.centers)))


def _curve_rows(result: LevelResult, keys: Keys) -> list[dict[str, object]]:
    rows = []
    for variant, curve in result.curves.items():
        points = zip(curve.ks, curve.robustness_index, curve.balanced_accuracy, strict=True)
        rows += [{**keys, "variant": variant, "k": int(k), "ri": float(ri), "knn_bacc": float(acc)}
                 for k, ri, acc in points]
    return rows


def source_evaluations(store: FeatureStore, *, fm: str, cohort: pd.DataFrame, config: EvaluateFMConfig,
                       ) -> list[tuple[Keys, FeatureSet]]:
    """(table keys, samples) of one FM under every configured correction and level."""
    tiles, slides = load_features(store, cohort=cohort, tiles_per_slide=config.tiles_per_slide,
                                  seed=config.seed)
    log.info("%s: %d tiles sampled from %d slides", fm, len(tiles), len(slides))
    evaluations = []
    for method in config.corrections:
        fixed_tiles, fixed_slides = corrected(tiles, slides, method=method)
        for level in config.levels:
            keys = {"fm": fm, "correction": method, "row": row_name(fm, method), "level": level}
            evaluations.append((keys, fixed_tiles if level == "tile" else fixed_slides))
    return evaluations


def _log_row(keys: Keys, result: LevelResult) -> None:
    values = ", ".join(f"{k}={v:.3f}" for k, v in result.summary().items() if isinstance(v, float))
    times = ", ".join(f"{name} {seconds:.1f} s (CPU {result.cpu_seconds[name]:.1f} s)"
                      for name, seconds in result.seconds.items())
    log.info("%s %s (%d samples): %s [%s]", keys["row"], keys["level"], result.n_samples, values, times)


def _pooled_tasks(evaluations: list[tuple[Keys, FeatureSet]]) -> list[tuple[int, str]]:
    """(evaluation index, metric) of every pooled metric, the largest arrays first: a long task
    started last would leave the other cores idle at the end."""
    order = sorted(range(len(evaluations)), key=lambda index: -len(evaluations[index][1]))
    return [(index, metric) for index in order for metric in POOLED]


def _log_metric(keys: Keys, metric: str, wall: float, cpu: float) -> None:
    log.info("%s %s: %s in %.1f s (CPU %.1f s)", keys["row"], keys["level"], metric, wall, cpu)


def evaluate_all(evaluations: list[tuple[Keys, FeatureSet]], *, config: EvaluateFMConfig,
                 ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(table rows, curve rows) of every evaluation: pooled metrics on `config.workers` processes,
    every RI in this process while they run."""
    tasks = _pooled_tasks(evaluations)
    pooled = run_unordered(partial(measure, config=config), [(evaluations[i][1], m) for i, m in tasks],
                           workers=usable_workers(config.workers), desc="evaluate-fm metrics")
    metrics: list[dict[str, object]] = [{} for _ in evaluations]
    with single_threaded():
        for index, (keys, data) in enumerate(evaluations):
            metrics[index]["RI"] = timed(lambda data=data: robustness(data, config))
            _log_metric(keys, "RI", *metrics[index]["RI"][1:])
    results: list[LevelResult | None] = [None] * len(evaluations)
    for task, outcome in pooled:
        index, metric = tasks[task]
        metrics[index][metric] = outcome
        _log_metric(evaluations[index][0], metric, *outcome[1:])
        if len(metrics[index]) == 1 + len(POOLED):
            results[index] = level_result(evaluations[index][1], metrics[index])
            _log_row(evaluations[index][0], results[index])
    table, curves = [], []
    for (keys, _), result in zip(evaluations, results, strict=True):
        table.append({**keys, **result.summary()})
        curves += _curve_rows(result, keys)
    return table, curves


def run_evaluation(config: EvaluateFMConfig, *, manifest: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Evaluate every (encoder, tiling hash) found; write the report and log it; return the table."""
    config.require_paths()
    held_out = held_out_scanners(config.apd.held_out_scanners, labels=config.labels)
    config = config.model_copy(update={"apd": config.apd.model_copy(update={"held_out_scanners": held_out})})
    out = Path(config.out)
    cohort = cohort_frame(manifest, labels, center=config.center,
                          sources=(str(config.manifest), str(config.labels)))
    column = confounder_column(manifest, config.center)
    log.info("confounder (PathoROB's centers): the manifest's %r column (center: %s)", column, config.center)
    sources = feature_sources(config.features, encoders=config.encoders, tiling_hash=config.tiling_hash)
    several_hashes = len({h for _, h in sources}) > 1
    stores = [FeatureStore(config.features, encoder=encoder, tiling_hash=tiling_hash)
              for encoder, tiling_hash in sources]
    check_encoders(stores)
    evaluations = []
    for store in stores:
        fm = f"{store.encoder}@{store.tiling_hash}" if several_hashes else store.encoder
        evaluations += source_evaluations(store, fm=fm, cohort=cohort, config=config)
    table, curves = evaluate_all(evaluations, config=config)
    frame = pd.DataFrame(table)
    artifacts = write_report(frame, pd.DataFrame(curves), out,
                             confounder=f"'{column}' (center: {config.center})")
    if config.tracking:
        from raypath.tracking.evaluate_fm import default_uri, log_to_mlflow  # MLflow loads in seconds

        params = {"features": str(config.features), "tiles_per_slide": str(config.tiles_per_slide),
                  "center": config.center, "center_column": column, "seed": str(config.seed),
                  "held_out_scanners": ",".join(held_out) or "none"}
        log_to_mlflow(frame, artifacts=artifacts, uri=config.tracking_uri or default_uri(out),
                      experiment=config.experiment, params=params)
    return frame
