"""Extraction pipeline efficiency: end-to-end tiles/s of the job vs the bare forward rate.

A synthetic cohort (pyramidal JPEG SVS at 0.5 um/px written with the synth module's SVS writer:
an elliptical tissue region with a stain-like texture, so no resize is needed and decode is
realistic JPEG work; generated in seconds, unlike the procedural synth) goes through the real job
(`run_extraction`: Ray Data reading tasks -> EncoderActor -> Parquet) with a backbone whose
forward pass dominates the cost; the same backbone then runs on pre-decoded tiles in a plain
loop (preprocess + forward, same batch size and threads). efficiency = job steady tiles/s / bare.

CPU (default): a randomly initialised ViT-S/16 at 224 px (UNI's family, 384 wide, 12 deep).
`--gpu`: a randomly initialised ViT-L/16 (UNI's architecture) in bf16 autocast, batch 256, for a
lent GPU machine; target >= 4,000 tiles/s end to end on one H100.
Writes benchmarks/results/extract.md.

    .venv/bin/python benchmarks/bench_extract.py [--quick] [--gpu] [--slides N] [--slide-px PX]
"""

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch
from machine import header

from raypath.cluster import connect
from raypath.encoders.backbone import create_pool, create_trunk
from raypath.encoders.encoder import Encoder
from raypath.encoders.loading import state_dict_hash
from raypath.encoders.registry import get_card
from raypath.extract.config import ExtractConfig
from raypath.extract.encode import autocast_for
from raypath.extract.run import run_extraction
from raypath.logs import setup_logging
from raypath.slides import open_slide, read_tiles, tile_slide
from raypath.slides.synth.tiff import write_svs

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "extract.md"
NAME = "bench-vit"
log = logging.getLogger("bench_extract")


def build_vit_small() -> Encoder:
    """ViT-S/16 at 224 in UNI's family: forward-dominated on CPU, random weights."""
    card = dataclasses.replace(
        get_card("uni"), name=NAME, title="ViT-S/16 (random)", hub_id=None, tiny=True, embed_dim=384,
        timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True, "embed_dim": 384, "depth": 12,
                     "num_heads": 6})
    return _assemble(card)


def build_vit_large() -> Encoder:
    """UNI's architecture (ViT-L/16, 1024-d CLS) with random weights: no download needed."""
    return _assemble(dataclasses.replace(get_card("uni"), name=NAME, hub_id=None, tiny=True))


def _assemble(card) -> Encoder:
    trunk = create_trunk(card)
    encoder = Encoder(card, backbone=trunk, pool=create_pool(card, trunk)).eval().requires_grad_(False)
    encoder.weights_hash = state_dict_hash(encoder.state_dict())
    return encoder


