"""The data-parallel harness on a private Ray: two gloo workers stay identical, a failed worker
resumes from the checkpoint, and a second `fit` of the same name continues the epoch count."""

import json
import sys
from pathlib import Path

import pytest
import ray.cloudpickle
import torch
from torch import nn

from raypath.distributed.checkpoints import load_checkpoint, save_checkpoint
from raypath.distributed.config import DistributedConfig
from raypath.distributed.trainer import fit
from raypath.distributed.worker import data_parallel, prepare

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # Ray Train worker groups


def toy_loop(config: dict) -> None:
    """A linear model on a fixed regression set: each rank steps on its shard, records a checksum of
    its parameters per epoch, checkpoints every epoch and (optionally) fails once in rank 1."""
    out = Path(config["out"])
    torch.manual_seed(0)
    model = prepare(nn.Linear(4, 1), strategy=config.get("strategy", "ddp"))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state, start = load_checkpoint(), 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["epoch"] + 1
    parallel = data_parallel(seed=0)
    rank = parallel.rank
    (out / f"start-{rank}-{start}").touch()
    x = torch.linspace(-1, 1, 32 * 4).reshape(32, 4)
    y = x.sum(dim=1, keepdim=True)
    for epoch in range(start, config["epochs"]):
        marker = out / "failed-once"
        if epoch == config.get("fail_at_epoch") and rank == 1 and not marker.exists():
            marker.touch()
            raise RuntimeError("injected failure")
        for index in parallel.shard(list(range(32)), epoch=epoch):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[index:index + 1]), y[index:index + 1]).backward()
            optimizer.step()
        # FSDP holds shards: gather each parameter whole
        full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
        checksum = float(sum(p.detach().double().sum() for p in full))
        with (out / f"checksums-{rank}.jsonl").open("a") as handle:
            handle.write(json.dumps({"epoch": epoch, "checksum": checksum}) + "\n")
        loss = parallel.average([nn.functional.mse_loss(model(x), y).detach()])[0]
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                "epoch": epoch}, metrics={"loss": float(loss)}, epoch=epoch)


def _checksums(out: Path, rank: int) -> dict[int, float]:
    lines = (out / f"checksums-{rank}.jsonl").read_text().splitlines()
    return {row["epoch"]: row["checksum"] for row in map(json.loads, lines)}


def test_fit_without_ray_is_a_clear_error(tmp_path):
    if ray.is_initialized():
        pytest.skip("Ray already initialised in this session")
    with pytest.raises(RuntimeError, match="connect"):
        fit(loop=toy_loop, loop_config={}, settings=DistributedConfig(), storage=tmp_path, name="x")


def test_a_failed_worker_restarts_from_the_checkpoint(local_ray, tmp_path):
    result = fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 4, "fail_at_epoch": 2},
                 settings=DistributedConfig(workers=2, max_failures=1), storage=tmp_path / "runs",
                 name="fail")
    assert (tmp_path / "failed-once").exists()
    # the first attempt started at 0; the restarted group resumed after epoch 1's checkpoint
    assert {p.name for p in tmp_path.glob("start-*")} == {"start-0-0", "start-1-0", "start-0-2", "start-1-2"}
    assert result.metrics["epoch"] == 3 and result.error is None
    assert _checksums(tmp_path, 0)[3] == _checksums(tmp_path, 1)[3]


def test_two_workers_keep_identical_parameters_and_a_second_fit_of_the_same_name_continues(local_ray,
                                                                                           tmp_path):
    settings, runs = DistributedConfig(workers=2), tmp_path / "runs"
    fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 2}, settings=settings, storage=runs,
        name="again")
    result = fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 4}, settings=settings,
                 storage=runs, name="again")
    assert {p.name for p in tmp_path.glob("start-0-*")} == {"start-0-0", "start-0-2"}
    zero, one = _checksums(tmp_path, 0), _checksums(tmp_path, 1)
    assert sorted(zero) == [0, 1, 2, 3] and result.metrics["epoch"] == 3 and result.checkpoint is not None
    assert zero == one  # both ranks hold the same parameters after every epoch
    assert zero[0] != zero[3]  # it did train


def test_resume_false_starts_over(local_ray, tmp_path):
    settings, runs = DistributedConfig(workers=1), tmp_path / "runs"
    fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 1}, settings=settings, storage=runs,
        name="over")
    fresh = fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 1}, settings=settings,
                storage=runs, name="over", resume=False)
    assert [p.name for p in tmp_path.glob("start-*")] == ["start-0-0"]
    assert _checksums(tmp_path, 0) and fresh.metrics["epoch"] == 0
    assert len((tmp_path / "checksums-0.jsonl").read_text().splitlines()) == 2  # epoch 0 twice


def test_fsdp_constructs_and_steps_on_cpu_gloo(local_ray, tmp_path):
    fit(loop=toy_loop, loop_config={"out": str(tmp_path), "epochs": 2, "strategy": "fsdp"},
        settings=DistributedConfig(workers=2, strategy="fsdp"), storage=tmp_path / "runs", name="fsdp")
    zero, one = _checksums(tmp_path, 0), _checksums(tmp_path, 1)
    assert sorted(zero) == [0, 1] and zero[0] != zero[1]
    assert zero == one  # the gathered parameters agree on both ranks
