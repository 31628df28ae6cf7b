"""Console set-up: third-party bars, colours and chatter off where no one watches them."""

import os

from raypath.logs import quiet_third_parties

SWITCHES = ("RAY_COLOR_PREFIX", "RAY_DATA_DISABLE_PROGRESS_BARS", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
            "MLFLOW_LOGGING_LEVEL")


def test_not_a_terminal_means_no_colours_no_bars_and_no_mlflow_chatter(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")  # what the user set explicitly wins
    quiet_third_parties(verbose=False)  # pytest captures both streams: not a terminal
    assert [os.environ.get(name) for name in SWITCHES] == ["0", "1", "false", "DEBUG"]


def test_verbose_keeps_mlflow_as_it_is(monkeypatch):
    for name in SWITCHES:
        monkeypatch.delenv(name, raising=False)
    quiet_third_parties(verbose=True)
    assert not {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_LOGGING_LEVEL"} & set(os.environ)