def stain_texture(seed: int, side: int = 1024) -> np.ndarray:
    """Pink/purple H&E-like texture: smooth colour field plus nuclei-sized dark speckle."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((side // 32, side // 32, 1)).repeat(32, 0).repeat(32, 1)
    speckle = rng.random((side, side, 1)) < 0.04
    pink, purple = np.array([235, 160, 200]), np.array([120, 60, 150])
    rgb = pink * (1 - 0.5 * coarse) + purple * 0.5 * coarse
    rgb = np.where(speckle, purple * 0.7, rgb) + rng.normal(0, 6, (side, side, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_cohort(directory: Path, *, slides: int, side_px: int) -> Path:
    """`slides` square pyramidal SVS files with an elliptical tissue region; returns the manifest."""
    (directory / "slides").mkdir(parents=True)
    rows = []
    for index in range(slides):
        texture = stain_texture(index)

        def render(x0: int, y0: int, width: int, height: int, texture=texture) -> np.ndarray:
            ys, xs = np.mgrid[y0:y0 + height, x0:x0 + width]
            inside = ((xs / side_px - 0.5) / 0.45) ** 2 + ((ys / side_px - 0.5) / 0.4) ** 2 <= 1
            tissue = texture[ys % texture.shape[0], xs % texture.shape[1]]
            return np.where(inside[..., None], tissue, np.uint8(242))

        slide_id = f"bench-{index:03d}"
        write_svs(directory / "slides" / f"{slide_id}.svs", render=render, dimensions=(side_px, side_px),
                  mpp=0.5, quality=85, stripe_px=1024)
        rows.append({"slide_id": slide_id, "path": f"slides/{slide_id}.svs", "patient_id": f"P{index}",
                     "specimen_id": f"S{index}", "scanner": "bench"})
    pd.DataFrame(rows).to_csv(directory / "manifest.csv", index=False)
    return directory / "manifest.csv"


def decoded_tiles(cohort: Path, config: ExtractConfig, limit: int) -> np.ndarray:
    """Up to `limit` tiles of the cohort, decoded exactly as the job decodes them."""
    chunks, count = [], 0
    for path in sorted((cohort / "slides").glob("*.svs")):
        with open_slide(path) as reader:
            tiles = read_tiles(reader, tile_slide(reader, config.tiling))
        chunks.append(tiles)
        count += len(tiles)
        if count >= limit:
            break
    return np.concatenate(chunks)[:limit]


def bare_forward(
    tiles: np.ndarray, *, factory, batch_size: int, gpu: bool, threads: int, repeats: int = 3,
) -> float:
    """Best-of-`repeats` tiles/s of preprocess + forward on pre-decoded tiles (after a warm-up batch);
    best-of, because on a shared machine other load only ever makes a pass slower."""
    device = torch.device("cuda" if gpu else "cpu")
    torch.set_num_threads(threads)
    encoder = factory().to(device)
    batches = [tiles[i:i + batch_size] for i in range(0, len(tiles) - batch_size + 1, batch_size)]
    rates = []
    with torch.inference_mode(), autocast_for(device, "auto"):
        encoder(encoder.preprocess(batches[0], device=device)).float().cpu()
        for _ in range(repeats):
            started = time.perf_counter()
            for batch in batches:
                encoder(encoder.preprocess(batch, device=device)).float().cpu().numpy()
            rates.append(len(batches) * batch_size / (time.perf_counter() - started))
    return max(rates)


def job_config(args: argparse.Namespace, cohort: Path, out: Path) -> ExtractConfig:
    threads = os.cpu_count() or 1
    resources = ({"num_gpus": 1, "encoder_cpus": 4, "batch_size": 256, "decode_cpus": 1}
                 if args.gpu else {"num_gpus": 0, "encoder_cpus": 1, "batch_size": args.batch_size,
                                   "decode_cpus": 1, "torch_threads": threads})
    return ExtractConfig.model_validate({
        "manifest": cohort / "manifest.csv", "output": str(out), "encoders": [NAME], "run_id": "bench",
        "tiles_per_chunk": 32, **resources})


def write_result(args: argparse.Namespace, rows: dict[str, str]) -> None:
    mode = "GPU, ViT-L/16 bf16" if args.gpu else "CPU, ViT-S/16 fp32"
    table = "\n".join(f"| {key} | {value} |" for key, value in rows.items())
    text = (f"{header(f'Extraction pipeline efficiency ({mode})')}\n"
            f"End-to-end = the real job (`run_extraction`: Ray Data reading tasks with per-slide child\n"
            f"processes -> EncoderActor in `map_batches` -> atomic Parquet writes), local Ray.\n"
            f"Steady = after the first result batch (actor start and model load excluded).\n"
            f"Bare = preprocess + forward of the same model on pre-decoded tiles, same batch size and\n"
            f"threads, best of 3 passes. A load average above the core count means other work shared\n"
            f"the machine and the numbers are not a measurement of this code.\n\n"
            f"| measure | value |\n|---|---|\n{table}\n")
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(text)
    log.info("wrote %s\n%s", RESULT, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cohort, for verifying the script")
    parser.add_argument("--gpu", action="store_true", help="ViT-L/16 bf16 on one GPU (lent machine)")
    parser.add_argument("--slides", type=int, default=None, help="slides in the cohort")
    parser.add_argument("--slide-px", type=int, default=None, help="level-0 side of each slide")
    parser.add_argument("--batch-size", type=int, default=32, help="CPU batch size")
    args = parser.parse_args()
    setup_logging()
    slides = args.slides or (2 if args.quick else (96 if args.gpu else 8))
    side_px = args.slide_px or (4096 if args.quick or not args.gpu else 8192)
    factory = build_vit_large if args.gpu else build_vit_small
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as work:
        cohort = Path(work) / "cohort"
        write_cohort(cohort, slides=slides, side_px=side_px)
        config = job_config(args, cohort, Path(work) / "features")
        connect(None)
        summary = run_extraction(config, factories={NAME: factory})
        load = os.getloadavg()[0]
        ray.shutdown()  # nothing of the job may compete with the bare loop
        batches = 4 if args.quick else 8
        tiles = decoded_tiles(cohort, config, limit=min(summary.tiles, batches * config.batch_size))
        bare = bare_forward(tiles, factory=factory, batch_size=config.batch_size, gpu=args.gpu,
                            threads=config.torch_threads or os.cpu_count() or 1)
    rows = {"slides (done/skipped/failed)": f"{summary.done}/{summary.skipped}/{summary.failed}",
            "tiles": f"{summary.tiles}", "batch size": f"{config.batch_size}",
            "job wall time (s)": f"{summary.seconds:.1f} (start-up {summary.startup_s:.1f})",
            "end-to-end tiles/s (incl. start-up)": f"{summary.tiles_per_s:.1f}",
            "end-to-end tiles/s (steady)": f"{summary.steady_tiles_per_s:.1f}",
            "bare forward tiles/s": f"{bare:.1f}",
            "efficiency (steady / bare)": f"{summary.steady_tiles_per_s / bare:.0%}",
            "1-min load average at the end of the job": f"{load:.1f} on {os.cpu_count()} cores"}
    write_result(args, rows)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
