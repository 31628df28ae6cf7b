"""LoRA fine-tuning throughput on CPU: tiles per second per worker (forward + backward through the FM
with adapters, robust MIL head and losses), and 1 -> 2 Ray Train workers on the real finetune loop.

Part 1 times `raypath.finetune.model.step` in one process with one thread (what a worker with
`cpus_per_worker: 1` gets): 2 specimens x 2 scans x 8 registered tiles per step, random pixels at the
card's input size, for the tiny ViT twin and a randomly initialised ViT-B/16 (UNI's card at
ViT-B size, 86 M parameters). Part 2 runs `raypath finetune`'s training (plan, per-worker tile
reading from the synthetic slides, DDP over gloo) with 1 and 2 workers on a synthetic cohort and reports the
`train/tiles_per_s` the loop logs (the group's tiles over the epoch's wall time; the first epoch,
which also builds tile readers and warms up, is left out). Writes benchmarks/results/finetune.md.

    .venv/bin/python benchmarks/bench_finetune.py [--quick]
"""

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import header, write_section

from raypath.encoders.backbone import create_pool, create_trunk
from raypath.encoders.encoder import Encoder
from raypath.encoders.lora import add_lora
from raypath.encoders.registry import get_card
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.model import FinetuneModel, build_model, step
from raypath.logs import setup_logging
from raypath.mil.batch import Batch
from raypath.mil.robust import build_robust_mil
from raypath.register.run import run_registration
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig

log = logging.getLogger("bench_finetune")
RESULTS = Path(__file__).resolve().parent / "results" / "finetune.md"
LOSSES = {"infonce": 0.5, "score_consistency": 1.0, "tile_consistency": 0.5}
HEAD = {"hidden": 64, "attention_dim": 32, "projection_dim": 32, "dropout": 0.0}


def paired_batch(*, specimens: int, scans: int, tiles: int) -> Batch:
    """A batch of `specimens` x `scans` bags of `tiles` tiles, tile t of every scan registered."""
    bags = specimens * scans
    specimen = torch.arange(specimens).repeat_interleave(scans)
    group = specimen[:, None] * tiles + torch.arange(tiles)[None, :]
    return Batch(features=torch.zeros(bags, tiles, 0), mask=torch.ones(bags, tiles, dtype=torch.bool),
                 specimen=specimen, scanner=torch.arange(scans).repeat(specimens), tile_group=group,
                 label=(specimen % 2), time=torch.zeros(bags), event=torch.zeros(bags),
                 slide=torch.arange(bags))


def random_vit_b() -> Encoder:
    """UNI's card at ViT-B/16 size (width 768, depth 12, 12 heads, 224 px), random weights: the size
    of a base FM, not a trained model."""
    uni = get_card("uni")
    size = {"embed_dim": 768, "depth": 12, "num_heads": 12}
    card = dataclasses.replace(uni, name="vit-b16-random", hub_id=None, embed_dim=768,
                               timm_kwargs={**uni.timm_kwargs, **size})
    trunk = create_trunk(card)
    return Encoder(card, backbone=trunk, pool=create_pool(card, trunk))


def step_rate(encoder_name: str, *, steps: int, batch: Batch) -> tuple[float, int, int]:
    """(tiles/s, trainable parameters, all parameters) of LoRA steps on one thread."""
    config = FinetuneConfig(encoder=encoder_name if encoder_name.startswith("tiny-") else "tiny-uni",
                            losses=LOSSES, fm_tile_consistency=0.5, model=HEAD)
    if encoder_name.startswith("tiny-"):
        model = build_model(config, n_outputs=1, n_scanners=2)
    else:
        torch.manual_seed(0)
        encoder = add_lora(random_vit_b(), config.lora)
        head = build_robust_mil(task="binary", kind="gated", in_dim=encoder.embed_dim, n_outputs=1,
                                hidden=64, attention_dim=32, dropout=0.0, weights=LOSSES, projection_dim=32,
                                n_scanners=2)
        model = FinetuneModel(encoder, head, weights=config.loss_weights())
    size = model.encoder.card.input_size
    n = int(batch.mask.sum())
    pixels = torch.randn(n, 3, size, size)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    step(model, optimizer, pixels, batch)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        step(model, optimizer, pixels, batch)
    rate = steps * n / (time.perf_counter() - started)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return rate, trainable, sum(p.numel() for p in model.parameters())


