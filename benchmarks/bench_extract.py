"""Extraction pipeline efficiency: end-to-end tiles/s of the job vs the bare forward rate.

A synthetic cohort (pyramidal JPEG SVS at 0.5 um/px written with the synth module's SVS writer:
an elliptical tissue region with a stain-like texture, so no resize is needed and decode is
realistic JPEG work; generated in seconds, unlike the procedural synth) goes through the real job
(`run_extraction`: Ray Data reading tasks -> EncoderActor -> Parquet) with a backbone whose
forward pass dominates the cost; the same backbone then runs on pre-decoded tiles in a plain
loop (preprocess + forward, same batch size and threads). efficiency = job steady tiles/s / bare.

CPU (default): a randomly initialised ViT-S/16 at 224 px (UNI's family, 384 wide, 12 deep), on
slides at 0.5 um/px.
`--gpu`: a randomly initialised ViT-L/16 (UNI's architecture) in bf16 autocast, batch 256, on 40x
slides (0.25 um/px, so tiles go through the scaled-JPEG reader's 1/2-scale decoding), cohort
written in parallel; targets: end to end >= 80 % of the bare forward rate and >= 4,000 tiles/s on
one H100/H200. Options: `--compile` (torch.compile the backbone, in the job and in the bare loop),
`--sdpa off` (timm's explicit attention instead of fused scaled_dot_product_attention),
`--batch-size`, `--decode-gpus F` (reading tasks decode JPEG tiles on the GPU with nvImageCodec; the
result then also records how far GPU-decoded tiles are from CPU-decoded ones).
Writes benchmarks/results/extract.md (`--results` elsewhere).

    .venv/bin/python benchmarks/bench_extract.py [--quick] [--gpu] [--compile] [--sdpa on|off]
        [--batch-size N] [--decode-gpus F] [--slides N] [--slide-px PX] [--mpp MPP]
"""

import argparse
import dataclasses
import functools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch
from machine import header

from raypath.cluster import connect
from raypath.encoders.backbone import create_pool, create_trunk
from raypath.encoders.compat import import_timm
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


def build_vit_small(*, sdpa: bool = True, compile_backbone: bool = False) -> Encoder:
    """ViT-S/16 at 224 in UNI's family: forward-dominated on CPU, random weights."""
    card = dataclasses.replace(
        get_card("uni"), name=NAME, title="ViT-S/16 (random)", hub_id=None, tiny=True, embed_dim=384,
        timm_kwargs={"init_values": 1e-5, "dynamic_img_size": True, "embed_dim": 384, "depth": 12,
                     "num_heads": 6})
    return _assemble(card, sdpa=sdpa, compile_backbone=compile_backbone)


def build_vit_large(*, sdpa: bool = True, compile_backbone: bool = False) -> Encoder:
    """UNI's architecture (ViT-L/16, 1024-d CLS) with random weights: no download needed."""
    card = dataclasses.replace(get_card("uni"), name=NAME, hub_id=None, tiny=True)
    return _assemble(card, sdpa=sdpa, compile_backbone=compile_backbone)


def _assemble(card, *, sdpa: bool, compile_backbone: bool) -> Encoder:
    """Runs where the model is used (the actor process too): timm reads its fused-attention switch
    when blocks are built, so it is set here, not in the driver."""
    import_timm().layers.set_fused_attn(sdpa)
    trunk = create_trunk(card)
    encoder = Encoder(card, backbone=trunk, pool=create_pool(card, trunk)).eval().requires_grad_(False)
    encoder.weights_hash = state_dict_hash(encoder.state_dict())
    if compile_backbone:  # compiled lazily on the first batch; the last, smaller batch recompiles once
        encoder.backbone = torch.compile(encoder.backbone)
    return encoder


def model_factory(args: argparse.Namespace) -> Callable[[], Encoder]:
    """A picklable factory with the benchmark's options, for the job's actors and the bare loop."""
    build = build_vit_large if args.gpu else build_vit_small
    return functools.partial(build, sdpa=args.sdpa == "on", compile_backbone=args.compile)


