"""Evaluation of trained models: per-epoch validation of every pack member, and the final metrics.

Per epoch: task loss, AUC / C-index and the two cheap robustness metrics a multi-objective search
optimises (cross-scanner score spread and flip rate on validation specimens), from one vmapped
forward pass over the pack. At the end: every slide predicted once with the best weights, and all
task and robustness metrics of the val and test splits. Fine-tuning computes its predictions with the
FM in the loop and then uses the same two functions (`validation_metrics`, `evaluate_predictions`),
so frozen-feature and fine-tuned models are measured alike.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from raypath.metrics.summary import epoch_summary, summarize
from raypath.mil.losses import task_loss
from raypath.mil.robust import RobustMIL
from raypath.train.config import TrainConfig
from raypath.train.fused_model import FusedObjective
from raypath.train.predict import predict, prediction_table
from raypath.train.setup import Prepared


def validation_summary(
    fused: FusedObjective, prepared: Prepared, *, config: TrainConfig, active: torch.Tensor | None = None
) -> list[dict[str, float]]:
    """One metrics dict per member; empty dicts when there is no validation split, and for members
    that are not `active` (a (G,) mask; None = all), which are not evaluated."""
    slides = prepared.indices("val")
    members = None if active is None else active.nonzero().flatten()
    results: list[dict[str, float]] = [{} for _ in range(fused.size)]
    if len(slides) == 0 or (members is not None and len(members) == 0):
        return results
    predictions, _ = fused.predict(prepared.collator, slides, config=config, members=members)
    for g, prediction in zip(range(fused.size) if members is None else members.tolist(), predictions,
                             strict=True):
        results[g] = validation_metrics(prediction, prepared, slides=slides, config=config)
    return results


def validation_metrics(prediction: torch.Tensor, prepared: Prepared, *, slides: np.ndarray,
                       config: TrainConfig) -> dict[str, float]:
    """An epoch's `val/` metrics (task loss, AUC / C-index, the cheap robustness metrics) of the raw
    predictions of validation slides `slides`: what early stopping and the searches read."""
    c, index = prepared.collator, torch.as_tensor(slides)
    loss = task_loss(config.task, prediction, label=c.label[index], time=c.time[index], event=c.event[index])
    table = prediction_table(prepared.bagset.slides.iloc[slides], prediction, task=config.task,
                             threshold=config.threshold)
    summary = epoch_summary(table, task=config.task)
    return {"val/loss": float(loss), **{f"val/{k}": v for k, v in summary.values.items()}}


@dataclass(frozen=True)
class Evaluation:
    """Final metrics (`<split>/<name>`), the reasons of undefined ones, per-slide predictions, and
    the survival decision cut."""

    metrics: dict[str, float]
    undefined: dict[str, str]
    table: pd.DataFrame
    risk_cut: float | None
    caveats: dict[str, str] = field(default_factory=dict)  # metric -> what its value stands on


FINAL_SPLITS = ("val", "test")


def final_evaluation(model: RobustMIL, prepared: Prepared, *, config: TrainConfig, seed: int,
                     splits: Sequence[str] = FINAL_SPLITS) -> Evaluation:
    """Predict every slide once; metrics for `splits` (val and test, and the held-out scanner)."""
    slides = np.arange(prepared.bagset.n_slides)
    prediction, embeddings = predict(model, prepared.collator, slides, config=config)
    return evaluate_predictions(prediction, embeddings, prepared, config=config, seed=seed, splits=splits)


def evaluate_predictions(prediction: torch.Tensor, embeddings: np.ndarray, prepared: Prepared, *,
                         config: TrainConfig, seed: int, splits: Sequence[str] = FINAL_SPLITS) -> Evaluation:
    """The final metrics of every slide's raw predictions and embeddings (in `prepared` order),
    however they were computed (frozen features, or an FM fine-tuned with the head): val and test
    task and robustness metrics (kNN with the configured `robustness_k`), why undefined ones are
    undefined, and the survival decision cut (the training median risk). `splits` names the splits
    summarised: a search, which selects on validation data only, leaves out the test split (most of
    the cost: its probes and kNN on the most slides)."""
    train = prepared.split.to_numpy() == "train"
    risk_cut = float(np.median(prediction[torch.as_tensor(train), 0].numpy())) if train.any() else None
    table = prediction_table(prepared.bagset.slides, prediction, task=config.task,
                             threshold=config.threshold, risk_cut=risk_cut)
    table["split"] = prepared.split.to_numpy()
    metrics: dict[str, float] = {}
    undefined: dict[str, str] = {}
    caveats: dict[str, str] = {}
    for name in splits:
        rows = table["split"].to_numpy() == name
        summary = summarize(table[rows], embeddings[rows], task=config.task, k=config.robustness_k,
                            held_out=config.split.held_out_scanners, seed=seed, limits=config.limits)
        metrics.update({f"{name}/{key}": value for key, value in summary.values.items()})
        undefined.update({f"{name}/{key}": reason for key, reason in summary.undefined.items()})
        caveats.update({f"{name}/{key}": caveat for key, caveat in summary.caveats.items()})
    return Evaluation(metrics=metrics, undefined=undefined, table=table,
                      risk_cut=risk_cut if config.task == "survival" else None, caveats=caveats)
