"""One training run in plain torch: batched specimen steps, early stopping, final evaluation.

No Ray and no MLflow here; a Tune trial or the CLI wraps ``train_model`` and logs through
``on_epoch``. Deterministic under a seed: parameters from ``torch.manual_seed``, batch order and
tile sampling from a seeded ``torch.Generator``, eval sampling from a fixed seed.
"""

import copy
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from raypath.config.train import TrainConfig
from raypath.evaluate.metrics import auc, c_index
from raypath.evaluate.summary import summarize
from raypath.mil.bags import BagSet
from raypath.mil.losses import task_loss, task_scores
from raypath.mil.robust import RobustMIL, total_loss
from raypath.mil.sampling import specimen_batches
from raypath.train.predict import predict, prediction_table
from raypath.train.setup import Prepared, build_model, prepare

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """Final metrics (``<split>/<name>``), per-slide predictions, best weights and history."""

    metrics: dict[str, float]
    predictions: pd.DataFrame
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def train_epoch(model: RobustMIL, optimizer: torch.optim.Optimizer, prepared: Prepared, *,
                config: TrainConfig, generator: torch.Generator) -> dict[str, float]:
    """One pass over the training specimens, K specimens (all their scans) per step."""
    model.train()
    weights = config.losses.weights()
    batches = specimen_batches(prepared.train_groups, batch_specimens=config.batch_specimens,
                               generator=generator)
    sums: dict[str, float] = defaultdict(float)
    for slides in batches:
        batch = prepared.collator(slides, max_tiles=config.max_tiles, generator=generator)
        _, losses = model.compute_loss(batch)
        loss = total_loss(losses, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sums["loss"] += float(loss.detach())
        for name, value in losses.items():
            sums[name] += float(value.detach())
    return {f"train/{name}": value / max(len(batches), 1) for name, value in sums.items()}


def validation_metrics(model: RobustMIL, prepared: Prepared, *, config: TrainConfig) -> dict[str, float]:
    """Cheap per-epoch validation: task loss and AUC / C-index (no probes, no kNN)."""
    slides = prepared.indices("val")
    if len(slides) == 0:
        return {}
    prediction, _ = predict(model, prepared.collator, slides, batch_bags=config.eval_batch_bags,
                            max_tiles=config.eval_max_tiles)
    c, index = prepared.collator, torch.as_tensor(slides)
    loss = task_loss(config.task, prediction, label=c.label[index], time=c.time[index], event=c.event[index])
    scores = task_scores(config.task, prediction).numpy()
    if config.task == "survival":
        return {"val/loss": float(loss),
                "val/c_index": c_index(c.time[index].numpy(), scores, c.event[index].numpy())}
    return {"val/loss": float(loss), "val/auc": auc(c.label[index].numpy(), scores)}


class EarlyStopping:
    """Tracks the best validation value; `patience` epochs without improvement stops training."""

    def __init__(self, *, config: TrainConfig) -> None:
        es = config.early_stopping
        metric = es.metric if es.metric != "auto" else ("c_index" if config.task == "survival" else "auc")
        self.key, self.higher = f"val/{metric}", metric != "loss"
        self.enabled, self.patience, self.min_delta = es.enabled, es.patience, es.min_delta
        self.best, self.best_epoch, self.stale = -np.inf, 0, 0

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record an epoch; True if it is the new best (or there is nothing to compare)."""
        value = metrics.get(self.key, float("nan"))
        if not np.isfinite(value):
            improved = self.best == -np.inf
        else:
            signed = value if self.higher else -value
            improved = signed > self.best + self.min_delta
            self.best = max(self.best, signed) if improved else self.best
        self.stale = 0 if improved else self.stale + 1
        self.best_epoch = epoch if improved else self.best_epoch
        return improved

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.stale >= self.patience


def final_evaluation(model: RobustMIL, prepared: Prepared, *, config: TrainConfig,
                     seed: int) -> tuple[dict[str, float], pd.DataFrame]:
    """Predict every slide once; metrics for val and test (and the held-out scanner)."""
    slides = np.arange(prepared.bagset.n_slides)
    prediction, embeddings = predict(model, prepared.collator, slides, batch_bags=config.eval_batch_bags,
                                     max_tiles=config.eval_max_tiles)
    train = prepared.split.to_numpy() == "train"
    risk_cut = float(np.median(prediction[torch.as_tensor(train), 0].numpy())) if train.any() else None
    table = prediction_table(prepared.bagset.slides, prediction, task=config.task,
                             threshold=config.threshold, risk_cut=risk_cut)
    table["split"] = prepared.split.to_numpy()
    metrics: dict[str, float] = {}
    for name in ("val", "test"):
        rows = table["split"].to_numpy() == name
        summary = summarize(table[rows], embeddings[rows], task=config.task, k=config.robustness_k,
                            held_out_scanner=config.split.held_out_scanner, seed=seed)
        metrics.update({f"{name}/{key}": value for key, value in summary.items()})
    return metrics, table


def train_model(*, config: TrainConfig, data: BagSet, seed: int,
                on_epoch: EpochCallback | None = None) -> TrainResult:
    """Train one model on `data` under `config`; the returned weights are the best epoch's."""
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(seed)
    prepared = prepare(config, data, seed=seed)
    model = build_model(config, prepared)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optimizer.lr,
                                  weight_decay=config.optimizer.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    stopper, history = EarlyStopping(config=config), []
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        metrics = {**train_epoch(model, optimizer, prepared, config=config, generator=generator),
                   **validation_metrics(model, prepared, config=config)}
        history.append({"epoch": epoch, **metrics})
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        if stopper.update(epoch, metrics):
            best_state = copy.deepcopy(model.state_dict())
        if stopper.should_stop:
            log.info("early stop at epoch %d (best %d)", epoch, stopper.best_epoch)
            break
    model.load_state_dict(best_state)
    metrics, table = final_evaluation(model, prepared, config=config, seed=seed)
    metrics["best_epoch"] = float(stopper.best_epoch)
    return TrainResult(metrics=metrics, predictions=table, state_dict=best_state, history=history,
                       best_epoch=stopper.best_epoch)
