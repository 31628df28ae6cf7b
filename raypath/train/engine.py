"""The one training engine: a pack of G configurations, stacked parameters, one vmapped step.

A single model is a pack of one (`train_one`); `raypath train`, every sweep trial and the
benchmarks run this code. Why packs: a reference-cohort model trains in seconds, so per-trial costs
(Tune scheduling, data hand-off, Python step overhead) would dominate a sweep of thousands. Members
share the seed (same split, same initial backbone, same batches: paired comparisons) and every
*pack key* (shapes, dropout, epochs, ...); they differ in learning rate, weight decay, loss weights
and τ, which enter the step as (G,) tensors. Each member is trained, early-stopped, restored to
its best epoch and evaluated exactly as it would be alone (tested against a plain single-model
loop in the tests), but the G forward/backward passes run as batched matmuls. It computes in
torch's default floating dtype: float32, or float64 where a test compares two computations that
sum in different orders (one process against data-parallel workers) and float32 rounding, which
Adam can amplify, would hide what it checks.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from raypath.mil.bags import BagSet
from raypath.mil.sampling import specimen_batches
from raypath.train.config import PER_MEMBER_FIELDS, TrainConfig
from raypath.train.evaluation import FINAL_SPLITS, final_evaluation, validation_summary
from raypath.train.fused_model import FusedObjective
from raypath.train.parallel import DataParallel
from raypath.train.resume import Checkpoints, Progress, restore, snapshot
from raypath.train.setup import Prepared, build_model, prepare
from raypath.train.stacked import StackedAdamW, member_state
from raypath.train.stopping import EarlyStopping

log = logging.getLogger(__name__)

@dataclass
class TrainResult:
    """Final metrics (``<split>/<name>``), per-slide predictions, best weights and history."""

    metrics: dict[str, float]
    predictions: pd.DataFrame
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    risk_cut: float | None = None  # survival: the training median risk that splits high from low
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why it is NaN
    caveats: dict[str, str] = field(default_factory=dict)  # metric -> what its value stands on
    in_dim: int = 0
    n_outputs: int = 1


PackCallback = Callable[[int, dict[str, dict[str, float]]], None]


@dataclass(frozen=True)
class PackMember:
    """One configuration of a pack, identified by its trial key."""

    key: str
    config: TrainConfig


def shared_part(config: TrainConfig) -> dict:
    """The config without its per-member fields: must be identical across a pack."""
    return config.model_dump(exclude={section: set(names) for section, names in PER_MEMBER_FIELDS.items()})


def union_config(members: Sequence[PackMember]) -> TrainConfig:
    """First member's config with every loss active in any member switched on (same heads for all)."""
    first = members[0].config
    weights = {name: max(m.config.losses.weights()[name] for m in members) for name in first.losses.weights()}
    return first.model_copy(update={"losses": first.losses.model_copy(update=weights)})


def _check_pack(members: Sequence[PackMember]) -> None:
    if not members:
        raise ValueError("a pack needs at least one member")
    reference = shared_part(members[0].config)
    for member in members[1:]:
        if shared_part(member.config) != reference:
            raise ValueError(
                f"pack member {member.key} differs from {members[0].key} in a pack key "
                "(shape, dropout, epochs, ...); group configurations by pack keys first"
            )


def _build_models(
    union: TrainConfig, prepared: Prepared, *, seed: int, members: Sequence[PackMember]
) -> list[torch.nn.Module]:
    """One model per member with the union's heads, initialised as it would be alone.

    Heads are created in a fixed order, so a member's own heads would get other random values in
    the union model; its alone-built weights are copied in (heads it lacks stay unused: weight 0).
    """
    models = []
    for member in members:
        torch.manual_seed(seed)
        model = build_model(union, prepared)
        torch.manual_seed(seed)
        model.load_state_dict(build_model(member.config, prepared).state_dict(), strict=False)
        models.append(model)
    return models


def _train_epoch(
    fused: FusedObjective,
    optimizer: StackedAdamW,
    prepared: Prepared,
    *,
    config: TrainConfig,
    generator: torch.Generator,
    active: torch.Tensor,
    tiles: torch.Generator,
    parallel: DataParallel | None,
) -> list[dict[str, float]]:
    """One pass over the training specimens for the members still training (the batches a member
    would draw alone); members that stopped get empty metrics.

    Data-parallel: every rank draws the same batch list from `generator`, steps on its share with
    gradients averaged over ranks, and samples tiles from its own `tiles` generator.
    """
    fused.train()
    batches = specimen_batches(
        prepared.train_groups, batch_specimens=config.batch_specimens, generator=generator
    )
    if parallel is not None:
        batches = parallel.take(batches)
    sums: dict[str, torch.Tensor] = {}
    names = list(fused.params)
    members = active.nonzero().flatten()  # stopped members are left out of the step (zero gradients)
    for slides in batches:
        batch = prepared.collator(slides, max_tiles=config.max_tiles, generator=tiles)
        total, losses = fused.loss(batch, members=members)
        grads = torch.autograd.grad(total.sum(), list(fused.params.values()), allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g
                 for p, g in zip(fused.params.values(), grads, strict=True)]
        if parallel is not None:
            grads = parallel.average(grads)
        optimizer.step(dict(zip(names, grads, strict=True)), active=active)
        for name, value in {"loss": total, **losses}.items():
            sums[name] = sums.get(name, 0.0) + value.detach()
    if parallel is not None and sums:
        sums = dict(zip(sums, parallel.average(list(sums.values())), strict=True))
    n = max(len(batches), 1)
    rows = {g: row for row, g in enumerate(members.tolist())}
    return [{f"train/{k}": float(v[rows[g]]) / n for k, v in sums.items()} if g in rows else {}
            for g in range(len(active))]


