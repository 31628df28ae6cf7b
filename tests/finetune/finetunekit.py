"""Helpers of the finetune tests: a small synthetic multi-scanner cohort of real pyramidal slides,
registered, and finetune configs over it with the tiny ViT twin (64 px tiles: the twin's input size,
so nothing is resized)."""

from pathlib import Path

import torch
from torch import nn

from raypath.finetune.config import FinetuneConfig
from raypath.register.run import run_registration
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.synth import write_cohort
from raypath.slides.synth.config import SynthConfig


def synthetic_cohort(out: Path, *, seed: int, specimens: int = 6) -> Path:
    write_cohort(SynthConfig(specimens=specimens, workers=2, seed=seed), out)
    run_registration(RegisterConfig(manifest=out / "manifest.csv", out=out / "registration.parquet"))
    return out


def finetune_config(cohort: Path, out: Path, **changes) -> FinetuneConfig:
    base = {"manifest": cohort / "manifest.csv", "labels": cohort / "labels.csv",
            "registration": cohort / "registration.parquet", "output_dir": out, "epochs": 2,
            "specimens_per_step": 2, "tiles_per_scan": 8, "tiling": {"tile_px": 64},
            "split": {"source": "random", "train": 0.5, "val": 0.25},  # asked for: labels carry a split
            "losses": {"infonce": 0.5, "score_consistency": 1.0, "tile_consistency": 0.5},
            "fm_tile_consistency": 0.5, "optimizer": {"lr": 1e-2},
            "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.0}}
    return FinetuneConfig.model_validate({**base, **changes})


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that train (adapters and head), by name, on the CPU."""
    return {n: p.detach().to("cpu").clone() for n, p in model.named_parameters() if p.requires_grad}


def frozen_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers that never train (the FM's base weights)."""
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    return {n: t.detach().to("cpu") for n, t in model.state_dict().items() if n not in trains}
