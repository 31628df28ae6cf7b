"""Independent pieces of a metric (k-means runs, APD iterations) on a few local processes.

Why processes and not Ray: the pieces are milliseconds to seconds of single-threaded scikit-learn
each, so starting Ray would cost more than the whole metric; a pool of worker processes (joblib's,
already there through scikit-learn) pays only where pieces are heavy (wide features) and cores are
idle, hence one process unless `workers` says otherwise. Results come back in task order and every
task is seeded on its own, so the numbers do not depend on the worker count.
"""

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from raypath.logs import ProgressBar

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 30.0


def usable_workers(workers: int | None) -> int:
    """`workers`, or the cores this process may use when None."""
    if workers is not None:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _single_threaded(function: Callable[..., Any], *args: Any) -> Any:
    """Small BLAS/OpenMP calls: threads only spin, worst on a busy machine."""
    with threadpool_limits(limits=1):
        return function(*args)


def run_tasks(function: Callable[..., Any], tasks: Sequence[tuple], *, workers: int, desc: str) -> list:
    """`[function(*task) for task in tasks]`, on up to `workers` processes, with a progress bar on a
    terminal, else a log line every `PROGRESS_EVERY_S` seconds."""
    bar = ProgressBar(total=len(tasks), desc=desc, leave=False, every_s=PROGRESS_EVERY_S)
    results: list = []
    try:
        if workers <= 1 or len(tasks) <= 1:
            for task in tasks:
                results.append(_single_threaded(function, *task))
                bar.update()
            return results
        pool = Parallel(n_jobs=min(workers, len(tasks)), return_as="generator")
        for result in pool(delayed(_single_threaded)(function, *task) for task in tasks):
            results.append(result)
            bar.update()
        return results
    finally:
        bar.close()
