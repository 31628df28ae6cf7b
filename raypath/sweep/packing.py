"""A Tune searcher that asks Optuna for several configurations and packs them into one Tune trial.

Tune's per-trial cost (actor start, scheduling, result plumbing) is fixed, so short trials are
dominated by it. Packing G configurations into one trial and training them together
(`raypath.train.engine`) divides that cost by G while Optuna still sees one study trial per
configuration. Members of a pack must share every *pack key* (parameters that change tensor
shapes or module constants, e.g. hidden size and dropout); Optuna samples the first member freely
and the others with the pack keys fixed through partial `enqueue_trial`.

Asks and tells do not follow the order in which concurrent trials finish. Packs are asked in fixed
batches of `search_batch` packs, two batches in flight (`IN_FLIGHT`): batch b is asked once every
pack of batch b - 2 ended, from a study holding the results of batches up to b - 2 in pack order
and batch b - 1 as running trials (`raypath.sweep.studies`), whether or not b - 1 has finished by
then. So the same config and seed suggest the same configurations however the trials' timing
falls, and the next batch can start while the slowest pack of the last one still runs. The
searcher's state is JSON (asked packs, their results, the rung values of
`raypath.sweep.schedulers`), so `Tuner.restore` continues the same search without unpickling
anything raypath wrote.
"""

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from ray.tune.search import Searcher

from raypath.sweep.schedulers import IN_FLIGHT, RungBook
from raypath.sweep.searcher_state import PACK_METRIC, StagingSearcher, read_state, write_state
from raypath.sweep.studies import asked_record, batch_seed, rebuild_study, told_record
from raypath.tracking.runs import config_key, trial_key

log = logging.getLogger(__name__)



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


def tail_cap(*, left: int, pack_size: int, width: int) -> int:
    """The largest pack that may start with `left` configurations still to issue, `width` packs
    running at once: at most left / (2·width), so that the work left behind it can keep the other
    width - 1 slots busy while it runs, with room for packs that halving lets run longer than the
    rest. The last packs of a sweep shrink (8, 6, 5, 4, 3, 2, 1, ... for width 2), and the pack that
    ends a sweep alone is a short one. Width 1 (trials one at a time) leaves nothing idle: no cap."""
    return pack_size if width <= 1 else max(1, min(pack_size, math.ceil(left / (2 * width))))


def pack_plan(*, num_configs: int, pack_size: int, n_baseline: int, width: int = 1) -> list[tuple[bool, int]]:
    """(tuned-control pack?, size) of every pack, in order: control packs are interleaved so that the
    control keeps its share all along the search (ASHA and TPE see both arms from the start). With
    `width` > 1 (packs running at once) the tail is tapered (`tail_cap`)."""
    plan, issued, baseline = [], 0, 0
    while issued < num_configs:
        arm = baseline < n_baseline and baseline * num_configs <= issued * n_baseline
        room = n_baseline - baseline if arm else num_configs - n_baseline - (issued - baseline)
        left = num_configs - issued
        size = min(tail_cap(left=left, pack_size=pack_size, width=width), room, left)
        plan.append((arm, size))
        issued, baseline = issued + size, baseline + size * arm
    return plan


def control_configs(*, space: Sequence[str], num_configs: int, baseline_share: float) -> int:
    """How many searched configurations are tuned controls: none when only loss weights are searched
    (nothing to tune with the losses off)."""
    searchable = any(not k.startswith("losses.") for k in space)
    return round(baseline_share * num_configs) if searchable and baseline_share else 0


def objective_values(metrics: Mapping[str, float], names: Sequence[str]) -> list[float] | None:
    """A member's objectives as Optuna is told them; None (a failed trial) when one is missing or NaN."""
    values = [metrics.get(name) for name in names]
    if any(v is None or not math.isfinite(float(v)) for v in values):
        return None
    return [float(v) for v in values]


