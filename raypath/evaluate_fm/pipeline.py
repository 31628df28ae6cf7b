"""`raypath evaluate-fm` end to end: every FM × correction × level, then table, plot and MLflow.

Every (FM, correction, level) is an independent evaluation of a small array: they run on
`config.workers` processes (`parallel`), each logged with its metrics' times as it finishes, and
are reported in a fixed order whatever order they finish in.
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
from raypath.evaluate_fm.evaluate import LevelResult, evaluate_level
from raypath.evaluate_fm.parallel import run_unordered, usable_workers
from raypath.evaluate_fm.report import row_name, write_report
from raypath.mil.correction import Method, fit_correction
from raypath.store import FeatureStore
from raypath.tracking.evaluate_fm import default_uri, log_to_mlflow
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


def evaluate_all(evaluations: list[tuple[Keys, FeatureSet]], *, config: EvaluateFMConfig,
                 ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(table rows, curve rows) of every evaluation, on `config.workers` processes."""
    results: list[LevelResult | None] = [None] * len(evaluations)
    tasks = [(data,) for _, data in evaluations]
    for index, result in run_unordered(partial(evaluate_level, config=config), tasks,
                                       workers=usable_workers(config.workers), desc="evaluate-fm"):
        results[index] = result
        _log_row(evaluations[index][0], result)
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
        params = {"features": str(config.features), "tiles_per_slide": str(config.tiles_per_slide),
                  "center": config.center, "center_column": column, "seed": str(config.seed),
                  "held_out_scanners": ",".join(held_out) or "none"}
        log_to_mlflow(frame, artifacts=artifacts, uri=config.tracking_uri or default_uri(out),
                      experiment=config.experiment, params=params)
    return frame
