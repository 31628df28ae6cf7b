"""The Ray Train worker loop: every worker builds the same model, takes its shard of the training
specimens each epoch (`DataParallel.shard`; tiles and dropout drawn from `epoch_seed`, so a resumed
run draws what it would have) and steps with DDP (or FSDP) averaging gradients in backward, not by
hand as the MIL engine does: FSDP shards an FM too large for one worker. After every epoch rank 0
validates the gathered adapters and head on the validation slides (the MIL engine's per-epoch
metrics), keeps the best epoch's weights and applies the engine's early stopping (`EarlyStopping`
on `early_stopping`); its decision is broadcast, so the group stops together. Adapters, head,
optimizer state, the best weights, the stopping record and the history are checkpointed every
`distributed.checkpoint_every` epochs, after the last and at an early stop; a restarted or resumed
run continues after the last checkpoint with the same best epoch (and does nothing more once
stopped).

`loop_config`: `config` (the FinetuneConfig as JSON data), `plan` (the plan directory) and,
optionally, `epoch_hooks`: callables every rank calls as `hook(epoch=, rank=, model=)` once an epoch is
checkpointed or reported (monitoring; the tests trace parameters and inject failures with them).
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from raypath.distributed.checkpoints import RayCheckpoints, load_checkpoint, report, save_checkpoint
from raypath.distributed.relay import send
from raypath.distributed.worker import data_parallel, prepare
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import FinetuneData, open_data, step_batches, step_inputs
from raypath.finetune.evaluate import restore, validate
from raypath.finetune.model import FinetuneModel, build_model, step
from raypath.logs import Ticker
from raypath.train.parallel import DataParallel
from raypath.train.stopping import EarlyStopping

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)
log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 30.0


@dataclass
class Progress:
    """Rank 0's record across epochs: history, early stopping, the best epoch's trained tensors."""

    stopper: EarlyStopping
    history: list[dict] = field(default_factory=list)
    best: dict[str, torch.Tensor] = field(default_factory=dict)
    next_epoch: int = 0

    def load(self, state: dict) -> None:
        """Continue from a checkpoint's record (the best tensors copied: a loaded state may share
        them with its `trained` entry, which the model takes over)."""
        self.history, self.best = list(state["history"]), {k: v.clone() for k, v in state["best"].items()}
        self.stopper.load_state_dict(state["stopper"])
        self.next_epoch = int(state["epoch"]) + 1


def trained_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Adapters and head, whole (FSDP shards gathered: every rank must call this), CPU copies."""
    return {name.removeprefix("module."): (p.full_tensor() if hasattr(p, "full_tensor") else p)
            .detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def _train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: FinetuneData, *,
                 encoder: torch.nn.Module, config: FinetuneConfig, epoch: int, parallel: DataParallel,
                 loop_config: dict | None = None) -> dict[str, float]:
    """One pass over this rank's shard; the group's mean losses and its tiles per second. Rank 0
    sends a progress line to the driver every `PROGRESS_EVERY_S` seconds."""
    model.train()
    groups = parallel.shard(data.prepared.train_groups, epoch=epoch)
    torch.manual_seed(parallel.epoch_seed(epoch))
    generator = torch.Generator().manual_seed(parallel.epoch_seed(epoch))
    device = next(encoder.parameters()).device
    sums: dict[str, float] = {}
    steps, tiles, started = 0, 0, time.perf_counter()
    ticker = Ticker(PROGRESS_EVERY_S)
    total = -(-len(groups) // config.specimens_per_step)
    for slides in step_batches(groups, specimens=config.specimens_per_step):
        pixels, batch = step_inputs(data, encoder, slides, tiles=config.tiles_per_scan,
                                    generator=generator, device=device)
        for name, value in step(model, optimizer, pixels, batch).items():
            sums[name] = sums.get(name, 0.0) + value
        steps, tiles = steps + 1, tiles + int(batch.mask.sum())
        if loop_config is not None and parallel.rank == 0 and ticker.due():
            send(loop_config, f"epoch {epoch + 1}/{config.epochs}: step {steps}/{total}, "
                              f"{tiles / (time.perf_counter() - started):.0f} tiles/s on rank 0")
    names = sorted(sums)
    means = parallel.average([torch.tensor([sums[n] / max(steps, 1) for n in names]
                                           + [tiles, time.perf_counter() - started])])[0]
    metrics = {f"train/{n}": float(v) for n, v in zip(names, means, strict=False)}
    # Throughput of the whole group: tiles (forward + backward through the FM) per second.
    metrics["train/tiles_per_s"] = float(means[-2] * parallel.world_size / means[-1])
    return metrics


def _validator(config: FinetuneConfig, data: FinetuneData, base: FinetuneModel, *, rank: int,
               on_gpu: bool) -> FinetuneModel | None:
    """Rank 0's model for validation: the replica itself under DDP, an unsharded copy under FSDP
    (which holds only shards); None on the other ranks."""
    if rank != 0:
        return None
    if config.distributed.strategy == "ddp":
        return base
    prepared = data.prepared
    return build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes),
                       on_gpu=on_gpu).to(next(base.encoder.parameters()).device)


