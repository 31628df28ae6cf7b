"""The Ray Train worker loop: every worker builds the same model, takes its shard of the training
specimens each epoch, steps with DDP (or FSDP) averaging gradients, and checkpoints adapters, head
and optimizer state every `distributed.checkpoint_every` epochs (and after the last); a restarted
or resumed run continues after the last checkpoint.

`loop_config`: `config` (the FinetuneConfig as JSON data) and `plan` (the plan directory). Two keys
exist for tests only: `trace` (a directory where each rank appends, per epoch, a hash of its
trainable and of its frozen parameters) and `fail_at_epoch` (rank 1 raises once at that epoch).
"""

import json
import time
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from raypath.distributed import worker
from raypath.encoders.loading import state_dict_hash
from raypath.finetune.config import FinetuneConfig
from raypath.finetune.data import open_data, step_batches, step_inputs
from raypath.finetune.model import build_model, frozen_state, step, trainable_state

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def _trained_only(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Adapters and head from the (possibly sharded) model, gathered on every rank."""
    trains = {n.removeprefix("module.") for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in get_model_state_dict(model, options=FULL).items() if k in trains}


def _trace(directory: str | None, model: torch.nn.Module, *, epoch: int) -> None:
    if directory is None:
        return
    line = {"epoch": epoch, "trained": state_dict_hash(trainable_state(model)),
            "frozen": state_dict_hash(frozen_state(model))}
    with (Path(directory) / f"rank-{worker.rank()}.jsonl").open("a") as handle:
        handle.write(json.dumps(line) + "\n")


def train_loop(loop_config: dict) -> None:
    """Ray Train entry point (see the module docstring)."""
    config = FinetuneConfig.model_validate(loop_config["config"])
    data = open_data(config, Path(loop_config["plan"]))
    prepared = data.prepared
    on_gpu = config.distributed.use_gpu and torch.cuda.is_available()
    base = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes),
                       on_gpu=on_gpu)
    encoder = base.encoder
    model = worker.prepare(base, strategy=config.distributed.strategy)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.optimizer.lr, weight_decay=config.optimizer.weight_decay)
    state, start, history = worker.load_checkpoint(), 0, []
    if state is not None:
        set_model_state_dict(model, state["trained"],
                             options=StateDictOptions(full_state_dict=True, strict=False))
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=FULL)
        start, history = int(state["epoch"]) + 1, list(state["history"])
    device = next(base.encoder.parameters()).device
    for epoch in range(start, config.epochs):
        if epoch == loop_config.get("fail_at_epoch") and worker.rank() == 1:
            marker = Path(loop_config["trace"]) / "failed-once"
            if not marker.exists():
                marker.touch()
                raise RuntimeError("injected worker failure (test)")
        model.train()
        groups = worker.shard(prepared.train_groups, seed=config.seed, epoch=epoch)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch * 1_009 + worker.rank())
        sums: dict[str, float] = {}
        steps, tiles, started = 0, 0, time.perf_counter()
        for slides in step_batches(groups, specimens=config.specimens_per_step):
            pixels, batch = step_inputs(data, encoder, slides, tiles=config.tiles_per_scan,
                                        generator=generator, device=device)
            for name, value in step(model, optimizer, pixels, batch).items():
                sums[name] = sums.get(name, 0.0) + value
            steps, tiles = steps + 1, tiles + int(batch.mask.sum())
        names = sorted(sums)
        means = worker.all_reduce_mean(torch.tensor([sums[n] / max(steps, 1) for n in names]
                                                    + [tiles, time.perf_counter() - started]))
        metrics = {f"train/{n}": float(v) for n, v in zip(names, means, strict=False)}
        # Throughput of the whole group: tiles (forward + backward through the FM) per second.
        metrics["train/tiles_per_s"] = float(means[-2] * worker.world_size() / means[-1])
        history.append({"epoch": epoch, **metrics})
        _trace(loop_config.get("trace"), base, epoch=epoch)
        if (epoch + 1) % config.distributed.checkpoint_every and epoch + 1 < config.epochs:
            worker.report(metrics, epoch=epoch)
            continue
        state = {"trained": _trained_only(model),
                 "optimizer": get_optimizer_state_dict(model, optimizer, options=FULL),
                 "epoch": epoch, "history": history}
        worker.save_checkpoint(state, metrics=metrics, epoch=epoch)
    data.source.close()
