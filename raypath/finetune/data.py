"""A worker's data: the plan prepared like frozen-feature training data (splits, scanner codes,
specimen groups, the collator), a tile source, and the inputs of one step."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from raypath.encoders.encoder import Encoder
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.plan import open_plan
from raypath.finetune.tiles import TileSource
from raypath.mil.batch import Batch
from raypath.train.data import read_tables
from raypath.train.setup import Prepared, prepare


@dataclass
class FinetuneData:
    """Prepared plan (the MIL engine's `Prepared`, zero-width features) and where pixels come from."""

    prepared: Prepared
    source: TileSource


def open_data(config: FinetuneConfig, plan_dir: Path) -> FinetuneData:
    """Tables read and attached to the plan, split and indexed exactly as `raypath train` would."""
    tables = read_tables(labels=config.labels, splits=config.splits, registration=config.registration)
    plan = open_plan(plan_dir, tables, labels=str(config.labels))
    train = config.train_config()
    if config.splits is not None:
        train = train.model_copy(update={"split": train.split.model_copy(update={"source": "column"})})
    prepared = prepare(train, plan)
    cache = Path(config.tiles.cache_dir) if config.tiles.cache_dir else Path(config.output_dir) / "tiles"
    # Keyed like the plan (tiling + manifest content): another cohort never reads these tiles.
    source = TileSource(plan, source=config.tiles.source, cache_dir=cache / Path(plan_dir).name,
                        reader=config.tiling.reader, open_slides=config.tiles.open_slides)
    return FinetuneData(prepared=prepared, source=source)


def step_batches(groups: list[np.ndarray], *, specimens: int) -> Iterator[np.ndarray]:
    """Slide indices of each step: `specimens` specimen groups (all their scans) at a time, in order."""
    for start in range(0, len(groups), specimens):
        yield np.concatenate(groups[start:start + specimens])


def step_inputs(data: FinetuneData, encoder: Encoder, slides: np.ndarray, *, tiles: int | None,
                generator: torch.Generator | None, device: torch.device | str = "cpu"
                ) -> tuple[torch.Tensor, Batch]:
    """(preprocessed pixels of the batch's real tiles, the padded batch) for `slides`: tiles sampled
    per scan with registered pairs kept together (random with a generator, evenly spaced without)."""
    collator = data.prepared.collator
    selection = collator.select(slides, max_tiles=tiles, generator=generator)
    images = data.source.for_selection(selection)
    pixels = encoder.preprocess(images, device=device)
    return pixels, collator.batch(selection, torch.zeros((*selection.real.shape, 0)))