class PackedOptunaSearcher(StagingSearcher):
    """Suggest packs of up to `pack_size` configurations, `batch_packs` packs per batch, until
    `num_configs` have been issued; the last packs shrink for `tail_width` packs at once (`pack_plan`)."""

    def __init__(
        self,
        *,
        space: Mapping[str, BaseDistribution],
        metrics: Sequence[str],
        modes: Sequence[str],
        sampler: str,
        num_configs: int,
        pack_size: int,
        pack_keys: Sequence[str],
        baseline: Mapping[str, Any],
        sweep_id: str,
        fm: str,
        seed: int,
        robust_keys: Sequence[str],
        baseline_share: float = 0.0,
        batch_packs: int = 1,
        rungs: RungBook | None = None,
        tail_width: int = 1,
    ) -> None:
        # Tune checks results for the searcher's metric: the pack-level "objective" (raypath.train.engine).
        super().__init__(metric=PACK_METRIC, mode=modes[0])
        self.space = dict(space)
        self.metrics, self.modes, self.sampler = list(metrics), list(modes), sampler
        self.directions = ["maximize" if m == "max" else "minimize" for m in modes]
        self.num_configs, self.pack_size, self.batch_packs = num_configs, pack_size, batch_packs
        self.pack_keys = [k for k in pack_keys if k in self.space]
        self.robust_keys = list(robust_keys)
        self.sweep_id, self.fm, self.seed = sweep_id, fm, seed
        self.baseline = {k: v for k, v in baseline.items() if k in self.space}
        # The tuned control: robustness losses off, the shared hyperparameters searched like the
        # robust arm's, so a robust model's gain cannot come from tuning alone.
        self.arm_spaces = {"robust": self.space,
                           "control": {k: d for k, d in self.space.items() if not k.startswith("losses.")}}
        self.n_baseline = control_configs(space=list(self.space), num_configs=num_configs,
                                          baseline_share=baseline_share)
        self.plan = pack_plan(num_configs=num_configs, pack_size=pack_size, n_baseline=self.n_baseline,
                              width=tail_width)
        self.rungs = rungs if rungs is not None else RungBook()
        self.queue: list[dict[str, Any]] = []  # packs of the newest batch not handed out yet
        self.asked: dict[int, list[dict[str, Any]]] = {}  # pack index -> its members' asked records
        self.outcomes: dict[int, list[list[float] | None]] = {}  # pack index -> its members' results
        self.pending: dict[str, int] = {}  # Tune trial id -> pack index
        self.handed, self.batches = 0, 0

    @property
    def packs(self) -> int:
        """How many packs (Tune trials) the whole search takes."""
        return len(self.plan)

    def _batch_range(self, batch: int) -> range:
        return range(batch * self.batch_packs, min((batch + 1) * self.batch_packs, len(self.plan)))

    def _records(self, arm: str, batch: int) -> list[dict[str, Any]]:
        """What batch `batch` of `arm` is asked from: the results of batches up to batch - IN_FLIGHT
        and the batches after them as running trials, in pack order."""
        records = []
        for index in range(min(batch * self.batch_packs, len(self.plan))):
            if ("control" if self.plan[index][0] else "robust") != arm:
                continue
            if index // self.batch_packs + IN_FLIGHT <= batch:
                records += map(told_record, self.asked[index], self.outcomes[index])
            else:
                records += self.asked[index]  # still running when this batch is asked (or taken to be)
        return records

    def _askable(self) -> bool:
        """Batch b may be asked once every pack of batch b - IN_FLIGHT (and before) has ended."""
        done_through = min((self.batches - IN_FLIGHT + 1) * self.batch_packs, len(self.plan))
        return all(i in self.outcomes for i in range(max(done_through, 0)))

    def _ask_batch(self) -> list[dict[str, Any]]:
        """Every pack of the next batch, asked of studies rebuilt from `_records`."""
        batch = self.batches
        studies = {arm: rebuild_study(self._records(arm, batch), space=space, directions=self.directions,
                                      sampler_kind=self.sampler,
                                      seed=batch_seed(seed=self.seed, batch=batch, arm=arm))
                   for arm, space in self.arm_spaces.items()}
        packs = []
        for index in self._batch_range(batch):
            control, size = self.plan[index]
            arm = "control" if control else "robust"
            packs.append(self._ask_pack(studies[arm], arm=arm, index=index, size=size, batch=batch))
        self.batches += 1
        return packs

    def _ask_pack(self, study: Any, *, arm: str, index: int, size: int, batch: int) -> dict[str, Any]:
        space, members, asked = self.arm_spaces[arm], [], []
        first_member = sum(s for _, s in self.plan[:index])
        for position in range(size):
            if index == 0 and position == 0:  # the untuned control (losses off, train's values) first
                study.enqueue_trial({k: v for k, v in self.baseline.items() if k in space})
            elif position:
                study.enqueue_trial({k: members[0]["params"][k] for k in self.pack_keys if k in space})
            ot_trial = study.ask(space)
            members.append(make_member(
                params={k: ot_trial.params.get(k, self.baseline.get(k)) for k in sorted(self.space)},
                seed=self.seed,  # one seed for the whole search: same split, init and batches (paired)
                index=first_member + position, phase="search", sweep_id=self.sweep_id, fm=self.fm,
                robust_keys=self.robust_keys))
            asked.append({"key": members[-1]["key"], **asked_record(ot_trial)})
        self.asked[index] = asked
        return {"phase": "search", "batch": batch, "pack_index": index, "pack": members}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next pack; None while the next batch may not be asked yet; FINISHED once every pack
        was handed out."""
        if self.handed >= len(self.plan):
            return Searcher.FINISHED
        if not self.queue:
            if not self._askable():
                return None
            self.queue = self._ask_batch()
        pack = self.queue.pop(0)
        self.pending[trial_id] = pack["pack_index"]
        self.handed += 1
        return pack

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Keep each member's last reported objectives (early-stopped members included); they are
        told to the batches asked from now on (`_records`)."""
        index = self.pending.pop(trial_id, None)
        if index is None:
            log.warning("result for pack %s that this searcher did not issue", trial_id)
            return
        reported = {m["key"]: m["metrics"] for m in (result or {}).get("members", [])}
        self.outcomes[index] = [None if error else objective_values(reported.get(r["key"], {}), self.metrics)
                                for r in self.asked[index]]

    def save(self, checkpoint_path: str) -> None:
        """Searcher state as JSON (what `raypath.sweep.seal` then seals with Tune's own files)."""
        write_state(checkpoint_path, {
            "queue": self.queue, "handed": self.handed, "batches": self.batches,
            "asked": {str(i): a for i, a in self.asked.items()},
            "outcomes": {str(i): o for i, o in self.outcomes.items()},
            "pending": self.pending, "rungs": self.rungs.to_json(),
        })
        self._saved(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        state = read_state(checkpoint_path)
        self.queue, self.pending = state["queue"], state["pending"]
        self.handed, self.batches = int(state["handed"]), int(state["batches"])
        self.asked = {int(i): a for i, a in state["asked"].items()}
        self.outcomes = {int(i): o for i, o in state["outcomes"].items()}
        self.rungs.load(state["rungs"])
