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
SHOWN = ["row", "level", "n", "ri", "best_k", "knn_bacc", "ri_all", "apd_id", "apd_ood", "cs", "ari_class",
         "ari_center"]
log = logging.getLogger("bench_fm_robustness")


def cli(*args: str) -> float:
    """Run one `raypath` subcommand in its own process; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "raypath.cli", *args], check=True)
    return time.perf_counter() - started


def evaluate(*, features: Path, manifest: Path, labels: Path, out: Path,
             size: dict) -> tuple[pd.DataFrame, float]:
    """`raypath evaluate-fm` on every encoder of a store; returns its table and wall time."""
    seconds = cli("evaluate-fm", "--features", str(features), "--manifest", str(manifest), "--labels",
                  str(labels), "--out", str(out), "--set", f"tiles_per_slide={size['tiles_per_slide']}")
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


def section(results: dict[str, tuple[pd.DataFrame, dict[str, float]]], *, mode: str) -> str:
    """The results section: method notes, then one table and timing line per cohort."""
    parts = [header("FM robustness (PathoROB: robustness index, APD, clustering score)"),
             f"Mode `{mode}`. RI: exact cosine kNN, blocked (1024 queries × 65,536 keys per matmul, "
             "running top-k), on at most 20,000 (class × center)-stratified samples; k from "
             "{1,3,5,7,9,11,21,31,51,75,101} (capped by the smallest class) maximising kNN balanced "
             "accuracy of the biological class; `ri` "
             "excludes neighbours from the same specimen (rescans), `ri_all` only the sample itself. APD: "
             "logistic probe, patient-grouped splits, 5 increasingly class–center-correlated training splits "
             "(max strength 0.9), 3 repeats, in-domain (`apd_id`) and held-out center (`apd_ood`). CS = "
             "ARI(class) − ARI(center) of k-means (K by silhouette in 2..10, 5 restarts). Rows "
             "'+ centering' / '+ ComBat' apply `raypath.mil.correction` per center to the tile features "
             "first. Center = the manifest's center column where set, else the scanner.\n"]
    for name, (table, timings) in results.items():
        seconds = ", ".join(f"{stage} {value:.1f} s" for stage, value in timings.items())
        parts.append(f"### {name}\n\nWall time: {seconds}.\n\n{markdown(table)}")
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few specimens and two backbones")
    parser.add_argument("--cohorts", nargs="+", choices=sorted(COHORTS), default=list(COHORTS),
                        help="which cohorts to run (default: both)")
    parser.add_argument("--work", type=Path, help="working folder to keep (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    mode = "quick" if args.quick else "full"
    with tempfile.TemporaryDirectory(prefix="bench-fm-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = {COHORTS[name][0]: COHORTS[name][1](work, SIZES[mode]) for name in args.cohorts}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(section(results, mode=mode))
    log.info("wrote %s", RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
