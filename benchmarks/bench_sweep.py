"""Sweep throughput: trained configurations per hour and Tune's per-trial overhead share.

Full run (targets: >= 1,000 configurations in <= 60 min, overhead < 10%; issue 26: >= 4,000
configurations per hour on 2 cores, overhead < 5%):
    .venv/bin/python benchmarks/bench_sweep.py
Quick check (small cohort, few configurations):
    .venv/bin/python benchmarks/bench_sweep.py --quick
A shorter run on the reference cohort: `--configs 128`.

Reference cohort: simulated, 200 specimens x 3 scanners, 128 tiles x 256 dims, up to 20 epochs,
Optuna (multi-objective TPE) + ASHA, packs of 8 configurations, MLflow on embedded SQLite.
Overhead share = 1 - (sum of Tune's time_total_s over packs) / (wall x concurrent trials): the
part of the machine's time not spent inside trainables (scheduling, actor start, result
plumbing, the driver's MLflow writes and Optuna asks); "after start-up" leaves out the one-off
time before the first trainable runs (Ray workers, imports). CPU seconds (the trainables' training
threads, the driver) are reported beside wall time: on a machine others share, wall time grows with
their load and CPU time far less. `--no-taper` keeps full-size packs to the end. A second table
compares fused training (G configurations per step) with one configuration at a time on the same
data, per epoch.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from machine import write_section

from raypath.cluster import connect
from raypath.logs import setup_logging
from raypath.mil.bags import simulated_bagset
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.simulate.store import write_feature_cohort
from raypath.sweep.config import SweepConfig
from raypath.sweep.driver import run_sweep
from raypath.train.config import TrainConfig
from raypath.train.engine import PackMember, train_pack

log = logging.getLogger("bench_sweep")
RESULTS = Path(__file__).parent / "results" / "sweep.md"
SPACE = {
    "optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3},
    "optimizer.weight_decay": {"type": "loguniform", "low": 1e-6, "high": 1e-2},
    "losses.infonce": {"type": "uniform", "low": 0.0, "high": 1.0},
    "losses.score_consistency": {"type": "uniform", "low": 0.0, "high": 5.0},
    "losses.tau": {"type": "uniform", "low": 0.05, "high": 0.5},
}


def settings(quick: bool) -> dict:
    if quick:
        return {"specimens": 60, "tiles": 32, "dim": 64, "configs": 48, "epochs": 8, "pack": 8, "grace": 2}
    return {"specimens": 200, "tiles": 128, "dim": 256, "configs": 1024, "epochs": 20, "pack": 8, "grace": 4}


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({cpu}), {mem / 2**20:.0f} GiB RAM, load avg {os.getloadavg()[0]:.1f}"


def sweep_config(s: dict, *, cohort: Path, out: Path, batch: int | None = None, taper: bool = True
                 ) -> SweepConfig:
    return SweepConfig.model_validate(
        {
            "sweep_id": "bench",
            "output_dir": str(out),
            "features": {
                "root": str(cohort / "features"),
                "fms": [f"sim-{s['dim']}"],
                "labels": str(cohort / "labels.csv"),
                "splits": str(cohort / "splits.csv"),
            },
            "train": {
                "epochs": s["epochs"],
                "batch_specimens": 16,
                "early_stopping": {"patience": 5},
                "model": {"hidden": 128, "attention_dim": 64, "projection_dim": 64, "dropout": 0.0},
            },
            "space": SPACE,
            "num_samples": s["configs"],
            "pack_size": s["pack"],
            "objectives": [
                {"metric": "val/auc", "mode": "max"},
                {"metric": "val/score_spread", "mode": "min"},
            ],
            "asha": {"grace_period": s["grace"], "reduction_factor": 3},
            "search_batch": batch,
            "taper_tail": taper,
            "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2},
            "replicates": {"seeds": 0},
        }
    )


def fused_speed(data, *, epochs: int, pack: int) -> list[tuple[int, float]]:
    """Seconds per epoch per configuration for G=1 and G=pack (early stopping off, same batches)."""
    config = TrainConfig.model_validate(
        {
            "epochs": epochs,
            "batch_specimens": 16,
            "num_threads": 1,
            "early_stopping": {"enabled": False},
            "losses": {"infonce": 0.5, "score_consistency": 1.0},
        }
    )
    rows = []
    for size in (1, pack):
        started = time.perf_counter()
        train_pack(members=[PackMember(key=str(i), config=config) for i in range(size)], data=data, seed=0)
        rows.append((size, (time.perf_counter() - started) / epochs / size))
    return rows


@dataclass(frozen=True)
class PackTotals:
    """What the packs' result.json files say about the whole search."""

    batch_idle: float  # share of the batches' slot time idle waiting for a batch's slowest pack
    epochs: int  # pack-epochs trained (a load-independent measure of the work early stopping left)
    waited_s: float  # seconds trials waited in their epoch reports for the driver
    cpu_s: float  # CPU seconds of the trainables' training threads
    alone_s: float  # seconds the last pack ran after every other pack had ended
    last_packs: str  # sizes of the last packs, in order


