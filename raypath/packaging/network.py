"""Rebuild a trained backbone from its spec and safetensors weights, and run it on one bag exactly
as evaluation did: features rounded to the training precision, evenly spaced tiles when capped,
then the one inference function and decision rule (`raypath.mil.inference`)."""

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from raypath.mil.config import ModelConfig
from raypath.mil.inference import decide, infer_slides
from raypath.mil.losses import task_scores
from raypath.mil.models import build_mil
from raypath.mil.sampling import even_positions
from raypath.packaging.spec import ModelSpec

ROUNDING = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def load_backbone(spec: ModelSpec, weights: Path | str) -> nn.Module:
    """The MIL backbone (what predicts; robustness heads are training-only) in eval mode."""
    config = ModelConfig.model_validate(spec.model)
    backbone = build_mil(config.kind, in_dim=spec.in_dim, n_outputs=spec.n_outputs, hidden=config.hidden,
                         dropout=0.0, **config.backbone_settings())
    state = load_file(str(weights))
    backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()
                              if k.startswith("backbone.")})
    return backbone.eval()


def predict_bag(backbone: nn.Module, spec: ModelSpec, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores: probabilities (n_outputs,) or the risk (1,), attention (n_tiles,) relative to uniform;
    NaN for tiles left out by `eval_max_tiles`)."""
    if features.ndim != 2 or features.shape[1] != spec.in_dim:
        raise ValueError(f"features of shape {features.shape}; the model expects (tiles, {spec.in_dim})")
    tensor = torch.from_numpy(np.array(features, dtype=np.float32))  # a writable copy
    if spec.feature_storage in ROUNDING:
        tensor = tensor.to(ROUNDING[spec.feature_storage]).float()
    chosen = np.arange(len(tensor))
    if spec.eval_max_tiles is not None and len(tensor) > spec.eval_max_tiles:
        chosen = even_positions(len(tensor), spec.eval_max_tiles)
    output = infer_slides(backbone, [(tensor[chosen][None], torch.ones((1, len(chosen)), dtype=torch.bool))])
    attention = np.full(len(tensor), np.nan, dtype=np.float32)
    attention[chosen] = output.attention[0] * len(chosen)
    scores = task_scores(spec.task, output.prediction)[0]
    return np.atleast_1d(scores.numpy()).astype(np.float64), attention


def decision(spec: ModelSpec, scores: np.ndarray) -> int:
    """One slide's decision (`decide`) by the rule and cut the model was evaluated with."""
    batch = scores[None] if spec.task == "multiclass" else scores[:1]
    return int(decide(spec.task, batch, threshold=spec.threshold, risk_cut=spec.risk_cut)[0])
