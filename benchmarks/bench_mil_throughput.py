"""MIL training throughput on CPU: bags per second per epoch with all features in memory.

Cohort: 1,000 bags of 2,000 tiles x 1,024 dims (8.2 GB float32; `--float16` stores half of that and
computes in float32), simulated straight into one contiguous array. Times full epochs of the real
training step (collate K specimens x all scans -> gated-attention MIL -> loss -> AdamW) for the
baseline and with robustness losses, with all tiles and with 512 sampled tiles per bag.
Writes benchmarks/results/mil_throughput.md.

    .venv/bin/python benchmarks/bench_mil_throughput.py [--quick] [--float16]
"""

import argparse
import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
from machine import header

from raypath.logs import setup_logging
from raypath.mil.bags import simulated_bagset
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.train.config import TrainConfig
from raypath.train.engine import train_one

log = logging.getLogger("bench_mil_throughput")
RESULTS = Path(__file__).resolve().parent / "results" / "mil_throughput.md"
ROBUST = {"infonce": 1.0, "score_consistency": 1.0, "tile_consistency": 1.0, "adversarial": 0.1}


def measure(data, *, losses: dict, max_tiles: int | None, epochs: int, batch_specimens: int) -> float:
    """Bags per second, median over `epochs` timed epochs after one warm-up epoch.

    The engine (a pack of one) trains `epochs + 1` epochs; every slide is in the train split, so an
    epoch is training steps only, timed between consecutive epoch callbacks.
    """
    config = TrainConfig(losses=losses, max_tiles=max_tiles, batch_specimens=batch_specimens,
                         epochs=epochs + 1, split={"source": "column"}, early_stopping={"enabled": False},
                         eval_max_tiles=64)
    stamps: list[float] = []
    train_one(config=config, data=data, seed=0, on_epoch=lambda *_: stamps.append(time.perf_counter()))
    return data.n_slides / float(np.median(np.diff(stamps)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 bags, 1 timed epoch")
    parser.add_argument("--bags", type=int, default=1000)
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-specimens", type=int, default=8, help="x 2 scans = bags per step")
    parser.add_argument("--float16", action="store_true", help="store features as float16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.bags, args.epochs = 100, 1
    setup_logging()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sim = simulate_cohort(SimulateConfig(n_specimens=args.bags // 2, scanners=["A", "B"], tiles=args.tiles,
                                         dim=args.dim))
    data = simulated_bagset(sim).with_columns(sim.splits.assign(split="train"), on="patient_id")
    if args.float16:
        data = dataclasses.replace(data, features=data.features.astype(np.float16))
    gib = data.features.nbytes / 2**30
    log.info("cohort of %d bags (%.1f GiB) in %.0f s", data.n_slides, gib, time.perf_counter() - started)
    rows = []
    for name, losses in (("baseline", {}), ("all robustness losses", ROBUST)):
        for max_tiles in (None, 512):
            rate = measure(data, losses=losses, max_tiles=max_tiles, epochs=args.epochs,
                           batch_specimens=args.batch_specimens)
            rows.append(f"| {name} | {max_tiles or args.tiles} | {rate:.1f} | {data.n_slides / rate:.1f} |")
            log.info("%s, %s tiles: %.1f bags/s", name, max_tiles or args.tiles, rate)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([
        header("MIL training throughput (CPU, features in memory)"),
        f"{data.n_slides} bags x {args.tiles} tiles x {args.dim} dims, stored {data.features.dtype} "
        f"({gib:.1f} GiB in one array), {args.batch_specimens} specimens x 2 scans per step, gated-attention "
        f"MIL (hidden 128), {args.threads} torch threads; median of {args.epochs} epoch(s) after a warm-up "
        "epoch. Step = vectorised collation (gather from the shared array) + forward + backward + AdamW.\n",
        "| losses | tiles per bag | bags/s | s/epoch |", "|---|---|---|---|", *rows, ""]))
    log.info("wrote %s", RESULTS)


if __name__ == "__main__":
    main()
