"""Every subcommand's --help: one vocabulary, help on every flag, no Python reprs, a `--set` example
that the command's own config accepts."""

import re

import pytest

from raypath.cli import COMMANDS, command_parser, main
from raypath.config import load_config

REPRS = re.compile(r"\bNone\b|PosixPath|<class |Namespace\(")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_text_for_every_flag_and_no_python_reprs(name):
    parser = command_parser(name)
    text = parser.format_help()
    assert not REPRS.search(text), REPRS.search(text)
    for action in parser._actions:
        if action.help != "==SUPPRESS==" and action.option_strings:
            assert action.help and action.help != action.dest, action.option_strings


@pytest.mark.parametrize("name", [name for name in COMMANDS if name != "models"])
def test_the_set_example_in_help_is_a_key_the_command_accepts(name, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)  # default configs are jobs/configs/*.yaml
    parser = command_parser(name)
    example = re.search(r"e\.g\. --set (\S+=\S+)", " ".join(parser.format_help().split())).group(1)
    model, config = parser.get_default("config_model"), parser.get_default("config")
    overrides = [example, *(["sweep_id=x"] if "sweep_id" in model.model_fields else [])]
    load_config(model, config, overrides=overrides)


@pytest.mark.parametrize("name", ["sweep", "compare", "evaluate-fm", "extract"])
def test_one_spelling_of_out_and_encoder(name):
    options = {option for action in command_parser(name)._actions for option in action.option_strings
               if action.help != "==SUPPRESS=="}
    assert "--encoder" in options and not options & {"--fms", "--encoders", "--output-dir", "--ray-address"}


def test_old_spellings_still_work_and_are_recorded_for_a_warning():
    args = command_parser("sweep").parse_args(["--output-dir", "o", "--fms", "a,b", "--encoder", "c"])
    assert args.out == "o" and args.encoder == ["a", "b", "c"]
    assert [old for old, _ in args.deprecated_flags] == ["--output-dir", "--fms"]


def test_unknown_encoder_on_train_names_it_and_lists_the_store(tmp_path, capsys):
    for encoder in ("tiny-uni", "sim-16"):
        (tmp_path / encoder / "abc").mkdir(parents=True)
    labels = tmp_path / "labels.csv"
    labels.write_text("patient_id,label\np,1\n")
    code = main(["train", "--features", str(tmp_path), "--encoder", "tiny-unii", "--labels", str(labels)])
    err = capsys.readouterr().err
    assert code == 2 and "'tiny-unii'" in err and "did you mean 'tiny-uni'" in err and "sim-16" in err
