"""evaluate-fm's pool: every task's result comes back once, with its index, whatever the worker count."""

from raypath.evaluate_fm.parallel import run_unordered


def test_every_task_comes_back_once_with_its_index_on_one_or_two_workers():
    tasks = [(7, 2), (9, 4), (5, 5), (8, 3)]
    for workers in (1, 2):
        results = dict(run_unordered(divmod, tasks, workers=workers, desc="test"))
        assert results == {index: divmod(*task) for index, task in enumerate(tasks)}
