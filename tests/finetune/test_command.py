"""`raypath finetune` refuses bad input with one line and exit status 2, before Ray or a model starts."""

import pytest

from raypath.cli import main


@pytest.fixture
def no_ray(monkeypatch):
    import raypath.finetune.run as run

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start on bad input")

    monkeypatch.setattr(run, "connect", refuse)


def test_missing_labels_is_named(ft_cohort, tmp_path, caplog, no_ray):
    code = main(["finetune", "--manifest", str(ft_cohort / "manifest.csv"), "--output-dir", str(tmp_path)])
    assert code == 2 and "labels" in caplog.text


def test_pair_losses_need_registration(ft_cohort, tmp_path, caplog, no_ray):
    code = main(["finetune", "--manifest", str(ft_cohort / "manifest.csv"), "--labels",
                 str(ft_cohort / "labels.csv"), "--output-dir", str(tmp_path)])
    assert code == 2 and "registration" in caplog.text and "tile_consistency" in caplog.text


def test_unknown_encoder_is_named(ft_cohort, tmp_path, caplog, no_ray):
    code = main(["finetune", "--encoder", "no-such-fm", "--manifest", str(ft_cohort / "manifest.csv"),
                 "--labels", str(ft_cohort / "labels.csv"), "--output-dir", str(tmp_path)])
    assert code == 2 and "no-such-fm" in caplog.text
