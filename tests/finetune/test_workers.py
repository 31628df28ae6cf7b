"""Finetuning on Ray Train workers (private local Ray, gloo): two workers keep identical adapters and
head, the FM's base weights never change, FSDP trains what DDP trains, and a worker that dies
resumes from the last checkpoint with its best epoch."""

import json
import sys
from pathlib import Path

import finetunekit
import pytest
import ray.cloudpickle
import torch
from finetunekit import finetune_config, frozen_state, trainable_state

from raypath.encoders.loading import state_dict_hash
from raypath.finetune.model import build_model
from raypath.finetune.run import absolute, prepare_run, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]  # Ray Train groups, validated every epoch
# The epoch hooks below travel to Ray Train's processes by value: those cannot import a test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
ray.cloudpickle.register_pickle_by_value(finetunekit)  # TraceHashes calls its helpers


class TraceHashes:
    """An epoch hook: each rank appends, per epoch, a hash of its trained and of its frozen parameters
    to `rank-<rank>.jsonl` under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __call__(self, *, epoch: int, rank: int, model: torch.nn.Module) -> None:
        line = {"epoch": epoch, "trained": state_dict_hash(trainable_state(model)),
                "frozen": state_dict_hash(frozen_state(model))}
        with (self.directory / f"rank-{rank}.jsonl").open("a") as handle:
            handle.write(json.dumps(line) + "\n")


class FailOnce:
    """An epoch hook: rank 1 raises once, after `epoch` was checkpointed (a marker file makes it once)."""

    def __init__(self, marker: Path, *, epoch: int) -> None:
        self.marker, self.epoch = marker, epoch

    def __call__(self, *, epoch: int, rank: int, model: torch.nn.Module) -> None:
        if epoch == self.epoch and rank == 1 and not self.marker.exists():
            self.marker.touch()
            raise RuntimeError("injected worker failure (test)")


def _trace(directory: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (directory / f"rank-{rank}.jsonl").read_text().splitlines()]


def _initial_frozen_hash(config, loop_config) -> str:
    from raypath.finetune.data import open_data

    prepared = open_data(config, Path(loop_config["plan"])).prepared
    model = build_model(config, n_outputs=prepared.n_outputs, n_scanners=len(prepared.scanner_codes))
    return state_dict_hash(frozen_state(model))


def test_two_workers_keep_identical_adapters_and_head(local_ray, ft_cohort, tmp_path):
    config = finetune_config(ft_cohort, tmp_path / "out", epochs=2, distributed={"workers": 2})
    loop_config = prepare_run(config)
    (trace := tmp_path / "trace").mkdir()
    result = train(config, {**loop_config, "epoch_hooks": [TraceHashes(trace)]})
    zero, one = _trace(trace, 0), _trace(trace, 1)
    assert [r["epoch"] for r in zero] == [0, 1] and zero == one, "ranks identical after every epoch"
    assert zero[0]["trained"] != zero[1]["trained"], "it trained"
    frozen = _initial_frozen_hash(absolute(config), loop_config)
    assert {r["frozen"] for r in zero + one} == {frozen}, "base FM weights bit-identical on every rank"
    assert result.checkpoint is not None and result.metrics["epoch"] == 1
    assert torch.isfinite(torch.tensor(result.metrics["train/loss"]))

    # FSDP (sharded parameters, gathered for the checkpoint) trains the same model as DDP, bit for
    # bit on any machine: each rank computes the same per-rank gradients either way, and the mean of
    # two gradients is (a + b) / 2 in whatever order the collective adds them (measured: 0.0 apart).
    fsdp = finetune_config(ft_cohort, tmp_path / "out", epochs=2, name="fsdp",
                           distributed={"workers": 2, "strategy": "fsdp"})
    sharded = train(fsdp, prepare_run(fsdp))
    ddp_state, fsdp_state = _trained(result), _trained(sharded)
    assert ddp_state.keys() == fsdp_state.keys() and any("lora_" in k for k in fsdp_state)
    for name, tensor in ddp_state.items():
        torch.testing.assert_close(fsdp_state[name], tensor, rtol=0, atol=0)


def _trained(result) -> dict[str, torch.Tensor]:
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / "state.pt", weights_only=True)
    return {k.removeprefix("module."): v for k, v in state["trained"].items()}


def test_a_killed_worker_resumes_from_the_checkpoint(local_ray, ft_cohort, tmp_path):
    # No later epoch beats the first by min_delta: epoch 0 stays the best across the restart.
    config = finetune_config(ft_cohort, tmp_path / "out", epochs=3,
                             distributed={"workers": 2, "max_failures": 1},
                             early_stopping={"metric": "loss", "patience": 5, "min_delta": 1e6})
    loop_config = prepare_run(config)
    (trace := tmp_path / "trace").mkdir()
    hooks = [TraceHashes(trace), FailOnce(trace / "failed-once", epoch=0)]  # dies before epoch 1
    result = train(config, {**loop_config, "epoch_hooks": hooks})
    assert (trace / "failed-once").exists(), "the failure was injected"
    zero, one = _trace(trace, 0), _trace(trace, 1)
    assert [r["epoch"] for r in zero] == [0, 1, 2], "epoch 0 was not trained again after the restart"
    assert zero == one
    assert result.metrics["epoch"] == 2
    with result.checkpoint.as_directory() as directory:
        state = torch.load(Path(directory) / "state.pt", weights_only=True)
    assert [row["epoch"] for row in state["history"]] == [0, 1, 2]
    assert all("val/loss" in row for row in state["history"]), "validated every epoch"
    # the restarted group continued from epoch 0's checkpoint, which carried the best weights
    assert state["stopper"]["best_epoch"] == 0 and state_dict_hash(state["best"]) == zero[0]["trained"]
