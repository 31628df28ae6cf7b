"""Early stopping on the validation metric, kept per pack member (each stops on its own)."""

import numpy as np

from raypath.train.config import TrainConfig


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

    def state_dict(self) -> dict[str, float | int]:
        return {"best": float(self.best), "best_epoch": self.best_epoch, "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.stale = state["best"], state["best_epoch"], state["stale"]

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.stale >= self.patience
