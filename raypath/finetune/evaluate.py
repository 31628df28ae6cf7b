"""The fine-tuned model's predictions and metrics: every slide's tiles (all, or `eval_tiles` evenly
spaced ones) embedded by the adapted FM exactly as `raypath predict` embeds them, pooled by the head
through the one inference function (`raypath.mil.inference`), and measured by the MIL engine's own
functions: `validation_metrics` every epoch, `evaluate_predictions` at the end (so a fine-tuned and a
frozen-feature model get the same metrics, robustness k and reasons for undefined ones)."""

from collections.abc import Iterator

import numpy as np
import torch

from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import FinetuneData
from raypath.finetune.model import FinetuneModel, build_model
from raypath.mil.inference import infer_slides
from raypath.mil.sampling import even_positions
from raypath.packaging.adapted import embed_tiles
from raypath.train.evaluation import Evaluation, evaluate_predictions, validation_metrics


def restore(config: FinetuneConfig, data: FinetuneData, trained: dict[str, torch.Tensor], *,
            model: FinetuneModel | None = None) -> FinetuneModel:
    """A checkpoint's trained tensors (adapters + head) on a fresh base FM (or into `model`), eval mode."""
    prepared = data.prepared
    if model is None:
        model = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes))
    missing = {n for n, p in model.named_parameters() if p.requires_grad} - set(trained)
    if missing:
        raise ValueError(f"checkpoint lacks trained tensors {sorted(missing)[:5]}")
    model.load_state_dict(trained, strict=False)
    return model.eval()


def _bags(model: FinetuneModel, data: FinetuneData, slides: np.ndarray, *,
          eval_tiles: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One bag per slide: its tiles' FM embeddings, on the head's device."""
    offsets = data.prepared.bagset.offsets
    device = next(model.mil.parameters()).device
    for slide in slides:
        count = int(offsets[slide + 1] - offsets[slide])
        rows = np.arange(count) if eval_tiles is None else even_positions(count, eval_tiles)
        features = torch.from_numpy(embed_tiles(model.encoder, data.source.tiles(int(slide), rows)))
        yield features[None].to(device), torch.ones((1, len(features)), dtype=torch.bool, device=device)


def predict_slides(model: FinetuneModel, data: FinetuneData, slides: np.ndarray, *,
                   eval_tiles: int | None) -> tuple[torch.Tensor, np.ndarray]:
    """(raw predictions (n, out), slide embeddings (n, hidden)) of plan slides, the whole model in eval
    mode (its training mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    try:
        outputs = infer_slides(model.mil.backbone, _bags(model, data, slides, eval_tiles=eval_tiles))
    finally:
        model.train(was_training)
    return outputs.prediction, outputs.embedding


def validate(model: FinetuneModel, data: FinetuneData, *, config: FinetuneConfig) -> dict[str, float]:
    """This epoch's `val/` metrics (empty without validation slides)."""
    slides = data.prepared.indices("val")
    if len(slides) == 0:
        return {}
    prediction, _ = predict_slides(model, data, slides, eval_tiles=config.eval_tiles)
    return validation_metrics(prediction, data.prepared, slides=slides, config=data.train)


def evaluate(model: FinetuneModel, data: FinetuneData, *, config: FinetuneConfig) -> Evaluation:
    """Every plan slide predicted; the final metrics of `raypath train` (`evaluate_predictions`)."""
    slides = np.arange(data.prepared.bagset.n_slides)
    prediction, embeddings = predict_slides(model, data, slides, eval_tiles=config.eval_tiles)
    return evaluate_predictions(prediction, embeddings, data.prepared, config=data.train,
                                seed=config.seed)
