"""`raypath evaluate-fm` wall time on a cohort, and raypath's metrics against PathoROB's own code on
the same features.

1. The whole command as a user runs it (`raypath evaluate-fm ... --no-tracking`: every FM of the
   store, corrections none / centering / ComBat, tile and slide level, PathoROB's RI, APD and
   clustering score with raypath's variants beside them), default settings (a worker process per
   core), timed end to end; then again with `--set workers=1`.
2. The uncorrected tile features of the first FM (the command's own sampling) go to PathoROB's
   `robustness_index.compute` and `clustering_score.compute` (bifold-pathomics/PathoROB, run from a
   checkout with its own pinned environment: `--pathorob DIR --pathorob-python PY`, through
   `pathorob_driver.py`); raypath computes the same two metrics on the same array in this process.
   PathoROB's APD entry point is written for its three datasets' slide designs only, so APD has no
   PathoROB timing here (raypath's APD time is shown; its values are checked against PathoROB's in
   tests/evaluate_fm/test_pathorob_reference.py).

    .venv/bin/python benchmarks/bench_evaluate_fm.py [--features demo/features]
        [--manifest demo/cohort/manifest.csv] [--labels demo/cohort/labels.csv]
        [--pathorob /path/to/PathoROB --pathorob-python /path/to/venv/bin/python]

The demo cohort is what `make demo` writes (its synth, register and extract stages suffice).
Writes benchmarks/results/evaluate_fm.md.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import header, write_section

log = logging.getLogger("bench_evaluate_fm")
RESULTS = Path(__file__).resolve().parent / "results" / "evaluate_fm.md"


def run_command(args: argparse.Namespace, out: Path, *extra: str) -> tuple[float, float, int]:
    """`raypath evaluate-fm` in its own process: (wall seconds, CPU seconds of it and its worker
    processes, table rows)."""
    started, children = time.perf_counter(), os.times()
    subprocess.run([sys.executable, "-m", "raypath.cli", "evaluate-fm", "--features", str(args.features),
                    "--manifest", str(args.manifest), "--labels", str(args.labels), "--out", str(out),
                    "--no-tracking", *extra], check=True)
    seconds, ended = time.perf_counter() - started, os.times()
    cpu = (ended.children_user + ended.children_system) - (children.children_user + children.children_system)
    return seconds, cpu, sum(1 for _ in open(out / "table.csv")) - 1


def first_fm_tiles(args: argparse.Namespace):
    """The uncorrected tile sample of the store's first FM, exactly as the command samples it."""
    from raypath.cohort import load_labels, load_manifest
    from raypath.evaluate_fm.config import EvaluateFMConfig
    from raypath.evaluate_fm.data import cohort_frame, feature_sources, load_features
    from raypath.store import FeatureStore

    config = EvaluateFMConfig(features=str(args.features), manifest=args.manifest, labels=args.labels,
                              out=Path("unused"))
    manifest = load_manifest(config.manifest, check_files=False)
    labels = load_labels(config.labels, patients=set(manifest["patient_id"]))
    cohort = cohort_frame(manifest, labels, center=config.center)
    encoder, tiling_hash = feature_sources(config.features, encoders=[], tiling_hash=None)[0]
    store = FeatureStore(config.features, encoder=encoder, tiling_hash=tiling_hash)
    tiles, _ = load_features(store, cohort=cohort, tiles_per_slide=config.tiles_per_slide, seed=config.seed)
    return encoder, tiles, config


def raypath_metrics(tiles, config) -> dict:
    """raypath's PathoROB RI, clustering score and APD on the tiles, each timed."""
    from raypath.evaluate_fm import average_performance_drop, clustering_score, robustness_curve
    from raypath.evaluate_fm.apd import held_out_centers
    from raypath.evaluate_fm.ri import pathorob_k_grid

    started, cpu = time.perf_counter(), time.process_time()
    curve = robustness_curve(tiles.features, classes=tiles.classes, centers=tiles.centers,
                             groups=tiles.slide_ids, grid=pathorob_k_grid(config.knn.k_cap))
    ri_s, ri_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    clusters = clustering_score(tiles.features, classes=tiles.classes, centers=tiles.centers)
    cs_s, cs_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    try:
        average_performance_drop(tiles.features, classes=tiles.classes, centers=tiles.centers,
                                 slides=tiles.slide_ids, held_out=held_out_centers(tiles.centers, []))
        apd_s, apd_cpu = time.perf_counter() - started, time.process_time() - cpu
    except ValueError as exc:
        log.warning("APD not computed: %s", exc)
        apd_s = apd_cpu = float("nan")
    return {"ri_s": ri_s, "cs_s": cs_s, "apd_s": apd_s, "ri_cpu": ri_cpu, "cs_cpu": cs_cpu,
            "apd_cpu": apd_cpu, "ri": curve.at_best[0], "best_k": curve.best_k,
            "cs": clusters.score, "k_median": clusters.k}


