"""Data-parallel MIL training on Ray Train (`raypath train --workers N`): bags/s with 1 and 2
workers on frozen features, against the same engine in one plain process.

Cohort: simulated feature store on disk (specimens x 2 scanners, every bag in the train split),
read through the node-local float16 cache as `raypath train` reads it. Each worker steps on
`--batch-specimens` specimens (x 2 scans) per step with gradients averaged over workers, so N
workers take N x that per update and an epoch has 1/N as many steps per worker. bags/s = train bags
per epoch / median epoch time on rank 0 after a warm-up epoch (an epoch includes the gradient
all-reduce of every step, rank 0's checkpoint and the report every worker makes). "start-up" is the
wall time to the first epoch's end less that epoch: Ray Train's worker group, the process group
and opening the (already built) cache. Writes benchmarks/results/data_parallel.md.

    .venv/bin/python benchmarks/bench_data_parallel.py [--quick]
"""

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch
from machine import header, write_section

from raypath.cluster import connect
from raypath.distributed.config import DistributedConfig
from raypath.distributed.train_workers import MilJob, train_on_workers
from raypath.logs import setup_logging
from raypath.simulate.config import SimulateConfig
from raypath.simulate.store import write_feature_cohort
from raypath.train.config import TrainConfig
from raypath.train.data import training_source
from raypath.train.engine import train_one

log = logging.getLogger("bench_data_parallel")
RESULTS = Path(__file__).parent / "results" / "data_parallel.md"


class EpochClock:
    """Tracker on rank 0: the wall-clock time at the end of every epoch, appended to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, epoch: int, metrics: dict[str, float]) -> None:
        with self.path.open("a") as handle:
            handle.write(f"{time.time()}\n")

    def finish(self, **_: object) -> None:
        """Nothing to close."""


def rates(stamps: list[float], *, started: float, bags: int) -> tuple[float, float]:
    """(bags/s over the timed epochs, start-up seconds) from epoch-end stamps."""
    epochs = np.diff(stamps)
    return bags / float(np.median(epochs[1:] if len(epochs) > 1 else epochs)), stamps[0] - started - epochs[0]


def one_process(config: TrainConfig, *, source, bags: int) -> float:
    """bags/s of `train_one` in this process (no Ray)."""
    stamps: list[float] = []
    started = time.time()
    train_one(config=config, data=source.open(node=""), seed=0,
              on_epoch=lambda *_: stamps.append(time.time()))
    return rates(stamps, started=started, bags=bags)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small cohort, 3 epochs")
    parser.add_argument("--specimens", type=int, default=200)
    parser.add_argument("--tiles", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--batch-specimens", type=int, default=8)
    args = parser.parse_args()
    if args.quick:
        args.specimens, args.tiles, args.epochs = 40, 200, 2
    setup_logging()
    work = Path(tempfile.mkdtemp(prefix="bench-dp-"))
    cohort = work / "cohort"
    simulated = SimulateConfig(n_specimens=args.specimens, scanners=["A", "B"], tiles=args.tiles,
                               dim=args.dim)
    store = write_feature_cohort(simulated, out=cohort)
    labels = pd.read_csv(cohort / "labels.csv", dtype={"patient_id": str})
    labels[["patient_id"]].assign(split="train").to_csv(cohort / "all-train.csv", index=False)
    source = training_source(store=store, labels=cohort / "labels.csv", splits=cohort / "all-train.csv",
                             cache_dir=str(work / "cache"))
    bags = source.open(node="").n_slides  # builds the cache once, outside every timing
    config = TrainConfig(batch_specimens=args.batch_specimens, epochs=args.epochs + 1, eval_max_tiles=64,
                         split={"source": "column"}, early_stopping={"enabled": False})
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rate = one_process(config, source=source, bags=bags)
        rows.append((f"one process, no Ray ({threads} torch thread{'s' * (threads > 1)})", rate, None,
                     os.getloadavg()[0]))
        log.info("%s: %.1f bags/s", rows[-1][0], rate)
    connect(None, num_cpus=2)
    for workers, cpus in ((1, 1), (1, 2), (2, 1)):
        clock = EpochClock(work / f"epochs-{workers}x{cpus}.txt")
        job = MilJob(source=source, config=config.model_copy(update={"num_threads": cpus}), seed=0,
                     out=work / f"out-{workers}x{cpus}", tracker=clock)
        started = time.time()
        train_on_workers(job=job, settings=DistributedConfig(workers=workers, cpus_per_worker=cpus),
                         storage=work / "runs", name=f"bench-{workers}x{cpus}")
        stamps = [float(line) for line in clock.path.read_text().split()]
        rate, startup = rates(stamps, started=started, bags=bags)
        rows.append((f"Ray Train, {workers} worker{'s' * (workers > 1)} x {cpus} CPU", rate, startup,
                     os.getloadavg()[0]))
        log.info("%s: %.1f bags/s, start-up %.1f s", rows[-1][0], rate, startup)
    ray.shutdown()
    one_worker = next(row[1] for row in rows if row[0].startswith("Ray Train, 1 worker x 1"))
    table = [f"| {name} | {rate:.1f} | {bags / rate:.2f} | {rate / one_worker:.2f} | "
             f"{'' if startup is None else f'{startup:.1f}'} | {load:.1f} |"
             for name, rate, startup, load in rows]
    write_section(RESULTS, "\n".join([
        header("Data-parallel MIL training on Ray Train (CPU, gloo)"),
        f"{bags} bags ({args.specimens} specimens x 2 scanners) x {args.tiles} tiles x {args.dim} dims "
        "from the float16 node cache, every bag in training; gated-attention MIL (hidden 128), task loss, "
        f"{args.batch_specimens} specimens x 2 scans per worker and step; median of {args.epochs} epochs "
        "after a warm-up epoch. The machine has 2 cores shared with other jobs (load: the 1-minute load "
        "average after each row; above 2, rows compete with other processes and compare poorly); the two "
        "workers of the last row share the 2 cores.\n",
        "| how | bags/s | s/epoch | vs 1 worker x 1 CPU | start-up s | load |", "|---|---|---|---|---|---|",
        *table, ""]))


if __name__ == "__main__":
    main()
