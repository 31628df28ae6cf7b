"""The trained model back on the driver: rebuilt from the last checkpoint, every slide predicted from
its tiles (embedded exactly as `raypath predict` embeds them), and the val/test metrics."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import FinetuneData
from raypath.finetune.model import FinetuneModel, build_model
from raypath.metrics.summary import summarize
from raypath.mil.sampling import even_positions
from raypath.registry.adapted import embed_tiles
from raypath.train.predict import prediction_table


@dataclass(frozen=True)
class Evaluation:
    """Per-slide predictions (with split), slide embeddings, `<split>/<metric>` values, and the
    survival decision cut (the training median risk)."""

    table: pd.DataFrame
    embeddings: np.ndarray
    metrics: dict[str, float]
    risk_cut: float | None = None


def restore(config: FinetuneConfig, data: FinetuneData, trained: dict[str, torch.Tensor]) -> FinetuneModel:
    """The model of a checkpoint's trained tensors (adapters + head) on a fresh base FM, eval mode."""
    prepared = data.prepared
    model = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes))
    missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(trained)
    if missing:
        raise ValueError(f"checkpoint lacks trained tensors {sorted(missing)[:5]}")
    model.load_state_dict(trained, strict=False)
    return model.eval().requires_grad_(False)


@torch.inference_mode()
def predict_plan(model: FinetuneModel, data: FinetuneData, slides: np.ndarray, *,
                 eval_tiles: int | None) -> tuple[torch.Tensor, np.ndarray]:
    """(raw predictions (n, out), slide embeddings (n, hidden)) of plan slides, all tiles (or
    `eval_tiles` evenly spaced ones), one slide at a time."""
    offsets = data.prepared.bagset.offsets
    predictions, embeddings = [], []
    for slide in slides:
        count = int(offsets[slide + 1] - offsets[slide])
        rows = np.arange(count) if eval_tiles is None else even_positions(count, eval_tiles)
        features = torch.from_numpy(embed_tiles(model.encoder, data.source.tiles(int(slide), rows)))
        output = model.mil.backbone(features[None], torch.ones((1, len(features)), dtype=torch.bool))
        predictions.append(output.prediction)
        embeddings.append(output.embedding)
    return torch.cat(predictions), torch.cat(embeddings).numpy()


def evaluate(model: FinetuneModel, data: FinetuneData, *, config: FinetuneConfig) -> Evaluation:
    """Every plan slide predicted; task and robustness metrics of the val and test splits."""
    prepared = data.prepared
    slides = np.arange(prepared.bagset.n_slides)
    prediction, embeddings = predict_plan(model, data, slides, eval_tiles=config.eval_tiles)
    train = prepared.split.to_numpy() == "train"
    risk_cut = (float(np.median(prediction[torch.as_tensor(train), 0].numpy()))
                if config.task == "survival" and train.any() else None)
    table = prediction_table(prepared.bagset.slides, prediction, task=config.task, threshold=config.threshold,
                             risk_cut=risk_cut)
    table["split"] = prepared.split.to_numpy()
    metrics: dict[str, float] = {}
    for name in ("val", "test"):
        rows = table["split"].to_numpy() == name
        summary = summarize(table[rows], embeddings[rows], task=config.task,
                            held_out=data.train.split.held_out_scanners, seed=config.seed,
                            k=min(10, max(1, int(rows.sum()) - 1)))
        metrics.update({f"{name}/{key}": value for key, value in summary.values.items()})
    return Evaluation(table=table, embeddings=embeddings, metrics=metrics, risk_cut=risk_cut)
