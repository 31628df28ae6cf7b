"""Console set-up: third-party bars, colours and chatter off where no one watches them."""

import logging
import os

import pytest

from raypath.logs import ProgressBar, quiet_third_parties

TERMINAL_SWITCHES = ("RAY_COLOR_PREFIX", "RAY_DATA_DISABLE_PROGRESS_BARS")
QUIET_SWITCHES = ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "MLFLOW_LOGGING_LEVEL", "RAY_AIR_NEW_OUTPUT",
                  "RAY_LOGGER_LEVEL", "RAY_DATA_LOG_LEVEL", "TUNE_WARN_THRESHOLD_S")


@pytest.fixture
def unset_switches(monkeypatch):
    """None of the switches set, and whatever the test sets undone afterwards (setenv records it)."""
    for name in TERMINAL_SWITCHES + QUIET_SWITCHES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return monkeypatch


def test_not_a_terminal_means_no_colours_no_bars_and_no_third_party_chatter(unset_switches):
    unset_switches.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")  # what the user set explicitly wins
    quiet_third_parties(verbose=False)  # pytest captures both streams: not a terminal
    assert [os.environ.get(name) for name in TERMINAL_SWITCHES + QUIET_SWITCHES] == [
        "0", "1", "false", "DEBUG", "0", "warning", "WARNING", "30"]


def test_verbose_keeps_third_parties_as_they_are(unset_switches):
    quiet_third_parties(verbose=True)
    assert not set(QUIET_SWITCHES) & set(os.environ)


def test_progress_off_a_terminal_is_log_lines_not_a_bar(caplog, capsys):
    with caplog.at_level(logging.INFO):
        assert list(ProgressBar(range(3), desc="write bags", every_s=0.0)) == [0, 1, 2]
        bar = ProgressBar(total=5, desc="tiny", disable=True)  # asked for no progress at all
        bar.update(5)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["write bags: 1/3", "write bags: 2/3", "write bags: 3/3"]
    assert lines[3].startswith("write bags: 3/3 in ") and len(lines) == 4
    err = capsys.readouterr().err  # log lines at most (a command's handler may write here): no bar
    assert "\r" not in err and all(" INFO " in line for line in err.splitlines())


@pytest.mark.slow
def test_a_tune_run_off_a_terminal_prints_no_configuration_box(unset_switches, local_ray, tmp_path, capfd):
    """The sweep's Tune settings (verbose=0, our callbacks) once the console is set up without
    --verbose: nothing of Tune's on stdout (its newer engine printed a configuration box)."""
    from ray import tune

    quiet_third_parties(verbose=False)

    def trainable(config):
        tune.report({"score": config["x"]})

    tuner = tune.Tuner(trainable, param_space={"x": tune.grid_search([1, 2])},
                       run_config=tune.RunConfig(name="quiet", storage_path=str(tmp_path), verbose=0))
    assert len(tuner.fit()) == 2
    out = capfd.readouterr().out
    assert "Configuration for experiment" not in out and "View detailed results" not in out, out
