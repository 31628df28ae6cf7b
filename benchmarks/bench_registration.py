"""Registration at cohort scale on full-size synthetic 40x scans: throughput, error, tile-pair overlap.

For each specimen of a synthetic cohort (written here if missing: `raypath synth`'s writer, 40x,
two scanners, >= 60,000 px wide), in this process, one after another:

- throughput: `register_specimen` (thumbnail estimate + fine stage, the unit of work of the Ray job)
  timed in wall and CPU seconds; specimens per minute per core = 60 / CPU seconds per specimen
  (CPU time of this process, decoding threads included: independent of what else loads the machine);
- error: distance between the estimated and the synthesiser's true transform at the centres of the
  moving scan's tissue tiles, in microns; per scan the RMS and the largest; median and 95th percentile
  over scans; the thumbnail estimate alone (fine stage off) beside it;
- pair overlap: the moving scan tiled per scan and on the reference grid (`tile_registered`, the
  extraction's code, through the estimated transform), paired with the reference tiles by
  `tile_pairs` (as training pairs them); each pair's area overlap under the *true* transform
  (share of the reference tile's area covered by the moving tile, on a 64 x 64 sample grid).

Optionally (`--job`) the Ray job itself (`run_registration`, local Ray on this machine) end to end.
Writes benchmarks/results/registration.md.

    .venv/bin/python benchmarks/bench_registration.py --cohort /tmp/r27/full [--job]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import header, write_section

from raypath.logs import setup_logging
from raypath.slides import open_slide, tile_slide
from raypath.slides.config import TilingConfig
from raypath.slides.registration import Scan, Transform, register_specimen, tile_pairs
from raypath.slides.registration.config import RefineConfig, RegisterConfig
from raypath.slides.registration.grid import ReferenceScan, tile_registered
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig

log = logging.getLogger("bench_registration")
RESULTS = Path(__file__).resolve().parent / "results" / "registration.md"
SAMPLES = 64
TILING = TilingConfig()  # 224 px at 0.5 um/px, min tissue 0.5: the extraction default


def transform_of(row: pd.Series | dict) -> Transform:
    return Transform(rotation_deg=row["rotation_deg"], tx=row["tx"], ty=row["ty"], scale=row["scale"])


def overlap(reference: np.ndarray, moving: np.ndarray, *, ref_side: float, moving_side: float,
            truth: Transform) -> np.ndarray:
    """Area share of each reference tile (top-left corners, reference level-0) covered by its paired
    moving tile (moving level-0), the moving tile placed by the true transform."""
    u = (np.arange(SAMPLES) + 0.5) / SAMPLES * ref_side
    offsets = np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)
    inverse = truth.inverse()
    shares = np.empty(len(reference))
    for i, (corner, other) in enumerate(zip(reference, moving, strict=True)):
        points = inverse.apply(corner + offsets) - other
        shares[i] = np.mean(np.all((points >= 0) & (points < moving_side), axis=1))
    return shares


def pair_stats(ref_grid, moving_grid, *, estimate: Transform, truth: Transform, mpp: float) -> dict:
    pairs = tile_pairs(coords_a=ref_grid.coords, coords_b=moving_grid.coords, transform_a=Transform(),
                       transform_b=estimate, extent_l0=(ref_grid.extent_l0, moving_grid.extent_l0))
    ref, mov = ref_grid.coords[pairs[:, 0]], moving_grid.coords[pairs[:, 1]]
    shares = overlap(ref, mov, ref_side=ref_grid.extent_l0, moving_side=moving_grid.extent_l0, truth=truth)
    centres = truth.apply(mov + moving_grid.extent_l0 / 2) - (ref + ref_grid.extent_l0 / 2)
    return {"pairs": len(pairs), "overlap": shares, "offset_um": np.linalg.norm(centres, axis=1) * mpp,
            "moving_tiles": len(moving_grid), "reference_tiles": len(ref_grid)}


CONFIGS = {"refined": RegisterConfig(), "thumbnail": RegisterConfig(refine=RefineConfig(enabled=False))}


def timed_registration(specimen: str, reference: Scan, moving: list[Scan]) -> dict[str, tuple]:
    """(rows, wall s, CPU s) of `register_specimen` with the fine stage and with the thumbnail only."""
    timed = {}
    for name, config in CONFIGS.items():
        wall, cpu = time.perf_counter(), time.process_time()
        rows = register_specimen(specimen, reference=reference, moving=moving, config=config)
        timed[name] = (rows, time.perf_counter() - wall, time.process_time() - cpu)
    return timed


def grids(scan: Scan, reference: Scan, estimate: Transform):
    """The moving scan's tiles per scan and on the reference grid (the extraction's code)."""
    with open_slide(scan.path) as reader:
        return tile_slide(reader, TILING), tile_registered(
            reader, TILING, reference=ReferenceScan(path=reference.path, transform=estimate))


def errors_um(timed: dict, index: int, points: np.ndarray, truth: Transform, mpp: float) -> dict[str, float]:
    """RMS and largest distance (microns) of each estimate from the truth at `points`."""
    out = {}
    for name, (rows, _, _) in timed.items():
        error = np.linalg.norm(transform_of(rows[index]).apply(points) - truth.apply(points), axis=1) * mpp
        out |= {f"{name}_rms_um": float(np.sqrt(np.mean(error**2))), f"{name}_max_um": float(error.max())}
    return out


def size(truth: pd.DataFrame, slide_id: str) -> str:
    return f"{int(truth.loc[slide_id, 'width'])} x {int(truth.loc[slide_id, 'height'])}"


def measure_scan(
    scan: Scan, reference: Scan, index: int, *, timed: dict, ref_grid, truth: pd.DataFrame
) -> dict:
    true, row = transform_of(truth.loc[scan.slide_id]), timed["refined"][0][index]
    estimate, mpp = transform_of(row), float(truth.loc[reference.slide_id, "mpp"])
    per_scan, on_reference = grids(scan, reference, estimate)
    centres = per_scan.coords + per_scan.extent_l0 / 2
    pairs = {name: pair_stats(ref_grid, grid, estimate=estimate, truth=true, mpp=mpp)
             for name, grid in (("per_scan", per_scan), ("reference_grid", on_reference))}
    return {"slide_id": scan.slide_id, "relative_rotation_deg": true.rotation_deg,
            "size": size(truth, scan.slide_id), "reference_size": size(truth, reference.slide_id),
            "residual_um": row["residual_um"], "regions": row["regions"], "weak": row["weak"],
            **errors_um(timed, index, centres, true, mpp), **pairs,
            "wall_s": timed["refined"][1], "cpu_s": timed["refined"][2],
            "thumbnail_wall_s": timed["thumbnail"][1], "thumbnail_cpu_s": timed["thumbnail"][2]}


def measure_specimen(cohort: Path, group: pd.DataFrame, truth: pd.DataFrame) -> list[dict]:
    """Register one specimen (with and without the fine stage) and measure every moving scan."""
    reference_id = group["reference_slide_id"].iloc[0]
    scans = {s: Scan(slide_id=s, path=str(cohort / "slides" / f"{s}.svs")) for s in group["slide_id"]}
    moving = [scans[s] for s in sorted(scans) if s != reference_id]
    timed = timed_registration(group["specimen_id"].iloc[0], scans[reference_id], moving)
    with open_slide(scans[reference_id].path) as reader:
        ref_grid = tile_slide(reader, TILING)
    results = [measure_scan(scan, scans[reference_id], index, timed=timed, ref_grid=ref_grid, truth=truth)
               for index, scan in enumerate(moving, start=1)]
    for r in results:
        log.info("%s: rms %.3f um (thumbnail only %.2f um), residual %.3f um, pair overlap median %.3f "
                 "on the reference grid (%.3f per scan), %.1f s CPU", r["slide_id"], r["refined_rms_um"],
                 r["thumbnail_rms_um"], r["residual_um"], np.median(r["reference_grid"]["overlap"]),
                 np.median(r["per_scan"]["overlap"]), r["cpu_s"])
    return results


def run_job(cohort: Path, work: Path) -> dict:
    """The Ray job (local Ray on this machine) over the cohort, from scratch."""
    from raypath.register.run import run_registration

    out = work / "registration.parquet"
    summary = run_registration(RegisterConfig(manifest=cohort / "manifest.csv", out=out, run_id="bench"))
    return {"seconds": summary.seconds, "done": summary.done, "nodes": summary.nodes,
            "per_min": summary.specimens_per_min}


def hours_for(specimens: int, *, per_min_per_core: float, cores: int, nodes: int) -> float:
    return specimens / (per_min_per_core * cores * nodes) / 60.0


GRIDS = (("per_scan", "per-scan grid"), ("reference_grid", "reference grid"))
SCAN_COLUMNS = ("scan", "relative rotation (deg)", "rotation bound", "error RMS (um)", "error max (um)",
                "thumbnail only RMS (um)", "residual (um)", "patches agreeing",
                "pairs per scan / reference grid", "overlap median per scan", "overlap median reference grid",
                "CPU s", "wall s")


def cohort_text(frame: pd.DataFrame, synth: SynthConfig, load: tuple[float, float]) -> str:
    references, moving = (", ".join(sorted(set(frame[c]))) for c in ("reference_size", "size"))
    return (f"Cohort: `raypath synth` writer, {synth.specimens} specimens x {len(synth.scanners)} scanners "
            f"({', '.join(synth.scanners)}), 40x, field {synth.field_um[0]:g} x {synth.field_um[1]:g} um, "
            f"rotation on glass +-{synth.max_rotation_deg:g} deg and shift +-{synth.max_shift_um:g} um per "
            f"scan, seed {synth.seed}; references {references} px, moving scans {moving} px. Registration "
            "with the defaults (thumbnails at "
            "4 um/px compared at <= 1024 px; fine stage on 16 patches of 256 px at <= 2 um/px). 1-min load "
            f"average {load[0]:.1f} at the start and {load[1]:.1f} at the end, on 2 cores shared with other "
            "work: wall times are inflated by it, CPU times are not.\n")


def scan_row(r: dict) -> str:
    angle = r["relative_rotation_deg"]
    pairs = f"{r['per_scan']['pairs']} / {r['reference_grid']['pairs']}"
    cells = [r["slide_id"], f"{angle:.2f}", f"{rotation_bound(angle):.3f}",
             f"{r['refined_rms_um']:.3f}", f"{r['refined_max_um']:.3f}", f"{r['thumbnail_rms_um']:.2f}",
             f"{r['residual_um']:.3f}", str(r["regions"]), pairs,
             f"{np.median(r['per_scan']['overlap']):.3f}", f"{np.median(r['reference_grid']['overlap']):.3f}",
             f"{r['cpu_s']:.1f}", f"{r['wall_s']:.1f}"]
    return "| " + " | ".join(cells) + " |"


def error_rows(frame: pd.DataFrame) -> list[str]:
    refined, thumb = frame["refined_rms_um"], frame["thumbnail_rms_um"]
    return [f"| registration error over scans (RMS over tissue tiles), median / 95th percentile (um) | "
            f"{refined.median():.3f} / {refined.quantile(0.95):.3f} |",
            f"| thumbnail estimate alone, median / 95th percentile (um) | {thumb.median():.2f} / "
            f"{thumb.quantile(0.95):.2f} |",
            f"| largest error at any tissue tile of any scan (um) | {frame['refined_max_um'].max():.3f} |"]


def overlap_rows(results: list[dict]) -> list[str]:
    rows = []
    for grid, label in GRIDS:
        shares = np.concatenate([r[grid]["overlap"] for r in results])
        offsets = np.concatenate([r[grid]["offset_um"] for r in results])
        rows += [f"| pair area overlap, {label}: median / 5th percentile / min ({len(shares)} pairs) | "
                 f"{np.median(shares):.3f} / {np.quantile(shares, 0.05):.3f} / {shares.min():.3f} |",
                 f"| pair centre offset, {label}: median / max (um) | {np.median(offsets):.2f} / "
                 f"{offsets.max():.2f} |"]
    return rows


def throughput_rows(frame: pd.DataFrame, job: dict | None) -> tuple[list[str], float]:
    specimens = frame.groupby(frame["slide_id"].str.split("-").str[0]).first()
    cpu = float(specimens["cpu_s"].mean())
    rows = [f"| CPU s per specimen (one moving scan), fine stage on | {cpu:.2f} |",
            f"| wall s per specimen on this loaded machine | {float(specimens['wall_s'].mean()):.1f} |",
            f"| CPU s per specimen, thumbnail estimate alone | "
            f"{float(specimens['thumbnail_cpu_s'].mean()):.2f} |",
            f"| **specimens per minute per core** | **{60.0 / cpu:.1f}** |"]
    if job is not None:
        rows.append(f"| Ray job end to end (local Ray, 2 CPUs, its start included): {job['done']} specimens "
                    f"in {job['seconds']:.0f} s | {job['per_min']:.2f} specimens/min |")
    return rows, 60.0 / cpu


def hours_table(per_min_per_core: float) -> list[str]:
    lines = ["Hours for 9,000 specimens (one moving scan each) at this rate, one task per core:", "",
             "| nodes | 2 cores each | 16 cores each | 64 cores each |", "| ---: | ---: | ---: | ---: |"]
    for nodes in (1, 2, 4, 8):
        cells = [f"{hours_for(9000, per_min_per_core=per_min_per_core, cores=c, nodes=nodes):.2f}"
                 for c in (2, 16, 64)]
        lines.append(f"| {nodes} | " + " | ".join(cells) + " |")
    return lines


def report(results: list[dict], *, job: dict | None, synth: SynthConfig, load: tuple[float, float]) -> str:
    frame = pd.DataFrame(results)
    throughput, per_min_per_core = throughput_rows(frame, job)
    lines = [header("Registration on full-size synthetic 40x scans"), cohort_text(frame, synth, load),
             "| " + " | ".join(SCAN_COLUMNS) + " |", "| --- |" + " ---: |" * (len(SCAN_COLUMNS) - 1),
             *map(scan_row, results), "", "| measure | value |", "| --- | ---: |", *error_rows(frame),
             *overlap_rows(results), *throughput, "", *hours_table(per_min_per_core), "",
             "The overlap of reference-grid pairs is bounded by the scans' relative rotation: tiles are "
             "axis-aligned squares in each scan and never resampled, so two concentric tiles rotated by the "
             "rotation above overlap by at most the 'rotation bound' column; the registration error costs "
             "the rest. Per-scan grids pair tiles up to half a tile apart."]
    return "\n".join(lines) + "\n"


def rotation_bound(angle_deg: float) -> float:
    """Area overlap of two concentric unit squares rotated by `angle_deg` against each other."""
    u = (np.arange(4 * SAMPLES) + 0.5) / (4 * SAMPLES) - 0.5
    points = Transform(rotation_deg=angle_deg).apply(np.stack(np.meshgrid(u, u), -1).reshape(-1, 2))
    return float(np.mean(np.all(np.abs(points) <= 0.5, axis=1)))


def cohort_config(args: argparse.Namespace) -> SynthConfig:
    """The cohort's own config when it exists (synth.json), else the one the flags describe."""
    recorded = args.cohort / "synth.json"
    if recorded.exists():
        return SynthConfig.model_validate_json(recorded.read_text())
    return SynthConfig(seed=args.seed, specimens=args.specimens, field_um=tuple(args.field_um),
                       magnification=40, workers=args.workers, scanners=["aperio-gt450", "hamamatsu-s360"],
                       max_shift_um=200.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, required=True, help="cohort directory (written if missing)")
    parser.add_argument("--specimens", type=int, default=4)
    parser.add_argument("--field-um", type=float, nargs=2, default=(16000.0, 8000.0))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="processes writing slides")
    parser.add_argument("--job", action="store_true", help="also run the Ray job end to end")
    args = parser.parse_args()
    setup_logging()
    load_start = os.getloadavg()[0]
    synth = cohort_config(args)
    write_cohort(synth, args.cohort)
    truth = pd.read_csv(args.cohort / "truth.csv")
    indexed = truth.set_index("slide_id")
    results = [r for _, group in truth.groupby("specimen_id")
               for r in measure_specimen(args.cohort, group, indexed)]
    job = run_job(args.cohort, args.cohort.parent / f"{args.cohort.name}-bench-job") if args.job else None
    write_section(RESULTS, report(results, job=job, synth=synth, load=(load_start, os.getloadavg()[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
