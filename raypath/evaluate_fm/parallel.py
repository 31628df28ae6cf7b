"""The (FM, correction, level) evaluations of `evaluate-fm` on a few local processes.

Why whole evaluations and not the k-means runs or probes inside them: those pieces are milliseconds
each, so shipping them to workers cost more than they saved (measured: two processes took twice as
long as one); an evaluation is seconds of independent work on a small array, so a pool of
`workers` processes (joblib's, already there through scikit-learn) divides the command's time
among the cores. Why not Ray: starting it would cost more than the whole command. Inside every
task BLAS and OpenMP run single-threaded: the arrays are small, and threads that only spin made
k-means and the probes up to ~25x slower on a busy machine. Results are deterministic, so they do
not depend on the worker count.
"""

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits

from raypath.logs import ProgressBar

PROGRESS_EVERY_S = 30.0


def usable_workers(workers: int | None) -> int:
    """`workers`, or the cores this process may use when None."""
    if workers is not None:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def single_threaded() -> Iterator[None]:
    """BLAS and OpenMP on one thread for a metric of many small calls (once per metric: entering
    costs milliseconds, so never per k-means run or probe)."""
    with threadpool_limits(limits=1):
        yield


def _single_threaded(function: Callable[..., Any], index: int, task: tuple) -> tuple[int, Any]:
    with single_threaded():
        return index, function(*task)


def run_unordered(function: Callable[..., Any], tasks: Sequence[tuple], *, workers: int,
                  desc: str) -> Iterator[tuple[int, Any]]:
    """(task index, `function(*task)`) as tasks finish, on up to `workers` processes, with a
    progress bar on a terminal, else a log line every `PROGRESS_EVERY_S` seconds. With several
    workers the tasks start on return, so the caller may compute something else before reading."""
    if workers <= 1 or len(tasks) <= 1:
        results = (_single_threaded(function, index, task) for index, task in enumerate(tasks))
    else:
        pool = Parallel(n_jobs=min(workers, len(tasks)), return_as="generator_unordered")
        results = pool(delayed(_single_threaded)(function, index, task) for index, task in enumerate(tasks))
    return _with_progress(results, total=len(tasks), desc=desc)


def _with_progress(results: Iterator[tuple[int, Any]], *, total: int, desc: str) -> Iterator[tuple[int, Any]]:
    bar = ProgressBar(total=total, desc=desc, leave=False, every_s=PROGRESS_EVERY_S)
    try:
        for result in results:
            bar.update()
            yield result
    finally:
        bar.close()
