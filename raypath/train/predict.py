"""Inference over many slides in fixed-size chunks, deterministic (fixed-seed tile sampling)."""

import numpy as np
import pandas as pd
import torch

from raypath.mil.losses import task_scores
from raypath.mil.robust import RobustMIL
from raypath.mil.sampling import Collator
from raypath.train.config import TrainConfig


@torch.inference_mode()
def predict(
    model: RobustMIL, collator: Collator, slides: np.ndarray, *, config: TrainConfig,
) -> tuple[torch.Tensor, np.ndarray]:
    """(raw predictions (n, out), slide embeddings (n, hidden)) in the order of `slides`."""
    was_training = model.training
    model.eval()
    predictions, embeddings = [], []
    for batch in collator.eval_batches(slides, max_bags=config.eval_batch_bags,
                                       max_tiles=config.eval_max_tiles, tile_budget=config.eval_batch_tiles):
        output = model(batch.features, batch.mask)
        predictions.append(output.prediction)
        embeddings.append(output.embedding)
    model.train(was_training)
    if not predictions:
        return torch.empty(0, 1), np.empty((0, 0), np.float32)
    return torch.cat(predictions), torch.cat(embeddings).numpy()


def prediction_table(
    slides: pd.DataFrame, prediction: torch.Tensor, *, task: str, threshold: float,
    risk_cut: float | None = None,
) -> pd.DataFrame:
    """Per-slide scores and decisions next to identity and targets (a copy of `slides`' rows).

    Decisions: probability ≥ threshold (binary), argmax (multiclass), risk ≥ `risk_cut` (survival:
    the training median risk, so 'high risk' means the same thing on every split).
    """
    table = slides.reset_index(drop=True).copy()
    scores = task_scores(task, prediction).numpy()
    if task == "multiclass":
        for c in range(scores.shape[1]):
            table[f"prob_{c}"] = scores[:, c]
        table["score"] = scores.max(axis=1)
        table["decision"] = scores.argmax(axis=1)
    elif task == "binary":
        table["score"] = scores
        table["decision"] = (scores >= threshold).astype(int)
    else:
        table["score"] = scores
        cut = float(np.median(scores)) if risk_cut is None else risk_cut
        table["decision"] = (scores >= cut).astype(int)
    return table
