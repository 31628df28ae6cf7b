"""`raypath finetune` refuses bad input with one line on stderr and exit status 2, before Ray starts."""

import pytest

from raypath.cli import main


@pytest.fixture
def no_ray(monkeypatch):
    import raypath.finetune.run as run

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start on bad input")

    monkeypatch.setattr(run, "connect", refuse)


def test_missing_labels_is_named(ft_cohort, tmp_path, capsys, no_ray):
    code = main(["finetune", "--manifest", str(ft_cohort / "manifest.csv"), "--out", str(tmp_path)])
    assert code == 2 and "labels" in capsys.readouterr().err


def test_pair_losses_need_registration(ft_cohort, tmp_path, capsys, no_ray):
    code = main(["finetune", "--manifest", str(ft_cohort / "manifest.csv"), "--labels",
                 str(ft_cohort / "labels.csv"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "registration" in err and "tile_consistency" in err


def test_unknown_encoder_is_named(ft_cohort, tmp_path, capsys, no_ray):
    code = main(["finetune", "--encoder", "no-such-fm", "--manifest", str(ft_cohort / "manifest.csv"),
                 "--labels", str(ft_cohort / "labels.csv"), "--out", str(tmp_path)])
    assert code == 2 and "no-such-fm" in capsys.readouterr().err
