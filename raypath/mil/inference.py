"""The one slide-inference function and the one decision rule.

Training's evaluation (bags collated from the feature cache), the pyfunc model and `raypath
predict` (one bag of stored features), and fine-tuning (bags of tiles embedded by the adapted FM)
differ only in where a bag's features come from; what the network computes on them, and how its
scores become decisions, is decided here once, so no two paths can disagree.
"""

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class SlideOutputs(NamedTuple):
    """What inference gives per slide, in input order."""

    prediction: torch.Tensor  # (n, n_outputs) raw logits or risks
    embedding: np.ndarray  # (n, hidden) pooled slide embeddings
    attention: list[np.ndarray]  # per slide: the pooling weight of each of its real tiles (sum 1)


@torch.inference_mode()
def infer_slides(model: nn.Module, bags: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> SlideOutputs:
    """`model` (any MIL network: `forward(features (B, N, D), mask (B, N)) -> MILOutput`) on padded
    batches of bags, in eval mode (dropout off; its training mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    predictions, embeddings, attention = [], [], []
    try:
        for features, mask in bags:
            output = model(features, mask)
            predictions.append(output.prediction.cpu())
            embeddings.append(output.embedding.cpu())
            attention += [weights[real].numpy() for weights, real in zip(output.attention.cpu(), mask.cpu(),
                                                                         strict=True)]
    finally:
        model.train(was_training)
    if not predictions:
        return SlideOutputs(torch.empty(0, 1), np.empty((0, 0), np.float32), [])
    return SlideOutputs(torch.cat(predictions), torch.cat(embeddings).numpy(), attention)


def decide(task: str, scores: np.ndarray, *, threshold: float, risk_cut: float | None) -> np.ndarray:
    """Each slide's decision from its scores (`task_scores`: (n,) probabilities or risks, (n, C) class
    probabilities): class argmax (multiclass), probability ≥ `threshold` (binary), risk ≥ `risk_cut`
    (survival: the cut the model was evaluated with, the training median risk)."""
    scores = np.asarray(scores)
    if task == "multiclass":
        return scores.argmax(axis=1).astype(np.int64)
    if task == "binary":
        return (scores >= threshold).astype(np.int64)
    if risk_cut is None:
        raise ValueError("survival decisions need a risk cut (the training median risk)")
    return (scores >= risk_cut).astype(np.int64)
