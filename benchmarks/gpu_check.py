"""The measurements of `gpu_check.sh`, one part per process so a failing part loses only itself.

Parts (each writes `<out>/<part>.md`, a section of the results file):
- `env`: the device, driver, torch and the optional GPU packages found;
- `inference`: FM inference from slides against the bare forward: a randomly initialised ViT-L/16
  of UNI's architecture (weights cannot be downloaded) in bf16 autocast; tiles read from synthetic
  40x SVS slides by raypath's scaled-JPEG reader in a background thread while the GPU runs the
  previous batch, vs the same forward on tiles already in memory;
- `decode`: JPEG tile decoding of the same slides on the GPU (nvImageCodec via the reader's
  `device="cuda"`, and cuCIM's GPU reader where installed) vs the CPU (libjpeg-turbo);
- `lora`: LoRA fine-tuning tiles/s per GPU: `raypath.finetune.model.step` (forward + backward +
  AdamW) of ViT-L/16 with LoRA adapters and the robust MIL head, bf16 autocast.
`--dry-run`: tiny models, few tiles, CPU; the GPU-only measurements are reported as skipped with
the reason. Needs no Ray, MLflow or network: only what `gpu_check.sh` installs.

    python benchmarks/gpu_check.py PART --out DIR [--dry-run] [--seconds S]
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import logging
import os
import platform
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from raypath.encoders.backbone import create_pool, create_trunk
from raypath.encoders.compat import import_timm
from raypath.encoders.encoder import Encoder
from raypath.encoders.registry import get_card
from raypath.slides import open_slide, read_tiles, tile_slide
from raypath.slides.config import TilingConfig
from raypath.slides.synth.tiff import write_svs

log = logging.getLogger("gpu_check")
PARTS = ("env", "inference", "decode", "lora")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much each part does: the real check on a GPU, or a seconds-long CPU dry run."""

    device: str
    model: str  # "vit-l16" (UNI's architecture, random weights) or "tiny-uni"
    slide_px: int
    slides: int
    batch: int
    lora_batch: int
    lora_steps: int


REAL = Sizes(device="cuda", model="vit-l16", slide_px=16384, slides=2, batch=256, lora_batch=64,
             lora_steps=10)
DRY = Sizes(device="cpu", model="tiny-uni", slide_px=2048, slides=1, batch=4, lora_batch=8, lora_steps=2)


def encoder(sizes: Sizes) -> Encoder:
    """ViT-L/16 with UNI's card and random weights (no download), or the tiny twin for a dry run."""
    card = get_card("tiny-uni") if sizes.model == "tiny-uni" else dataclasses.replace(
        get_card("uni"), name="vit-l16-random", hub_id=None, tiny=True)
    import_timm().layers.set_fused_attn(True)
    trunk = create_trunk(card)
    return Encoder(card, backbone=trunk, pool=create_pool(card, trunk))