def _validate_epoch(progress: Progress, validator: FinetuneModel | None, trained: dict[str, torch.Tensor],
                    *, data: FinetuneData, config: FinetuneConfig, epoch: int, parallel: DataParallel,
                    metrics: dict[str, float]) -> bool:
    """Rank 0 validates, records the epoch and keeps the best weights; every rank gets its verdict
    (whether to stop)."""
    if validator is not None:
        restore(config, data, trained, model=validator)
        metrics.update(validate(validator, data, config=config))
        progress.history.append({"epoch": epoch, **metrics})
        if progress.stopper.update(epoch, metrics):
            progress.best = trained
        log.info("epoch %d: %s", epoch, " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    return bool(parallel.broadcast(torch.tensor([int(progress.stopper.should_stop)])).item())


def train_loop(loop_config: dict) -> None:
    """Ray Train entry point (see the module docstring)."""
    config = FinetuneConfig.model_validate(loop_config["config"])
    data = open_data(config, Path(loop_config["plan"]))
    prepared = data.prepared
    on_gpu = config.distributed.use_gpu and torch.cuda.is_available()
    base = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes),
                       on_gpu=on_gpu)
    model = prepare(base, strategy=config.distributed.strategy)
    parallel = data_parallel(seed=config.seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.optimizer.lr,
                                  weight_decay=config.optimizer.weight_decay)
    progress = Progress(stopper=EarlyStopping(config=config.train_config()))
    state = load_checkpoint()
    if state is not None:
        # a copy: set_model_state_dict puts the model's own tensors into the dict it is given
        set_model_state_dict(model, dict(state["trained"]),
                             options=StateDictOptions(full_state_dict=True, strict=False))
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=FULL)
        progress.load(state)
    validator = _validator(config, data, base, rank=parallel.rank, on_gpu=on_gpu)
    checkpoints = RayCheckpoints(every=config.distributed.checkpoint_every, last_epoch=config.epochs - 1)
    for epoch in range(progress.next_epoch, config.epochs):
        if progress.stopper.should_stop:  # resumed after the run had stopped early
            break
        metrics = _train_epoch(model, optimizer, data, encoder=base.encoder, config=config, epoch=epoch,
                               parallel=parallel, loop_config=loop_config)
        trained = trained_tensors(model)
        stop = _validate_epoch(progress, validator, trained, data=data, config=config, epoch=epoch,
                               parallel=parallel, metrics=metrics)
        if parallel.rank == 0:
            send(loop_config, f"epoch {epoch + 1}/{config.epochs}: " + " ".join(
                f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
        if checkpoints.due(epoch) or stop:
            state = {"trained": trained, "epoch": epoch, "history": progress.history, "best": progress.best,
                     "optimizer": get_optimizer_state_dict(model, optimizer, options=FULL),
                     "stopper": progress.stopper.state_dict()}
            save_checkpoint(state, metrics=metrics, epoch=epoch)
        else:
            report(metrics, epoch=epoch)
        for hook in loop_config.get("epoch_hooks", ()):
            hook(epoch=epoch, rank=parallel.rank, model=base)
        if stop:
            break
    data.source.close()
