"""PathoROB metrics (RI, APD, clustering score) of FM features, raw and after post-hoc correction.

Two cohorts, both through the real CLI so the numbers are what a user gets:
1. slides: `raypath synth` (pyramidal SVS, several scanner profiles, every specimen scanned on
   every scanner) → `raypath extract` with the tiny random backbones → `raypath evaluate-fm`;
2. features: `raypath simulate` (feature-level cohort with a known per-scanner shift/gain) →
   `raypath evaluate-fm`.
Writes benchmarks/results/fm_robustness.md.
"""

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import header

HERE = Path(__file__).parent
RESULT = HERE / "results" / "fm_robustness.md"
SIZES = {
    "quick": {"specimens": 8, "scanners": ["aperio-gt450", "hamamatsu-s360", "leica-at2"],
              "encoders": ["tiny-uni", "tiny-virchow2"], "sim_specimens": 40, "tiles_per_slide": 32},
    "full": {"specimens": 24,
             "scanners": ["aperio-gt450", "hamamatsu-s360", "leica-at2", "philips-ultrafast"],
             "encoders": ["tiny-uni", "tiny-uni2-h", "tiny-virchow2", "tiny-h-optimus-0", "tiny-phikon-v2",
                          "tiny-hibou-l", "tiny-conch", "tiny-prov-gigapath"],
             "sim_specimens": 200, "tiles_per_slide": 64},
}
SHOWN = ["row", "level", "n", "ri", "best_k", "knn_bacc", "apd_id", "apd_ood", "cs", "ari_class",
         "ari_center", "ri_specimen", "apd_id_specimen", "apd_ood_specimen"]
# PathoROB's protocol except two cost caps, both PathoROB-sized: at most 7 balanced slides per APD
# cell (its Camelyon value) and 500 tiles per (class, center) cell of a clustering subset (its Tolkach set).
SETTINGS = ("apd.max_balanced_slides=7", "clustering.max_per_cell=500")
log = logging.getLogger("bench_fm_robustness")


def cli(*args: str) -> float:
    """Run one `raypath` subcommand in its own process; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "raypath.cli", *args], check=True)
    return time.perf_counter() - started


def evaluate(*, features: Path, manifest: Path, labels: Path, out: Path,
             size: dict) -> tuple[pd.DataFrame, float]:
    """`raypath evaluate-fm` on every encoder of a store; returns its table and wall time."""
    overrides = [flag for setting in (f"tiles_per_slide={size['tiles_per_slide']}", *SETTINGS)
                 for flag in ("--set", setting)]
    seconds = cli("evaluate-fm", "--features", str(features), "--manifest", str(manifest), "--labels",
                  str(labels), "--out", str(out), *overrides)
    return pd.read_csv(out / "table.csv"), seconds


def slide_cohort(work: Path, size: dict) -> tuple[pd.DataFrame, dict[str, float]]:
    """synth → extract (tiny backbones) → evaluate-fm."""
    timings = {"synth": cli("synth", "--out", str(work / "synth"), "--specimens", str(size["specimens"]),
                            "--scanners", *size["scanners"])}
    encoder_flags = [flag for name in size["encoders"] for flag in ("--encoder", name)]
    share = 1.0 / len(size["encoders"])  # all encoders' actors plus one reader fit on two cores
    manifest = work / "synth" / "manifest.csv"
    timings["extract"] = cli("extract", "--manifest", str(manifest), "--out", str(work / "features"),
                             *encoder_flags, "--set", f"encoder_cpus={share:.3f}")
    table, timings["evaluate-fm"] = evaluate(features=work / "features", manifest=manifest,
                                             labels=work / "synth" / "labels.csv", out=work / "report-slides",
                                             size=size)
    return table, timings


def simulated_cohort(work: Path, size: dict) -> tuple[pd.DataFrame, dict[str, float]]:
    """simulate (feature level, three scanners, no confounding) → evaluate-fm."""
    out = work / "simulated"
    timings = {"simulate": cli("simulate", "--out", str(out), "--specimens", str(size["sim_specimens"]),
                               "--set", "scanner_shift=0.5")}
    table, timings["evaluate-fm"] = evaluate(features=out / "features", manifest=out / "manifest.csv",
                                             labels=out / "labels.csv", out=work / "report-simulated",
                                             size=size)
    return table, timings


COHORTS = {"slides": ("synthetic slides, tiny random backbones (synth → extract)", slide_cohort),
           "simulated": ("feature-level simulated cohort (simulate)", simulated_cohort)}


def markdown(table: pd.DataFrame) -> str:
    """Rows sorted by level then RI, 3 decimals."""
    shown = table.sort_values(["level", "ri"], ascending=[True, False])[SHOWN]
    lines = ["| " + " | ".join(SHOWN) + " |", "|" + "---|" * len(SHOWN)]
    lines += ["| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def section(results: dict[str, tuple[pd.DataFrame, dict[str, float]]], *, mode: str,
            load: tuple[str, str]) -> str:
    """The results section: method notes, then one table and timing line per cohort."""
    parts = [header("FM robustness (PathoROB: robustness index, APD, clustering score)"),
             f"Mode `{mode}`; load average (1, 5, 15 min) at the start {load[0]}, at the end {load[1]} "
             "(the machine is shared: wall times depend on it, the metrics do not).\n\n"
             "Every metric follows PathoROB's protocol (bifold-pathomics/PathoROB, checked against its "
             "code in `tests/evaluate_fm/test_pathorob_reference.py`). RI (`ri`, `best_k`, `knn_bacc`): exact"
             " cosine kNN on all samples, same-slide neighbours excluded, k from 1, 3, 5, 7, 9, 11, 21, "
             "... below 600 maximising the biological kNN balanced accuracy (ties of the vote to the "
             "smallest label). APD (`apd_id`, `apd_ood`): logistic probe on raw features, C from "
             "10^-8..10^4 by validation balanced accuracy, splits from balanced to fully class-center-"
             "correlated, 20 reshuffles, mean of per-iteration ratios, the last center (sorted) held out "
             "as out-of-domain. CS: every 2-class x 2-center subset, K in 2..30 by cosine silhouette, "
             "ARI(class) - ARI(center) over 50 k-means runs. "
             f"Settings beyond the defaults: `{'`, `'.join(SETTINGS)}` (cost caps, PathoROB-sized). "
             "raypath's additions beside them: `ri_specimen` excludes same-specimen neighbours (rescans of "
             "one tissue); "
             "`apd_*_specimen` leave test slides of specimens seen in training out; slide-level rows use "
             "slide means. Rows '+ centering' / '+ ComBat' apply `raypath.mil.correction` per center to the "
             "tile features first (ComBat: neuroCombat's empirical Bayes). Center = the manifest's center "
             "column where set, else the scanner.\n"]
    for name, (table, timings) in results.items():
        seconds = ", ".join(f"{stage} {value:.1f} s" for stage, value in timings.items())
        parts.append(f"### {name}\n\nWall time: {seconds}.\n\n{markdown(table)}")
    return "\n".join(parts)


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few specimens and two backbones")
    parser.add_argument("--cohorts", nargs="+", choices=sorted(COHORTS), default=list(COHORTS),
                        help="which cohorts to run (default: both)")
    parser.add_argument("--work", type=Path, help="working folder to keep (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mode = "quick" if args.quick else "full"
    load_at_start = _load()
    with tempfile.TemporaryDirectory(prefix="bench-fm-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = {COHORTS[name][0]: COHORTS[name][1](work, SIZES[mode]) for name in args.cohorts}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(section(results, mode=mode, load=(load_at_start, _load())))
    log.info("wrote %s", RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