@dataclasses.dataclass(frozen=True)
class Stain:
    """A deterministic H&E-like texture inside an ellipse, glass outside (renders slide blocks)."""

    side_px: int

    def __call__(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        ys, xs = np.mgrid[y0:y0 + height, x0:x0 + width].astype(np.float32)
        wave = (np.sin(xs / 37.0) * np.cos(ys / 23.0) + np.sin((xs + ys) / 11.0)) * 0.5
        pink, purple = np.array([235, 160, 200], np.float32), np.array([120, 60, 150], np.float32)
        rgb = pink + (purple - pink) * ((wave + 1) / 2)[..., None]
        inside = ((xs / self.side_px - 0.5) / 0.45) ** 2 + ((ys / self.side_px - 0.5) / 0.4) ** 2 <= 1
        return np.where(inside[..., None], rgb, 242).astype(np.uint8)


def slides(work: Path, sizes: Sizes) -> list[Path]:
    """Synthetic pyramidal JPEG SVS slides at 0.25 um/px (40x): tiles go through 1/2-scale decoding."""
    paths = []
    for index in range(sizes.slides):
        path = work / f"slide-{index}.svs"
        if not path.exists():
            write_svs(path, render=Stain(sizes.slide_px), dimensions=(sizes.slide_px, sizes.slide_px),
                      mpp=0.25, quality=85, stripe_px=1024)
        paths.append(path)
    return paths


TILING = TilingConfig(tile_px=224, target_mpp=0.5, min_tissue_fraction=0.25)


def decode_rate(paths: list[Path], *, reader: str, device: str) -> tuple[float, int, np.ndarray]:
    """(tiles/s, tiles, the first slide's tiles) of reading every tissue tile of `paths`."""
    count, first, seconds = 0, None, 0.0
    for path in paths:
        with open_slide(path, reader=reader, device=device) as slide:
            grid = tile_slide(slide, TILING)
            started = time.perf_counter()
            tiles = read_tiles(slide, grid)
            seconds += time.perf_counter() - started
        count += len(tiles)
        first = tiles if first is None else first
    return count / seconds, count, first


def batches_from_slides(paths: list[Path], *, batch: int, device: str) -> Iterator[np.ndarray]:
    """Tile batches read (CPU decode) in a background thread, two batches ahead of the consumer."""
    ready: queue.Queue = queue.Queue(maxsize=2)

    def produce() -> None:
        try:
            for path in paths:
                with open_slide(path, reader="jpeg") as slide:
                    tiles = read_tiles(slide, tile_slide(slide, TILING))
                for start in range(0, len(tiles), batch):
                    ready.put(tiles[start:start + batch])
        finally:
            ready.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (item := ready.get()) is not None:
        yield item


def autocast(device: str) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def synchronise(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def part_env(sizes: Sizes, work: Path) -> list[str]:
    rows = [f"| python | {platform.python_version()} |", f"| torch | {torch.__version__} |",
            f"| CUDA available | {torch.cuda.is_available()} |"]
    if torch.cuda.is_available():
        rows.append(f"| device | {torch.cuda.get_device_name(0)}, "
                    f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB |")
    for module in ("nvidia.nvimgcodec", "cucim", "peft", "timm", "simplejpeg"):
        found = importlib.util.find_spec(module.split(".")[0]) is not None and (
            "." not in module or _importable(module))
        rows.append(f"| {module} | {'installed' if found else 'missing'} |")
    return ["| what | value |", "|---|---|", *rows]


def _importable(module: str) -> bool:
    try:
        __import__(module)
        return True
    except Exception:
        return False


def part_inference(sizes: Sizes, work: Path) -> list[str]:
    device = sizes.device
    model = encoder(sizes).eval().requires_grad_(False).to(device)
    paths = slides(work, sizes)
    with torch.inference_mode(), autocast(device):
        _, _, tiles = decode_rate(paths[:1], reader="jpeg", device="cpu")
        batches = [tiles[i:i + sizes.batch] for i in range(0, len(tiles) - sizes.batch + 1, sizes.batch)]
        model(model.preprocess(batches[0], device=device)).float().cpu()  # warm-up
        synchronise(device)
        started = time.perf_counter()
        for batch in batches:
            model(model.preprocess(batch, device=device)).float().cpu()
        synchronise(device)
        bare = len(batches) * sizes.batch / (time.perf_counter() - started)
        started, count = time.perf_counter(), 0
        for batch in batches_from_slides(paths, batch=sizes.batch, device=device):
            model(model.preprocess(batch, device=device)).float().cpu()
            count += len(batch)
        synchronise(device)
        from_slides = count / (time.perf_counter() - started)
    name = "ViT-L/16 (UNI's architecture, random weights), bf16 autocast" if device == "cuda" else \
        "tiny-uni (dry run), fp32 on CPU"
    return [f"Model: {name}; batch {sizes.batch}; {sizes.slides} synthetic 40x slides of {sizes.slide_px} "
            "px, tiles of 224 px at 0.5 um/px (448 px read, decoded at 1/2).", "",
            "| measure | tiles | tiles/s |", "|---|---|---|",
            f"| bare forward (tiles in memory, preprocess + forward) | {len(batches) * sizes.batch} | "
            f"{bare:.1f} |",
            f"| from slides (CPU decode thread + preprocess + forward) | {count} | {from_slides:.1f} |",
            "", f"From slides / bare: {from_slides / bare:.0%}."]


def part_decode(sizes: Sizes, work: Path) -> list[str]:
    paths = slides(work, sizes)
    cpu_rate, count, cpu_tiles = decode_rate(paths, reader="jpeg", device="cpu")
    rows = [f"| scaled-JPEG reader, CPU (libjpeg-turbo, {os.cpu_count()} cores) | {count} | "
            f"{cpu_rate:.1f} | - |"]
    if not torch.cuda.is_available():
        rows += ["| scaled-JPEG reader, GPU (nvImageCodec) | - | skipped: no CUDA device | - |",
                 "| cuCIM reader, GPU | - | skipped: no CUDA device | - |"]
    else:
        gpu_rate, gpu_count, gpu_tiles = decode_rate(paths, reader="jpeg", device="cuda")
        mad = float(np.abs(gpu_tiles.astype(np.int16) - cpu_tiles.astype(np.int16)).mean())
        rows.append(f"| scaled-JPEG reader, GPU (nvImageCodec) | {gpu_count} | {gpu_rate:.1f} | {mad:.2f} |")
        if importlib.util.find_spec("cucim") is None:
            rows.append("| cuCIM reader, GPU | - | skipped: cucim not installed | - |")
        else:
            cucim_rate, cucim_count, _ = decode_rate(paths, reader="cucim", device="cuda")
            rows.append(f"| cuCIM reader | {cucim_count} | {cucim_rate:.1f} | - |")
    return ["| decoder | tiles | tiles/s | mean abs. difference to CPU (grey levels) |", "|---|---|---|---|",
            *rows]


def part_lora(sizes: Sizes, work: Path) -> list[str]:
    from raypath.encoders.lora import add_lora
    from raypath.finetune.config import FinetuneConfig
    from raypath.finetune.model import FinetuneModel, step
    from raypath.mil.batch import Batch
    from raypath.mil.robust import build_robust_mil

    device = sizes.device
    losses = {"infonce": 0.5, "score_consistency": 1.0, "tile_consistency": 0.5}
    config = FinetuneConfig(encoder="tiny-uni", losses=losses, fm_tile_consistency=0.5,
                            model={"hidden": 64, "attention_dim": 32, "projection_dim": 32, "dropout": 0.0})
    torch.manual_seed(0)
    fm = add_lora(encoder(sizes), config.lora)
    head = build_robust_mil(task="binary", kind="gated", in_dim=fm.embed_dim, n_outputs=1, hidden=64,
                            attention_dim=32, dropout=0.0, weights=losses, projection_dim=32, n_scanners=2)
    model = FinetuneModel(fm, head, weights=config.loss_weights()).to(device).train()
    specimens, scans = 2, 2
    tiles = sizes.lora_batch // (specimens * scans)
    specimen = torch.arange(specimens).repeat_interleave(scans)
    batch = Batch(features=torch.zeros(specimens * scans, tiles, 0), mask=torch.ones(specimens * scans, tiles,
                                                                                     dtype=torch.bool),
                  specimen=specimen, scanner=torch.arange(scans).repeat(specimens),
                  tile_group=specimen[:, None] * tiles + torch.arange(tiles)[None, :], label=specimen % 2,
                  time=torch.zeros(specimens * scans), event=torch.zeros(specimens * scans),
                  slide=torch.arange(specimens * scans))
    batch = Batch(*(t.to(device) for t in batch))
    size = fm.card.input_size
    pixels = torch.randn(specimens * scans * tiles, 3, size, size, device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with autocast(device):
        step(model, optimizer, pixels, batch)  # warm-up
        synchronise(device)
        started = time.perf_counter()
        for _ in range(sizes.lora_steps):
            step(model, optimizer, pixels, batch)
        synchronise(device)
    rate = sizes.lora_steps * len(pixels) / (time.perf_counter() - started)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    memory = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "-"
    return ["| model | tiles per step | steps | tiles/s per device | trainable parameters "
            "| peak GPU memory |",
            "|---|---|---|---|---|---|",
            f"| {sizes.model} + LoRA (rank {config.lora.rank}) + robust MIL head, "
            f"{'bf16 autocast' if device == 'cuda' else 'fp32 CPU'} | {len(pixels)} | {sizes.lora_steps} | "
            f"{rate:.1f} | {trainable:,} | {memory} |"]


TITLES = {"env": "Environment", "inference": "FM inference from slides vs the bare forward",
          "decode": "JPEG tile decoding: GPU vs CPU", "lora": "LoRA fine-tuning throughput"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=PARTS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = DRY if args.dry_run else REAL
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA device is visible (use --dry-run on a machine without a GPU)")
    if args.dry_run:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    lines = globals()[f"part_{args.part}"](sizes, work)
    text = "\n".join([f"### {TITLES[args.part]}", "", *lines, "",
                      f"({time.perf_counter() - started:.0f} s)", ""])
    (args.out / f"{args.part}.md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
