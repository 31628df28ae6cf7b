"""The Ray task: register one specimen wherever the cluster has a free CPU; never raises for a bad
slide (the outcome says which scan failed, at which stage and why)."""

import time
import traceback
from collections import deque
from collections.abc import Iterator
from typing import Any

import ray

from raypath.extract.tiles import current_node
from raypath.register.plan import SpecimenTask
from raypath.register.records import SpecimenRecord
from raypath.slides.registration.config import RegisterConfig
from raypath.slides.registration.specimen import SpecimenError, register_specimen

Outcome = tuple[SpecimenRecord, list[dict[str, Any]]]
"""What one task produced: the specimen's record (the failing slide, stage and reason when failed) and
its registration rows (none unless done)."""


def register_one(task: SpecimenTask, config: RegisterConfig) -> Outcome:
    """`register_specimen` for one task, timed, with where it ran; slide faults become a failed outcome."""
    started, node = time.perf_counter(), current_node()
    try:
        rows = register_specimen(task.specimen_id, reference=task.reference, moving=list(task.moving),
                                 config=config)
        status, where = "done", {}
    except SpecimenError as exc:  # a scan that cannot be opened or read: deterministic, not retried
        rows, status = [], "failed"
        where = {"slide_id": exc.slide_id, "stage": exc.stage, "reason": exc.reason}
    except Exception as exc:  # anything else is a bug or an unusable input: named, the cohort goes on
        rows, status = [], "failed"
        where = {"stage": "register", "reason": f"{type(exc).__name__}: {exc}"}
        traceback.print_exc()
    return SpecimenRecord(specimen_id=task.specimen_id, status=status, attempts=1, **where, **node,
                          seconds=round(time.perf_counter() - started, 3)), rows


@ray.remote
def register_remote(task: SpecimenTask, config: RegisterConfig) -> Outcome:
    return register_one(task, config)


def run_tasks(tasks: list[SpecimenTask], config: RegisterConfig) -> Iterator[tuple[SpecimenTask, Outcome]]:
    """(task, outcome) as each finishes: one Ray task per specimen, SPREAD over the nodes, at most two
    per CPU of the cluster in flight (a cohort's tasks are never all queued at once)."""
    remote = register_remote.options(num_cpus=config.task_cpus, max_retries=config.max_attempts - 1,
                                     retry_exceptions=False, scheduling_strategy="SPREAD")
    settings = ray.put(config)
    limit = max(1, int(2 * ray.cluster_resources().get("CPU", 1.0) / config.task_cpus))
    queue, pending = deque(tasks), {}
    while queue or pending:
        while queue and len(pending) < limit:
            task = queue.popleft()
            pending[remote.remote(task, settings)] = task
        (ready,), _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(ready)
        yield task, _outcome(ready, task, attempts=config.max_attempts)


def _outcome(ref: ray.ObjectRef, task: SpecimenTask, *, attempts: int) -> Outcome:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died (a reader crash, OOM) on every attempt
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return SpecimenRecord(specimen_id=task.specimen_id, status="failed", stage="worker", reason=reason,
                              attempts=attempts), []