def pathorob_metrics(args: argparse.Namespace, tiles, work: Path) -> dict:
    """PathoROB's own RI and clustering score on the same array (its environment, its checkout)."""
    arrays = work / "features.npz"
    np.savez(arrays, features=np.asarray(tiles.features, np.float32), classes=tiles.classes.astype(str),
             centers=tiles.centers.astype(str), slides=tiles.slide_ids.astype(str))
    env = {**os.environ, "PYTHONPATH": str(args.pathorob), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    driver = Path(__file__).resolve().parent / "pathorob_driver.py"
    output = subprocess.run([str(args.pathorob_python), str(driver), str(arrays), str(work / "pathorob"),
                             str(os.cpu_count() or 1)], env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=Path("demo/features"))
    parser.add_argument("--manifest", type=Path, default=Path("demo/cohort/manifest.csv"))
    parser.add_argument("--labels", type=Path, default=Path("demo/cohort/labels.csv"))
    parser.add_argument("--pathorob", type=Path, help="a PathoROB checkout (bifold-pathomics/PathoROB)")
    parser.add_argument("--pathorob-python", type=Path, help="python of an environment with PathoROB's pins")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from raypath.logs import setup_logging

    setup_logging()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        command_s, command_cpu, rows = run_command(args, Path(tmp) / "report")
        load.append(os.getloadavg()[0])
        one_s, one_cpu, _ = run_command(args, Path(tmp) / "report-1", "--set", "workers=1")
        load.append(os.getloadavg()[0])
        encoder, tiles, config = first_fm_tiles(args)
        ours = raypath_metrics(tiles, config)
        load.append(os.getloadavg()[0])
        theirs = pathorob_metrics(args, tiles, Path(tmp)) if args.pathorob and args.pathorob_python else None
        load.append(os.getloadavg()[0])
    lines = [header("evaluate-fm wall time, and raypath vs PathoROB's own code on the same features"),
             f"Cohort: `{args.features}` ({rows} table rows: FMs x corrections x levels). 1-min load average "
             f"during the run: {min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores (above the core "
             "count other work shared the machine and wall times are inflated).\n",
             f"`raypath evaluate-fm` end to end (default settings, no MLflow): **{command_s:.1f} s** "
             f"(CPU {command_cpu:.1f} s, workers included); with `--set workers=1`: {one_s:.1f} s "
             f"(CPU {one_cpu:.1f} s).\n",
             f"Same features for both: the uncorrected tile sample of `{encoder}` ({len(tiles)} tiles, "
             f"{tiles.features.shape[1]} dims, {len(set(tiles.slide_ids))} slides, "
             f"{len(set(tiles.classes))} classes, {len(set(tiles.centers))} centres); raypath in one "
             f"single-threaded process, PathoROB with its defaults (its kNN on "
             f"{os.cpu_count()} jobs, BLAS threads 1 as in the reference test).\n",
             "CPU s = the process's CPU time (threads included), which grows far less than wall time "
             "when other work shares the cores: the comparison to trust on a busy machine.\n",
             "| metric | raypath s | PathoROB s | raypath CPU s | PathoROB CPU s | raypath value | "
             "PathoROB value |", "|---|---|---|---|---|---|---|"]
    pr = theirs or {}
    nan = float("nan")
    lines += [f"| robustness index (k by kNN balanced accuracy) | {ours['ri_s']:.1f} | "
              f"{pr.get('ri_s', nan):.1f} | {ours['ri_cpu']:.1f} | {pr.get('ri_cpu', nan):.1f} | "
              f"{ours['ri']:.4f} (k = {ours['best_k']}) | see its summary |",
              f"| clustering score (K 2-30 by silhouette, 50 runs) | {ours['cs_s']:.1f} | "
              f"{pr.get('cs_s', nan):.1f} | {ours['cs_cpu']:.1f} | {pr.get('cs_cpu', nan):.1f} | "
              f"{ours['cs']:.6f} (median K {ours['k_median']}) | "
              f"{pr.get('cs', nan):.6f} (median K {pr.get('k_median', '-')}) |",
              f"| APD (20 iterations) | {ours['apd_s']:.1f} | not run (see above) | {ours['apd_cpu']:.1f} "
              "| | | |",
              ""]
    if theirs is None:
        lines.append("PathoROB was not run (no --pathorob / --pathorob-python given).\n")
    lines.append("Targets (issue 26): evaluate-fm on the demo cohort under 60 s on 2 cores, and no slower "
                 "than PathoROB's own code on the same features.\n")
    write_section(args.out, "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
