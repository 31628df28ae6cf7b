"""Flags become typed config values (never YAML-reparsed), with help from the config's descriptions."""

import argparse

import pytest

from raypath.commands.flags import Flag, add_config_flags, comma_list, config_from_args, field_description
from raypath.config import ConfigError
from raypath.extract.config import ExtractConfig
from raypath.sweep.config import SweepConfig

FLAGS = (Flag("run-id", "run_id"), Flag("out", "output"), Flag("batch", "batch_size", int))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_flags(parser, ExtractConfig, FLAGS, example="batch_size=8")
    return parser.parse_args(argv)


def test_values_keep_their_type_and_win_over_set():
    args = _parse(["--run-id", "0123", "--set", "run_id=abc", "--set", "batch_size=8", "--batch", "32"])
    config = config_from_args(ExtractConfig, args, FLAGS)
    assert config.run_id == "0123" and config.batch_size == 32


def test_flag_help_comes_from_the_field_description():
    expected = ExtractConfig.model_fields["batch_size"].description
    assert field_description(ExtractConfig, "batch_size") == expected
    assert field_description(SweepConfig, "tracking.uri").startswith("MLflow tracking URI (http://")
    assert field_description(SweepConfig, "tracking.nope") is None
    parser = argparse.ArgumentParser()
    add_config_flags(parser, ExtractConfig, FLAGS, example="batch_size=8")
    assert "tiles per inference batch" in parser.format_help()


def test_bad_flag_values_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="batch_size"):
        config_from_args(ExtractConfig, _parse(["--batch", "0"]), FLAGS)


def test_comma_lists():
    assert comma_list("uni,,virchow2") == ["uni", "virchow2"]


def test_cli_reports_bad_input_in_one_line_with_exit_2(capsys, tmp_path):
    from raypath.cli import main

    code = main(["extract", "--manifest", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err
    assert code == 2 and "missing.csv" in err and "Traceback" not in err
