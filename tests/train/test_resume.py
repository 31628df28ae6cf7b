"""A run that stops after any epoch and starts again from its checkpoint ends exactly where an
uninterrupted run ends: parameters, optimizer moments, early stopping, best weights, history and
the batch generator all come back (through torch.save / torch.load(weights_only=True))."""

import io

import numpy as np
import pytest
import torch

from raypath.train.config import TrainConfig
from raypath.train.engine import PackMember, train_pack

ROBUST = {"infonce": 0.5, "score_consistency": 1.0, "adversarial": 0.1}


class StoppedError(Exception):
    pass


class MemoryCheckpoints:
    """Keeps the latest state as bytes, as a checkpoint file would; optionally 'dies' after an epoch."""

    def __init__(self, *, stop_after: int | None = None) -> None:
        self.saved: bytes | None = None
        self.stop_after = stop_after
        self.epochs: list[int] = []

    def load(self) -> dict | None:
        return None if self.saved is None else torch.load(io.BytesIO(self.saved), weights_only=True)

    def save(self, state: dict, *, metrics: dict, epoch: int) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.saved = buffer.getvalue()
        self.epochs.append(epoch)
        if epoch == self.stop_after:
            raise StoppedError


@pytest.fixture(scope="module")
def cohort(simulated_bags):
    return simulated_bags(n_specimens=36, tiles=12, dim=16, label_strength=3.0, seed=2)


def _members() -> list[PackMember]:
    config = TrainConfig.model_validate({
        "epochs": 5, "batch_specimens": 6, "robustness_k": 3, "max_tiles": 8, "split": {"source": "column"},
        "model": {"hidden": 16, "attention_dim": 8, "projection_dim": 8, "dropout": 0.1},
        "early_stopping": {"patience": 3}, "losses": ROBUST})
    faster = config.optimizer.model_copy(update={"lr": 3e-3})
    return [PackMember(key="a", config=config),
            PackMember(key="b", config=config.model_copy(update={"optimizer": faster}))]


@pytest.mark.parametrize("stop_after", [0, 2])
def test_a_resumed_run_ends_like_an_uninterrupted_one(cohort, stop_after):
    whole = train_pack(members=_members(), data=cohort, seed=4, checkpoints=MemoryCheckpoints())
    assert max(len(r.history) for r in whole.values()) > stop_after + 1  # something left to resume
    checkpoints = MemoryCheckpoints(stop_after=stop_after)
    with pytest.raises(StoppedError):
        train_pack(members=_members(), data=cohort, seed=4, checkpoints=checkpoints)
    checkpoints.stop_after = None
    seen: list[int] = []
    resumed = train_pack(members=_members(), data=cohort, seed=4, checkpoints=checkpoints,
                         on_epoch=lambda epoch, reported: seen.append(epoch))
    assert seen[0] == stop_after + 1  # it continued, it did not start over
    for key in ("a", "b"):
        assert resumed[key].history == whole[key].history
        assert resumed[key].best_epoch == whole[key].best_epoch
        for name, value in whole[key].state_dict.items():
            torch.testing.assert_close(resumed[key].state_dict[name], value, rtol=0, atol=0)
        np.testing.assert_array_equal(resumed[key].predictions["score"], whole[key].predictions["score"])
