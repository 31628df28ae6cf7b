"""raypath's training engine against torchmil's gated ABMIL, side by side in one run on the same bags.

Per bag-epoch = an epoch's wall time / (bags x models trained): the cost of one model seeing one bag
once. Both train the same architecture (Linear 1,024 -> 128 + ReLU, gated attention with 64 units,
linear head; torchmil's `ABMIL(gated=True)` with that projection as its feature extractor) on the
same in-memory bags (every bag in training), 8 specimens x 2 scans = 16 bags per step, AdamW,
with the same torch threads. torchmil trains one model at a time, as its API does, so G models cost
G times one model; raypath trains a pack of G configurations in one vmapped step (`train_pack`),
with the task loss alone (baseline), every robustness loss on (InfoNCE, score and tile
consistency, scanner adversary), or every one but tile consistency (where the extra cost goes).
Timed epochs follow one warm-up epoch; the median is reported.
Needs the `bench` extra (`pip install -e .[bench]`, torchmil). Writes benchmarks/results/peers.md.

    .venv/bin/python benchmarks/bench_peers.py [--quick] [--bags N] [--tiles N] [--threads N]
"""

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
from machine import header, write_section

from raypath.logs import setup_logging
from raypath.mil.bags import simulated_bagset
from raypath.simulate.cohort import simulate_cohort
from raypath.simulate.config import SimulateConfig
from raypath.train.config import TrainConfig
from raypath.train.engine import PackMember, train_pack

log = logging.getLogger("bench_peers")
RESULTS = Path(__file__).resolve().parent / "results" / "peers.md"
ROBUST = {"infonce": 1.0, "score_consistency": 1.0, "tile_consistency": 1.0, "adversarial": 0.1}
# the target's row ("all losses") and, to show where its cost goes, the same without the one loss
# that adds a head on every tile (tile consistency); the others act on slide embeddings
LOSS_SETS = (("baseline", {}), ("all losses", ROBUST),
             ("all but tile consistency", {k: v for k, v in ROBUST.items() if k != "tile_consistency"}))
HIDDEN, ATTENTION, SPECIMENS_PER_STEP = 128, 64, 8


def _stamp() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _medians(stamps: list[tuple[float, float]]) -> tuple[float, float]:
    """Median (wall, CPU) seconds between consecutive stamps."""
    wall, cpu = np.diff(np.array(stamps), axis=0).T
    return float(np.median(wall)), float(np.median(cpu))


def raypath_epoch_s(data, *, losses: dict, pack: int, epochs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of an epoch of a pack of `pack` configurations (learning rates
    differ)."""
    members = [PackMember(key=f"m{g}", config=TrainConfig(
        losses=losses, batch_specimens=SPECIMENS_PER_STEP, epochs=epochs + 1, split={"source": "column"},
        early_stopping={"enabled": False}, eval_max_tiles=64, optimizer={"lr": 1e-3 * (1 + g / 4)},
        model={"hidden": HIDDEN, "attention_dim": ATTENTION, "dropout": 0.0})) for g in range(pack)]
    stamps: list[tuple[float, float]] = []
    train_pack(members=members, data=data, seed=0, on_epoch=lambda *_: stamps.append(_stamp()))
    return _medians(stamps)


def torchmil_epoch_s(features: torch.Tensor, labels: torch.Tensor, *, models: int,
                     epochs: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of one torchmil ABMIL epoch, over `models` models trained one after
    another."""
    from torchmil.models import ABMIL

    times: list[tuple[float, float]] = []
    for g in range(models):
        torch.manual_seed(g)
        projection = torch.nn.Sequential(torch.nn.Linear(features.shape[-1], HIDDEN), torch.nn.ReLU())
        model = ABMIL(in_shape=(features.shape[-1],), att_dim=ATTENTION, gated=True, feat_ext=projection)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3 * (1 + g / 4))
        mask = torch.ones(2 * SPECIMENS_PER_STEP, features.shape[1], dtype=torch.bool)
        for epoch in range(epochs + 1):
            started = _stamp()
            order = torch.randperm(len(features))
            for start in range(0, len(order), 2 * SPECIMENS_PER_STEP):
                index = order[start: start + 2 * SPECIMENS_PER_STEP]
                bags = features[index].float()
                logits = model(bags, mask[: len(index)])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[index])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if epoch:
                times.append(np.subtract(_stamp(), started))
    wall, cpu = np.median(np.array(times), axis=0)
    return float(wall), float(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that it runs")
    parser.add_argument("--bags", type=int, default=240)
    parser.add_argument("--tiles", type=int, default=512)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.bags, args.tiles, args.dim, args.epochs = 32, 32, 64, 1
    setup_logging()
    torch.set_num_threads(args.threads)
    sim = simulate_cohort(SimulateConfig(n_specimens=args.bags // 2, scanners=["A", "B"], tiles=args.tiles,
                                         dim=args.dim, seed=0))
    data = simulated_bagset(sim).with_columns(sim.splits.assign(split="train"), on="patient_id")
    features = torch.from_numpy(np.ascontiguousarray(data.features)).reshape(data.n_slides, args.tiles, -1)
    labels = torch.as_tensor(data.slides["label"].to_numpy(), dtype=torch.float32)
    load = [os.getloadavg()[0]]
    rows = []
    for pack in (1, 8):
        peer = torchmil_epoch_s(features, labels, models=pack, epochs=args.epochs)
        for name, losses in LOSS_SETS:
            ours = raypath_epoch_s(data, losses=losses, pack=pack, epochs=args.epochs)
            per_ours = [t / (data.n_slides * pack) * 1e3 for t in ours]
            per_peer = [t / data.n_slides * 1e3 for t in peer]
            rows.append(f"| {pack} | {name} | {per_ours[0]:.2f} | {per_peer[0]:.2f} | "
                        f"{per_ours[0] / per_peer[0]:.2f}x | {per_ours[1]:.2f} | {per_peer[1]:.2f} | "
                        f"{per_ours[1] / per_peer[1]:.2f}x |")
            log.info("G=%d %s: %s", pack, name, rows[-1])
        load.append(os.getloadavg()[0])
    write_section(args.out, "\n".join([
        header("raypath's engine vs torchmil's gated ABMIL (CPU, same bags, same run)"),
        f"{data.n_slides} bags x {args.tiles} tiles x {args.dim} dims in memory (float32), all in training, "
        f"{2 * SPECIMENS_PER_STEP} bags per step, {args.threads} torch threads, median of {args.epochs} "
        "timed epoch(s) after a warm-up epoch. Per bag-epoch = epoch wall time / (bags x models). torchmil "
        "trains its G models one after another (its cost per model does not depend on G); raypath trains "
        "the G configurations as one pack. torchmil runs BCE alone in every row: 'all losses' is extra "
        f"work raypath does that torchmil does not. 1-min load average during the run: "
        f"{min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores. CPU ms = the process's CPU time "
        "per bag-epoch: with one torch thread it does not grow when other work shares the cores, so the "
        "CPU ratio is the comparison to trust on a busy machine.\n",
        "| G (pack) | raypath losses | raypath wall ms / bag-epoch | torchmil wall ms / bag-epoch "
        "| raypath / torchmil (wall) | raypath CPU ms | torchmil CPU ms | raypath / torchmil (CPU) |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        "Target (issue 26): raypath <= 1.0x torchmil per bag-epoch with all losses at G = 8.", ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