def pack_totals(experiment: Path) -> PackTotals:
    """From Tune's result.json of each pack (last line: waits and CPU up to the pack's last report;
    timestamps in whole seconds). Batch idle share = Σ over batches of Σ_packs (slowest - own) /
    Σ (packs x slowest)."""
    durations: dict[int, list[float]] = {}
    epochs, waited, cpu, ends = 0, 0.0, 0.0, []
    for result in experiment.glob("pack_*/result.json"):
        lines = result.read_text().splitlines()
        if not lines:
            continue
        last = json.loads(lines[-1])
        durations.setdefault(int(last["config"].get("batch", 0)), []).append(float(last["time_total_s"]))
        epochs += int(last["epoch"])
        waited += float(last.get("driver_wait_s", 0.0))
        cpu += float(last.get("cpu_s", 0.0))
        ends.append((int(last["config"].get("pack_index", 0)), float(last["timestamp"]),
                     len(last["config"]["pack"])))
    idle = sum(max(t) * len(t) - sum(t) for t in durations.values())
    slots = sum(max(t) * len(t) for t in durations.values())
    finish = sorted(end for _, end, _ in ends)
    sizes = [size for _, _, size in sorted(ends)[-10:]]
    return PackTotals(batch_idle=idle / slots if slots else 0.0, epochs=epochs, waited_s=waited, cpu_s=cpu,
                      alone_s=finish[-1] - finish[-2] if len(finish) > 1 else 0.0,
                      last_packs=", ".join(map(str, sizes)))


def report(s: dict, outcome, fused: list[tuple[int, float]], *, command: str, machine_text: str,
           batch: int, totals: PackTotals, taper: bool, driver_cpu_s: float, load_end: float) -> str:
    parallel = 2
    overhead = 1 - outcome.trainable_s / (outcome.wall_s * parallel)
    steady = 1 - outcome.trainable_s / ((outcome.wall_s - outcome.startup_s) * parallel)
    per_hour = outcome.trials / outcome.wall_s * 3600
    lines = [
        "## Sweep throughput (`bench_sweep.py`)",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine_text} at the start, {load_end:.1f} at the end  ",
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Cohort: {s['specimens']} specimens x 3 scanners, {s['tiles']} tiles x {s['dim']} dims; up to "
        f"{s['epochs']} epochs; Optuna TPE (2 objectives) asked in batches of {batch} packs, told in pack "
        f"order + successive halving by batch (grace {s['grace']}, rf 3); packs of {s['pack']}"
        f"{', the tail tapered' if taper else ', the tail not tapered'}; 2 concurrent "
        "trials x 1 CPU; MLflow on embedded SQLite (driver-only writes).",
        "",
        "| configurations | packs | failed packs | wall s | configs / hour | Σ in-trainable s "
        "| overhead share | start-up s | overhead after start-up |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {outcome.trials} | {outcome.packs} | {outcome.errored_packs} | {outcome.wall_s:.0f} | "
        f"{per_hour:.0f} | {outcome.trainable_s:.0f} | {overhead:.1%} | {outcome.startup_s:.0f} | "
        f"{steady:.1%} |",
        "",
        f"Waiting for each batch's slowest pack left {totals.batch_idle:.1%} of the batches' slot time idle; "
        f"the packs trained {totals.epochs} pack-epochs in all (early stopping included). Trials waited "
        f"{totals.waited_s:.0f} s in all in their epoch reports for the driver's round trip. The last packs "
        f"held {totals.last_packs} configurations; the last one ran alone for {totals.alone_s:.0f} s at the "
        f"end. CPU time: {totals.cpu_s:.0f} s in the trainables' training threads, {driver_cpu_s:.0f} s in "
        "the driver (Tune, Optuna, MLflow); wall times grow with other work on the machine, CPU times far "
        "less.",
        "",
        "Fused training, seconds per epoch per configuration (1 thread, same batches):",
        "",
        "| configurations per step (G) | s / epoch / config |",
        "|---|---|",
        *[f"| {size} | {seconds:.3f} |" for size, seconds in fused],
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cohort and few configurations")
    parser.add_argument("--configs", type=int, help="override the number of configurations")
    parser.add_argument("--search-batch", type=int, help="packs per search batch (default: the config's)")
    parser.add_argument("--no-taper", action="store_true", help="full-size packs to the end (taper_tail off)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    setup_logging()
    s = settings(args.quick)
    s["configs"] = args.configs or s["configs"]
    machine_text = machine()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        sim = SimulateConfig(n_specimens=s["specimens"], tiles=s["tiles"], dim=s["dim"], seed=0)
        write_feature_cohort(sim, out=Path(tmp) / "cohort")
        connect(None, num_cpus=2, log_to_driver=False)
        config = sweep_config(s, cohort=Path(tmp) / "cohort", out=Path(tmp) / "sweep",
                              batch=args.search_batch, taper=not args.no_taper)
        cpu_started = time.process_time()
        (outcome,) = run_sweep(config)
        driver_cpu_s = time.process_time() - cpu_started
        load_end = os.getloadavg()[0]
        totals = pack_totals(Path(outcome.path))
        ray.shutdown()
        data = simulated_bagset(simulate_cohort(sim))
        fused = fused_speed(data, epochs=2, pack=s["pack"])
    command = " ".join([".venv/bin/python", "benchmarks/bench_sweep.py", *(argv or sys.argv[1:])])
    text = report(s, outcome, fused, command=command, machine_text=machine_text, batch=config.batch_packs(),
                  totals=totals, taper=config.taper_tail, driver_cpu_s=driver_cpu_s, load_end=load_end)
    write_section(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