def stain_texture(seed: int, side: int = 1024) -> np.ndarray:
    """Pink/purple H&E-like texture: smooth colour field plus nuclei-sized dark speckle."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((side // 32, side // 32, 1)).repeat(32, 0).repeat(32, 1)
    speckle = rng.random((side, side, 1)) < 0.04
    pink, purple = np.array([235, 160, 200]), np.array([120, 60, 150])
    rgb = pink * (1 - 0.5 * coarse) + purple * 0.5 * coarse
    rgb = np.where(speckle, purple * 0.7, rgb) + rng.normal(0, 6, (side, side, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class EllipseRenderer:
    """Picklable block renderer: the texture inside an ellipse, glass outside."""

    texture: np.ndarray
    side_px: int

    def __call__(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        ys, xs = np.mgrid[y0:y0 + height, x0:x0 + width]
        inside = ((xs / self.side_px - 0.5) / 0.45) ** 2 + ((ys / self.side_px - 0.5) / 0.4) ** 2 <= 1
        tissue = self.texture[ys % self.texture.shape[0], xs % self.texture.shape[1]]
        return np.where(inside[..., None], tissue, np.uint8(242))


def write_bench_slide(path: Path, *, index: int, side_px: int, mpp: float) -> None:
    write_svs(path, render=EllipseRenderer(stain_texture(index), side_px), dimensions=(side_px, side_px),
              mpp=mpp, quality=85, stripe_px=1024)


def write_cohort(directory: Path, *, slides: int, side_px: int, mpp: float = 0.5) -> Path:
    """`slides` square pyramidal SVS files with an elliptical tissue region, written on every core;
    returns the manifest."""
    (directory / "slides").mkdir(parents=True)
    ids = [f"bench-{index:03d}" for index in range(slides)]
    with ProcessPoolExecutor(max_workers=min(slides, os.cpu_count() or 1)) as pool:
        done = [pool.submit(write_bench_slide, directory / "slides" / f"{slide_id}.svs", index=index,
                            side_px=side_px, mpp=mpp) for index, slide_id in enumerate(ids)]
        for future in done:
            future.result()
    rows = [{"slide_id": slide_id, "path": f"slides/{slide_id}.svs", "patient_id": f"P{index}",
             "specimen_id": f"S{index}", "scanner": "bench"} for index, slide_id in enumerate(ids)]
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
    if args.gpu:  # with GPU decoding the actor leaves room on the GPU for the reading tasks' shares
        resources = {"num_gpus": 0.5 if args.decode_gpus else 1, "encoder_cpus": 4,
                     "batch_size": args.batch_size, "decode_cpus": 1, "decode_gpus": args.decode_gpus}
    else:
        resources = {"num_gpus": 0, "encoder_cpus": 1, "batch_size": args.batch_size, "decode_cpus": 1,
                     "torch_threads": threads}
    return ExtractConfig.model_validate({
        "manifest": cohort / "manifest.csv", "output": str(out), "encoders": [NAME], "run_id": "bench",
        "tiles_per_chunk": 32, **resources})


def gpu_decode_difference(cohort: Path, config: ExtractConfig, limit: int = 256) -> str:
    """Mean absolute difference of GPU- (nvImageCodec) vs CPU-decoded tiles (libjpeg-turbo) of one slide."""
    path = sorted((cohort / "slides").glob("*.svs"))[0]
    tiles = []
    for device in ("cuda", "cpu"):
        with open_slide(path, device=device) as reader:
            grid = tile_slide(reader, config.tiling)
            on_gpu = getattr(reader, "decode_device", "cpu") == "cuda"
            tiles.append(read_tiles(reader, grid, np.arange(min(limit, len(grid)))))
        if device == "cuda" and not on_gpu:
            return "GPU decoder unavailable (decoded on the CPU)"
    difference = np.abs(tiles[0].astype(np.int16) - tiles[1]).mean()
    return f"{difference:.2f} grey levels over {len(tiles[0])} tiles"


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
    args.results.parent.mkdir(exist_ok=True)
    args.results.write_text(text)
    log.info("wrote %s\n%s", args.results, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cohort, for verifying the script")
    parser.add_argument("--gpu", action="store_true", help="ViT-L/16 bf16 on one GPU (lent machine)")
    parser.add_argument("--slides", type=int, default=None, help="slides in the cohort")
    parser.add_argument("--slide-px", type=int, default=None, help="level-0 side of each slide")
    parser.add_argument("--mpp", type=float, default=None, help="slide um/px (0.25 with --gpu, else 0.5)")
    parser.add_argument("--batch-size", type=int, default=None, help="inference batch (256 GPU, 32 CPU)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--sdpa", choices=("on", "off"), default="on", help="timm fused attention (SDPA)")
    parser.add_argument("--decode-gpus", type=float, default=0.0,
                        help="GPU share per reading task: decode JPEG tiles on the GPU (--gpu only)")
    parser.add_argument("--results", type=Path, default=RESULT)
    args = parser.parse_args()
    setup_logging()
    if args.gpu and not torch.cuda.is_available():
        log.error("--gpu needs a CUDA device; none is visible (torch %s)", torch.__version__)
        return 2
    if args.decode_gpus and not args.gpu:
        parser.error("--decode-gpus needs --gpu")
    args.batch_size = args.batch_size or (256 if args.gpu else 32)
    slides = args.slides or (2 if args.quick else (48 if args.gpu else 8))  # GPU: ~36k tiles
    side_px = args.slide_px or (4096 if args.quick or not args.gpu else 16384)
    mpp = args.mpp or (0.25 if args.gpu else 0.5)
    factory = model_factory(args)
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as work:
        cohort = Path(work) / "cohort"
        started = time.perf_counter()
        write_cohort(cohort, slides=slides, side_px=side_px, mpp=mpp)
        log.info("cohort of %d slides written in %.1f s", slides, time.perf_counter() - started)
        config = job_config(args, cohort, Path(work) / "features")
        connect(None)
        summary = run_extraction(config, factories={NAME: factory})
        load = os.getloadavg()[0]
        ray.shutdown()  # nothing of the job may compete with the bare loop
        batches = 4 if args.quick else 8
        tiles = decoded_tiles(cohort, config, limit=min(summary.tiles, batches * config.batch_size))
        bare = bare_forward(tiles, factory=factory, batch_size=config.batch_size, gpu=args.gpu,
                            threads=config.torch_threads or os.cpu_count() or 1)
        gpu_decode = gpu_decode_difference(cohort, config) if args.decode_gpus else None
    rows = {"slides (done/skipped/failed)": f"{summary.done}/{summary.skipped}/{summary.failed}",
            "slide size, mpp": f"{side_px} x {side_px} px at {mpp} um/px",
            "tiles": f"{summary.tiles}", "batch size": f"{config.batch_size}",
            "options": f"torch.compile {'on' if args.compile else 'off'}, SDPA {args.sdpa}, "
                       f"decode_gpus {args.decode_gpus:g}",
            "job wall time (s)": f"{summary.seconds:.1f} (start-up {summary.startup_s:.1f})",
            "end-to-end tiles/s (incl. start-up)": f"{summary.tiles_per_s:.1f}",
            "end-to-end tiles/s (steady)": f"{summary.steady_tiles_per_s:.1f}",
            "bare forward tiles/s": f"{bare:.1f}",
            "efficiency (steady / bare)": f"{summary.steady_tiles_per_s / bare:.0%}",
            "1-min load average at the end of the job": f"{load:.1f} on {os.cpu_count()} cores"}
    if gpu_decode is not None:
        rows["GPU vs CPU decoded tiles (mean abs. difference)"] = gpu_decode
    write_result(args, rows)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
