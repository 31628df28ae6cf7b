"""evaluate-fm says where it is: progress lines in logs for the long metric loops."""

import logging

from raypath.evaluate_fm import parallel


def test_long_metric_loops_log_progress_lines_when_not_on_a_terminal(monkeypatch, caplog):
    monkeypatch.setattr(parallel, "PROGRESS_EVERY_S", 0.0)
    with caplog.at_level(logging.INFO):
        done = list(parallel.run_unordered(abs, [(-1,), (-2,)], workers=1, desc="APD iterations"))
    assert sorted(done) == [(0, 1), (1, 2)]
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == ["APD iterations: 1/2", "APD iterations: 2/2"]
    assert lines[2].startswith("APD iterations: 2/2 in ") and len(lines) == 3
