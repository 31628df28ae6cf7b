"""Inference over many slides in fixed-size chunks, deterministic (evenly spaced tiles above
`eval_max_tiles`), and the per-slide prediction table every evaluation reads."""

import numpy as np
import pandas as pd
import torch

from raypath.mil.inference import decide, infer_slides
from raypath.mil.losses import task_scores
from raypath.mil.robust import RobustMIL
from raypath.mil.sampling import Collator
from raypath.train.config import TrainConfig


def predict(
    model: RobustMIL, collator: Collator, slides: np.ndarray, *, config: TrainConfig,
) -> tuple[torch.Tensor, np.ndarray]:
    """(raw predictions (n, out), slide embeddings (n, hidden)) in the order of `slides`."""
    batches = collator.eval_batches(slides, max_bags=config.eval_batch_bags, max_tiles=config.eval_max_tiles,
                                    tile_budget=config.eval_batch_tiles)
    outputs = infer_slides(model, ((batch.features, batch.mask) for batch in batches))
    return outputs.prediction, outputs.embedding


def prediction_table(
    slides: pd.DataFrame, prediction: torch.Tensor, *, task: str, threshold: float,
    risk_cut: float | None = None,
) -> pd.DataFrame:
    """Per-slide scores and decisions (`decide`) next to identity and targets (a copy of `slides`' rows).

    Survival without a `risk_cut` (per-epoch validation, which has no training median at hand) cuts
    at the median risk of these slides.
    """
    table = slides.reset_index(drop=True).copy()
    scores = task_scores(task, prediction).numpy()
    if task == "multiclass":
        for c in range(scores.shape[1]):
            table[f"prob_{c}"] = scores[:, c]
        table["score"] = scores.max(axis=1)
    else:
        table["score"] = scores
    if task == "survival" and risk_cut is None:
        risk_cut = float(np.median(scores))
    table["decision"] = decide(task, scores, threshold=threshold, risk_cut=risk_cut)
    return table
