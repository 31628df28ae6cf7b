"""The Ray Data graph: slide tasks -> read_slides (CPU tasks) -> one EncoderActor stage per encoder.

    from_items(slides, one block each)
      .map_batches(read_slides, batch_size=1, num_cpus=decode_cpus)        # tasks, SPREAD over nodes
      .map_batches(EncoderActor, batch_size, concurrency, num_gpus, ...)   # one stage per encoder
      ...                                                                   # last one drops pixels
      .iter_batches() on the driver -> assemble -> write

Reading tasks stream small blocks (one chunk of tiles each) so decoding on CPUs overlaps with
inference, and Ray Data's back-pressure bounds the tiles in flight: a cohort is never in memory.
"""

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import ray
from ray.data import ActorPoolStrategy, DataContext

from raypath.extract.config import ExtractConfig
from raypath.extract.encode import EncoderActor, InferenceSettings
from raypath.extract.encoders import EncoderInfo
from raypath.extract.references import slide_references
from raypath.extract.tiles import ReadSettings, read_slides
from raypath.paths import join

log = logging.getLogger(__name__)

QC_DIR = "_qc"


def read_settings(config: ExtractConfig) -> ReadSettings:
    """Reading tasks given a GPU share (`decode_gpus`) decode JPEG tiles on it."""
    return ReadSettings(tiling=config.tiling, non_pyramidal=config.non_pyramidal,
                        tiles_per_chunk=config.tiles_per_chunk, max_attempts=config.max_attempts,
                        timeout_s=config.read_timeout_s,
                        decode_device="cuda" if config.decode_gpus > 0 else "cpu",
                        qc_dir=qc_dir(config) if config.qc_pictures else None,
                        references=slide_references(config))


def qc_dir(config: ExtractConfig) -> str:
    """Per tiling, not per encoder: the picture shows the tiles every encoder of the run saw."""
    return join(str(config.output), QC_DIR, config.tiling.cache_key())


def chunk_bytes(config: ExtractConfig) -> int:
    """Bytes of one chunk of decoded uint8 RGB tiles."""
    return config.tiles_per_chunk * config.tiling.tile_px ** 2 * 3


@contextlib.contextmanager
def data_context(config: ExtractConfig) -> Iterator[DataContext]:
    """Blocks of about one chunk (Ray's 128 MiB default would hold ~900 tiles back before the
    first batch reaches an encoder) and no Ray progress bars (the driver shows its own)."""
    context = DataContext.get_current()
    saved = {"target_max_block_size": context.target_max_block_size,
             "enable_progress_bars": context.enable_progress_bars}
    # A chunk just over 3/4 of the target flushes as one block, never sliced (Ray slices at 1.5x).
    context.target_max_block_size = max(1 << 20, int(chunk_bytes(config) * 0.75))
    context.enable_progress_bars = False
    try:
        yield context
    finally:
        for key, value in saved.items():
            setattr(context, key, value)


def check_resources(config: ExtractConfig, *, stages: int, available: dict[str, float]) -> None:
    """Every inference actor plus one reading task must fit at once, or Ray Data waits forever."""
    need = {"CPU": config.decode_cpus + stages * config.concurrency * config.encoder_cpus,
            "GPU": config.decode_gpus + stages * config.concurrency * config.num_gpus}
    short = {k: (v, available.get(k, 0.0)) for k, v in need.items() if v > available.get(k, 0.0) + 1e-9}
    if short:
        detail = ", ".join(f"{k}: needs {v:g}, cluster has {have:g}" for k, (v, have) in short.items())
        raise ValueError(f"extract config does not fit the Ray cluster ({detail}); lower "
                         "concurrency/encoder_cpus/num_gpus/decode_cpus or add nodes")


def build_dataset(
    tasks: list[dict[str, Any]], *, config: ExtractConfig, encoders: list[EncoderInfo],
) -> ray.data.Dataset:
    """The lazy graph; nothing runs until the driver iterates it."""
    dataset = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    # Reading reserves memory and the actors do not: Ray Data fuses a task stage into the next
    # actor stage only when their resource requests are equal, and fused, decoding would stop
    # overlapping with inference and stop spreading over the nodes.
    dataset = dataset.map_batches(read_slides, batch_size=1, batch_format="numpy",
                                  num_cpus=config.decode_cpus, num_gpus=config.decode_gpus or None,
                                  memory=config.decode_memory_mb * 2**20,
                                  fn_kwargs={"settings": read_settings(config)})
    for position, info in enumerate(encoders):
        settings = InferenceSettings(name=info.name, factory=info.factory, use_gpu=config.num_gpus > 0,
                                     dtype=config.dtype, torch_threads=config.torch_threads,
                                     drop_image=position == len(encoders) - 1)
        dataset = dataset.map_batches(
            EncoderActor, fn_constructor_kwargs={"settings": settings}, batch_size=config.batch_size,
            batch_format="numpy", compute=ActorPoolStrategy(size=config.concurrency),
            num_gpus=config.num_gpus or None,
            num_cpus=config.encoder_cpus)
    return dataset
