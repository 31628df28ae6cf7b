"""A worker's data: the plan prepared like frozen-feature training data (splits, scanner codes,
specimen groups, the collator), a tile source, and the inputs of one step."""

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from raypath.encoders.encoder import Encoder
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.plan import open_plan
from raypath.finetune.tiles import TileSource
from raypath.mil.batch import Batch
from raypath.train.config import TrainConfig
from raypath.train.data import TrainingTables, decide_split, read_tables
from raypath.train.leakage import LeakageAudit
from raypath.train.setup import Prepared, prepare
from raypath.train.split_policy import SplitPlan


@dataclass
class FinetuneData:
    """Prepared plan (the MIL engine's `Prepared`, zero-width features) and where pixels come from."""

    prepared: Prepared
    source: TileSource
    train: TrainConfig  # the MIL engine's config with the split decided (held-out scanners included)


def open_data(config: FinetuneConfig, plan_dir: Path) -> FinetuneData:
    """Tables read and attached to the plan, split and indexed exactly as `raypath train` would."""
    tables = read_tables(labels=config.labels, splits=config.splits, registration=config.registration)
    plan = open_plan(plan_dir, tables, labels=str(config.labels))
    train, _, _ = finetune_split(config, plan.slides, tables)
    prepared = prepare(train, plan)
    cache = Path(config.tiles.cache_dir) if config.tiles.cache_dir else Path(config.output_dir) / "tiles"
    # Keyed like the plan (tiling + manifest content): another cohort never reads these tiles.
    source = TileSource(plan, source=config.tiles.source, cache_dir=cache / Path(plan_dir).name,
                        reader=config.tiling.reader, open_slides=config.tiles.open_slides)
    return FinetuneData(prepared=prepared, source=source, train=train)


def finetune_split(config: FinetuneConfig, slides: pd.DataFrame,
                   tables: TrainingTables) -> tuple[TrainConfig, SplitPlan, LeakageAudit]:
    """The split policy on the planned slides (`raypath.train.data.decide_split`), computed alike on
    the driver and every worker. Patients whose slides hold no tissue tile are not in the plan; a
    splits file row of theirs is left aside (the driver checked the file against the manifest)."""
    if tables.splits is not None:
        planned = tables.splits["patient_id"].isin(set(slides["patient_id"]))
        tables = replace(tables, splits=tables.splits[planned])
    return decide_split(config.train_config(), slides, tables, labels=config.labels, splits=config.splits)


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
