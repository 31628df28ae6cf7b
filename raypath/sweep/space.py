"""The search space: dotted `TrainConfig` paths mapped to Optuna distributions, and the baseline point.

Parameters split in two kinds. *Per-member* ones (learning rate, weight decay, loss weights, τ)
enter the fused step as tensors, so configurations differing only in them train together. Every
other searched parameter (hidden size, dropout, ...) changes shapes or module constants and is a
*pack key*: all members of a pack share it.
"""

from collections.abc import Mapping
from typing import Any, Literal

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import model_validator

from raypath.config import ConfigError, StrictModel
from raypath.mil.registry import LOSSES
from raypath.train.config import PER_MEMBER_FIELDS, TrainConfig

ROBUST_KEYS = tuple(f"losses.{name}" for name in LOSSES)
PER_MEMBER_KEYS = frozenset(
    f"{section}.{name}" for section, names in PER_MEMBER_FIELDS.items() for name in names
)


class ParamSpec(StrictModel):
    """One searched parameter; `path` in the enclosing dict is a dotted TrainConfig field."""

    type: Literal["uniform", "loguniform", "int", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> "ParamSpec":
        if self.type == "choice":
            if not self.values:
                raise ValueError("a 'choice' parameter needs a non-empty 'values' list")
        elif self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(f"a '{self.type}' parameter needs low < high (got {self.low}, {self.high})")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError("a 'loguniform' parameter needs low > 0")
        return self


def distribution(spec: ParamSpec) -> BaseDistribution:
    """The Optuna distribution of one parameter spec."""
    if spec.type == "choice":
        return CategoricalDistribution(spec.values)
    if spec.type == "int":
        return IntDistribution(int(spec.low), int(spec.high))
    return FloatDistribution(spec.low, spec.high, log=spec.type == "loguniform")


def to_optuna(space: Mapping[str, ParamSpec]) -> dict[str, BaseDistribution]:
    return {path: distribution(spec) for path, spec in sorted(space.items())}


def apply_params(train: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """`train` with the searched values written into their dotted fields (validated again)."""
    data = train.model_dump()
    for path, value in params.items():
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return TrainConfig.model_validate(data)


def _current(train: TrainConfig, path: str) -> Any:
    node: Any = train
    for part in path.split("."):
        if not hasattr(node, part):
            raise ConfigError(f"space key '{path}': '{part}' is not a field of the train config")
        node = getattr(node, part)
    return node


def baseline_params(space: Mapping[str, ParamSpec], train: TrainConfig) -> dict[str, Any]:
    """The control every sweep contains: robustness weights 0, everything else as in `train`."""
    return {path: 0.0 if path in ROBUST_KEYS else _current(train, path) for path in space}


def pack_keys(space: Mapping[str, ParamSpec]) -> list[str]:
    return sorted(path for path in space if path not in PER_MEMBER_KEYS)


def check_space(space: Mapping[str, ParamSpec], train: TrainConfig) -> None:
    """Every key names a train field, and the baseline is a point of the space (0 in weight ranges).

    Robustness weights that are not searched must be 0 in `train`: otherwise no point of the space
    is the all-zero baseline every comparison needs.
    """
    fixed = [k for k in ROBUST_KEYS if k not in space and _current(train, k)]
    if fixed:
        raise ConfigError(
            f"train.{fixed[0]} is fixed non-zero; search it (uniform from 0) or set it to 0 "
            "so the sweep contains the all-zero baseline"
        )
    distributions = to_optuna(space)
    for path, value in baseline_params(space, train).items():
        if not _contains(distributions[path], value):
            hint = " (search loss weights with a uniform range from 0)" if path in ROBUST_KEYS else ""
            raise ConfigError(f"space key '{path}': the baseline value {value!r} is outside the range{hint}")
    try:
        apply_params(train, {path: _low(spec) for path, spec in space.items()})
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"space does not fit the train config: {exc}") from None


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except ValueError:  # e.g. 0 under a log distribution
        return False


def _low(spec: ParamSpec) -> Any:
    return spec.values[0] if spec.type == "choice" else (int(spec.low) if spec.type == "int" else spec.low)


def make_sampler(kind: str, *, seed: int, n_objectives: int) -> optuna.samplers.BaseSampler:
    """TPE (multivariate, constant liar for parallel asks), NSGA-II for many objectives, or random."""
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=n_objectives == 1)
