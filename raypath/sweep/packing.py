"""A Tune searcher that asks Optuna for several configurations and packs them into one Tune trial.

Tune's per-trial cost (actor start, scheduling, result plumbing) is fixed, so short trials are
dominated by it. Packing G configurations into one trial and training them together
(`raypath.train.engine`) divides that cost by G while Optuna still sees one study trial per
configuration. Members of a pack must share every *pack key* (parameters that change tensor
shapes or module constants, e.g. hidden size and dropout); Optuna samples the first member freely
and the others with the pack keys fixed through partial `enqueue_trial`.

The searcher's whole state (the Optuna study included) pickles into the Tune experiment directory,
so `Tuner.restore` continues the same study and the same member count.
"""

import logging
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from ray.tune.search import Searcher

from raypath.sweep.tracking import config_key, trial_key

log = logging.getLogger(__name__)

PACK_METRIC = "objective"


def make_member(
    *,
    params: Mapping[str, Any],
    seed: int,
    index: int,
    phase: str,
    sweep_id: str,
    fm: str,
    robust_keys: Sequence[str],
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A pack member as trials, the callback and MLflow see it: params, seed, keys, baseline flag.

    `overrides` change the member's training without changing which configuration it is (e.g. the
    test fold of a cross-validation replicate): they enter its trial key, not its config key.
    """
    params, overrides = dict(params), dict(overrides or {})
    return {
        "index": index,
        "params": params,
        "overrides": overrides,
        "seed": seed,
        "key": trial_key(sweep_id=sweep_id, fm=fm, params={**params, **overrides}, seed=seed, phase=phase,
                         index=index),
        "config_key": config_key(sweep_id=sweep_id, fm=fm, params=params),
        "baseline": all(float(params[k]) == 0.0 for k in robust_keys if k in params),
    }


def member_settings(member: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a member sets in the train config: its searched params and its overrides."""
    return {**member["params"], **member.get("overrides", {})}


def pack_plan(*, num_configs: int, pack_size: int, n_baseline: int) -> list[tuple[bool, int]]:
    """(tuned-control pack?, size) of every pack, in order: control packs are interleaved so that the
    control keeps its share all along the search (ASHA and TPE see both arms from the start)."""
    plan, issued, baseline = [], 0, 0
    while issued < num_configs:
        arm = baseline < n_baseline and baseline * num_configs <= issued * n_baseline
        room = n_baseline - baseline if arm else num_configs - n_baseline - (issued - baseline)
        size = min(pack_size, room, num_configs - issued)
        plan.append((arm, size))
        issued, baseline = issued + size, baseline + size * arm
    return plan


class PackedOptunaSearcher(Searcher):
    """Suggest packs of up to `pack_size` configurations until `num_configs` have been issued."""

    def __init__(
        self,
        *,
        space: Mapping[str, optuna.distributions.BaseDistribution],
        metrics: Sequence[str],
        modes: Sequence[str],
        sampler: optuna.samplers.BaseSampler,
        num_configs: int,
        pack_size: int,
        pack_keys: Sequence[str],
        baseline: Mapping[str, Any],
        sweep_id: str,
        fm: str,
        seed: int,
        robust_keys: Sequence[str],
        baseline_share: float = 0.0,
        baseline_sampler: optuna.samplers.BaseSampler | None = None,
    ) -> None:
        # Tune checks results for the searcher's metric: the pack-level "objective" (raypath.train.engine).
        super().__init__(metric=PACK_METRIC, mode=modes[0])
        self.space = dict(space)
        self.metrics, self.modes = list(metrics), list(modes)
        self.num_configs, self.pack_size = num_configs, pack_size
        self.pack_keys = [k for k in pack_keys if k in self.space]
        self.robust_keys = list(robust_keys)
        self.sweep_id, self.fm, self.seed = sweep_id, fm, seed
        directions = ["maximize" if m == "max" else "minimize" for m in modes]
        self.baseline = {k: v for k, v in baseline.items() if k in self.space}
        # The tuned control: robustness losses off, the shared hyperparameters searched like the
        # robust arm's, so a robust model's gain cannot come from tuning alone.
        self.baseline_space = {k: d for k, d in self.space.items() if not k.startswith("losses.")}
        self.n_baseline = round(baseline_share * num_configs) if self.baseline_space and baseline_share else 0
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.baseline_study = optuna.create_study(directions=directions, sampler=baseline_sampler or sampler)
        # The untuned control (losses off, everything else at the train config's values) comes first.
        first_study, first_space = ((self.baseline_study, self.baseline_space) if self.n_baseline
                                    else (self.study, self.space))
        first_study.enqueue_trial({k: v for k, v in self.baseline.items() if k in first_space})
        self.issued, self.issued_baseline, self.packs_issued = 0, 0, 0
        self.plan = pack_plan(num_configs=num_configs, pack_size=pack_size, n_baseline=self.n_baseline)
        self.pending: dict[str, list[tuple[str, optuna.trial.Trial, optuna.Study]]] = {}

    def _member(self, ot_trial: optuna.trial.Trial) -> dict[str, Any]:
        # One seed for the whole search: same split, init and batches, so configs compare paired.
        member = make_member(
            params={k: ot_trial.params.get(k, self.baseline.get(k)) for k in sorted(self.space)},
            seed=self.seed,
            index=self.issued,
            phase="search",
            sweep_id=self.sweep_id,
            fm=self.fm,
            robust_keys=self.robust_keys,
        )
        return {**member, "number": ot_trial.number}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """One pack; FINISHED once `num_configs` members have been handed out."""
        if self.issued >= self.num_configs:
            return Searcher.FINISHED
        baseline_arm, size = self.plan[self.packs_issued]
        self.packs_issued += 1
        study = self.baseline_study if baseline_arm else self.study
        space = self.baseline_space if baseline_arm else self.space
        members, asked = [], []
        for position in range(size):
            if position:
                study.enqueue_trial({k: members[0]["params"][k] for k in self.pack_keys if k in space})
            ot_trial = study.ask(space)
            member = self._member(ot_trial)
            members.append(member)
            asked.append((member["key"], ot_trial, study))
            self.issued += 1
            self.issued_baseline += int(baseline_arm)
        self.pending[trial_id] = asked
        return {"phase": "search", "pack": members}

    @property
    def packs(self) -> int:
        """How many packs (Tune trials) the whole search takes."""
        return len(self.plan)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell Optuna each member's last reported objectives (early-stopped members included)."""
        asked = self.pending.pop(trial_id, None)
        if asked is None:
            log.warning("result for pack %s that this searcher did not issue (restored driver)", trial_id)
            return
        reported = {m["key"]: m["metrics"] for m in (result or {}).get("members", [])}
        for key, ot_trial, study in asked:
            metrics = reported.get(key, {})
            values = [metrics.get(name) for name in self.metrics]
            if error or any(v is None for v in values):
                study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(ot_trial, [float(v) for v in values])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__dict__, handle)

    def restore(self, checkpoint_path: str) -> None:
        # Only ever reads the file this searcher wrote into its own experiment directory.
        with open(checkpoint_path, "rb") as handle:
            self.__dict__.update(pickle.load(handle))