def train_pack(
    *,
    members: Sequence[PackMember],
    data: BagSet,
    seed: int,
    on_epoch: PackCallback | None = None,
    device: torch.device | str = "cpu",
    parallel: DataParallel | None = None,
    checkpoints: Checkpoints | None = None,
    final_splits: Sequence[str] = FINAL_SPLITS,
) -> dict[str, TrainResult]:
    """Train every member; `on_epoch(epoch, {key: metrics})` sees the members still training.

    Batches are drawn on the CPU (the same generator for every member) and moved to `device` for the step;
    the final evaluation runs on the CPU with the best weights. With `checkpoints`, the run starts from
    the latest saved state and saves its state after every epoch. With `parallel` (one replica of a
    data-parallel group), rank 0 validates, decides which members go on and returns the results;
    the other ranks only train and return an empty dict. The final metrics cover `final_splits`.
    """
    _check_pack(members)
    config, union = members[0].config, union_config(members)
    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(seed)
    prepared = prepare(union, data)
    models = _build_models(union, prepared, seed=seed, members=members)
    fused = FusedObjective(models, configs=[m.config for m in members], device=device)
    optimizer = StackedAdamW(fused.params, lr=fused.hyper["lr"], weight_decay=fused.hyper["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    progress = Progress(stoppers=[EarlyStopping(config=m.config) for m in members],
                        best=[member_state(fused.params, fused.buffers, g) for g in range(len(members))],
                        history=[[] for _ in members],
                        active=torch.ones(len(members), dtype=torch.bool, device=fused.device))
    state = checkpoints.load() if checkpoints is not None else None
    if state is not None:
        restore(state, progress, params=fused.params, optimizer=optimizer, generator=generator)
        log.info("continuing after epoch %d", progress.next_epoch - 1)
    lead = parallel is None or parallel.rank == 0
    for epoch in range(progress.next_epoch, config.epochs):
        if not bool(progress.active.any()):  # every member stopped (also: resumed after the last one did)
            break
        tiles = generator
        if parallel is not None:
            torch.manual_seed(parallel.epoch_seed(epoch))
            tiles = torch.Generator().manual_seed(parallel.epoch_seed(epoch))
        train_metrics = _train_epoch(fused, optimizer, prepared, config=config, generator=generator,
                                     active=progress.active, tiles=tiles, parallel=parallel)
        reported = _track(members, progress, epoch=epoch, fused=fused,
                          metrics=train_metrics, prepared=prepared) if lead else {}
        if parallel is not None:
            progress.active = parallel.broadcast(progress.active.to(torch.uint8)).bool()
        progress.next_epoch = epoch + 1
        if on_epoch is not None:
            on_epoch(epoch, reported)
        if checkpoints is not None:
            state = snapshot(progress, params=fused.params, optimizer=optimizer, generator=generator)
            checkpoints.save(state, metrics=reported, epoch=epoch)
    if not lead:
        return {}
    return {
        m.key: _finish(
            models[g],
            progress.best[g],
            prepared,
            config=m.config,
            seed=seed,
            history=progress.history[g],
            best_epoch=progress.stoppers[g].best_epoch,
            splits=final_splits,
        )
        for g, m in enumerate(members)
    }


def _track(members: Sequence[PackMember], progress: Progress, *, epoch: int, fused: FusedObjective,
           metrics: list[dict[str, float]], prepared: Prepared) -> dict[str, dict[str, float]]:
    """Validate, record the epoch of every member still training, keep best weights, stop members."""
    val_metrics = validation_summary(fused, prepared, config=members[0].config, active=progress.active)
    reported = {}
    for g, member in enumerate(members):
        if not progress.active[g]:
            continue
        merged = {**metrics[g], **val_metrics[g]}
        progress.history[g].append({"epoch": epoch, **merged})
        reported[member.key] = merged
        stopper = progress.stoppers[g]
        if stopper.update(epoch, merged):
            progress.best[g] = member_state(fused.params, fused.buffers, g)
        progress.active[g] = not stopper.should_stop
    return reported


def _finish(
    model: torch.nn.Module,
    state: dict,
    prepared: Prepared,
    *,
    config: TrainConfig,
    seed: int,
    history: list[dict[str, float]],
    best_epoch: int,
    splits: Sequence[str],
) -> TrainResult:
    """Best-epoch weights into a plain model, then the final evaluation of `splits`."""
    model.load_state_dict(state)
    evaluation = final_evaluation(model, prepared, config=config, seed=seed, splits=splits)
    return TrainResult(metrics={**evaluation.metrics, "best_epoch": float(best_epoch)},
                       undefined=evaluation.undefined, caveats=evaluation.caveats,
                       predictions=evaluation.table, state_dict=state, history=history, best_epoch=best_epoch,
                       risk_cut=evaluation.risk_cut, in_dim=prepared.bagset.dim, n_outputs=prepared.n_outputs)


def train_one(*, config: TrainConfig, data: BagSet, seed: int,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None,
              device: torch.device | str = "cpu") -> TrainResult:
    """Train one model: a pack of one. `on_epoch(epoch, metrics)` sees every epoch's metrics."""
    callback = None if on_epoch is None else (lambda epoch, reported: on_epoch(epoch, reported["model"]))
    return train_pack(members=[PackMember(key="model", config=config)], data=data, seed=seed,
                      on_epoch=callback, device=device)["model"]