def scaling(root: Path, *, specimens: int, epochs: int) -> dict[int, float]:
    """Group tiles/s of the real loop (last epochs' mean) with 1 and 2 workers."""
    from raypath.cluster import connect
    from raypath.finetune.run import prepare_run, train

    cohort = root / "cohort"
    write_cohort(SynthConfig(specimens=specimens, seed=1, workers=2), cohort)
    run_registration(RegisterConfig(manifest=cohort / "manifest.csv", out=cohort / "registration.parquet"))
    connect(None, num_cpus=2, log_to_driver=False)
    rates = {}
    for workers in (1, 2):
        config = FinetuneConfig(manifest=cohort / "manifest.csv", labels=cohort / "labels.csv",
                                registration=cohort / "registration.parquet", output_dir=root / f"w{workers}",
                                epochs=epochs, specimens_per_step=2, tiles_per_scan=16, losses=LOSSES,
                                fm_tile_consistency=0.5, model=HEAD, tiling={"tile_px": 64},
                                split={"train": 0.8, "val": 0.1}, distributed={"workers": workers})
        result = train(config, prepare_run(config))
        with result.checkpoint.as_directory() as directory:
            history = torch.load(Path(directory) / "state.pt", weights_only=True)["history"]
        rates[workers] = float(np.mean([row["train/tiles_per_s"] for row in history[1:]]))
        log.info("%d workers: %.1f tiles/s (epochs: %s)", workers, rates[workers],
                 [round(r["train/tiles_per_s"], 1) for r in history])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, no ViT-B, smaller cohort")
    args = parser.parse_args()
    setup_logging(verbose=False)
    torch.set_num_threads(1)
    batch = paired_batch(specimens=2, scans=2, tiles=8)
    load_before = os.getloadavg()[0]
    rows = []
    for name in ["tiny-uni"] + ([] if args.quick else ["vit-b/16 (random)"]):
        rate, trainable, total = step_rate(name, steps=3 if name != "tiny-uni" else 20, batch=batch)
        rows.append(f"| {name} | {rate:.1f} | {trainable:,} of {total:,} |")
        log.info("%s: %.1f tiles/s", name, rate)
    with tempfile.TemporaryDirectory() as tmp:
        rates = scaling(Path(tmp), specimens=8 if args.quick else 16, epochs=2 if args.quick else 4)
    text = header("LoRA fine-tuning throughput (CPU)") + (
        "\nPart 1: one process, one thread (a worker with `cpus_per_worker: 1`), forward + backward + "
        "AdamW of `raypath.finetune.model.step`: FM with LoRA (rank 8 on `qkv`), gated-attention head, "
        "task + InfoNCE + score consistency + tile consistency + FM tile loss; 2 specimens x 2 scans x "
        "8 registered tiles per step, random pixels at the card's input size (64 px for the tiny twin, "
        "224 px for ViT-B/16).\n\n"
        "| FM | tiles/s per worker | trainable parameters |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Part 2: the real `raypath finetune` training on Ray Train (DDP, gloo; per-worker tile reading "
        "from synthetic pyramidal slides; tiny-uni, 64 px tiles, 2 specimens x all scans x 16 tiles per "
        "step and worker), mean `train/tiles_per_s` of the epochs after the first:\n\n"
        "| workers | tiles/s (group) | per worker | speed-up |\n|---|---|---|---|\n"
        + "\n".join(f"| {w} | {r:.1f} | {r / w:.1f} | {r / rates[1]:.2f}x |" for w, r in rates.items())
        + "\n\nThe machine has 2 cores, so 2 workers use all of them (each worker 1 thread), with the "
        "driver and Ray's own processes sharing the same cores. The machine was shared with other jobs: "
        f"1-minute load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end "
        "(2 = both cores busy), so these rates are lower bounds.\n\n"
        "GPU: ViT-L/16 with LoRA in bfloat16, tiles/s per GPU (`distributed.use_gpu: true`, autocast "
        "and gradient checkpointing on) is **not measured**: no GPU machine was lent to this task.\n")
    write_section(RESULTS, text)


if __name__ == "__main__":
    main()
