"""Per-epoch validation metrics of every pack member from one vmapped forward pass.

The same quantities `raypath.train.loop.validation_metrics` computes for one model (task loss,
AUC / C-index), plus the two cheap robustness metrics a multi-objective search optimises
(cross-scanner score spread and flip rate on validation specimens).
"""

import torch

from raypath.config.train import TrainConfig
from raypath.evaluate.robustness import flip_rate, score_spread
from raypath.evaluate.summary import score_matrix, task_summary
from raypath.mil.losses import task_loss
from raypath.train.fused_model import FusedObjective
from raypath.train.predict import prediction_table
from raypath.train.setup import Prepared


def validation_summary(
    fused: FusedObjective, prepared: Prepared, *, config: TrainConfig
) -> list[dict[str, float]]:
    """One metrics dict per member; empty dicts when there is no validation split."""
    slides = prepared.indices("val")
    if len(slides) == 0:
        return [{} for _ in range(fused.size)]
    predictions, _ = fused.predict(
        prepared.collator, slides, batch_bags=config.eval_batch_bags, max_tiles=config.eval_max_tiles
    )
    c, index = prepared.collator, torch.as_tensor(slides)
    key = "c_index" if config.task == "survival" else "auc"
    frame = prepared.bagset.slides.iloc[slides]
    out = []
    for prediction in predictions:
        loss = task_loss(
            config.task, prediction, label=c.label[index], time=c.time[index], event=c.event[index]
        )
        table = prediction_table(frame, prediction, task=config.task, threshold=config.threshold)
        specimens = table["specimen_id"].to_numpy()
        out.append(
            {
                "val/loss": float(loss),
                f"val/{key}": task_summary(table, task=config.task)[key],
                "val/score_spread": score_spread(score_matrix(table), specimens),
                "val/flip_rate": flip_rate(table["decision"].to_numpy(), specimens),
            }
        )
    return out
