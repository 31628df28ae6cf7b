import numpy as np
import pandas as pd
import pytest

from raypath.train.splits import column_split, grouped_split, leave_scanner_out


def _slides(n_patients=60):
    rows = [{"slide_id": f"p{p}_{s}", "patient_id": f"p{p}", "scanner": s, "label": p % 2}
            for p in range(n_patients) for s in ("A", "B")]
    return pd.DataFrame(rows)


def test_grouped_split_keeps_patients_whole_and_stratifies():
    slides = _slides()
    split = grouped_split(slides, train=0.5, val=0.25, seed=0, stratify="label")
    assert (slides.assign(split=split).groupby("patient_id")["split"].nunique() == 1).all()
    counts = slides.assign(split=split).drop_duplicates("patient_id").groupby(["split", "label"]).size()
    assert counts["train"].tolist() == [15, 15] and counts["val"].tolist() == [8, 8]
    assert counts["test"].tolist() == [7, 7]
    assert split.equals(grouped_split(slides, train=0.5, val=0.25, seed=0, stratify="label"))
    assert not split.equals(grouped_split(slides, train=0.5, val=0.25, seed=1, stratify="label"))


def test_leave_scanner_out_removes_it_from_training_only():
    slides = _slides()
    split = grouped_split(slides, train=0.6, val=0.2, seed=0)
    held = leave_scanner_out(split, slides["scanner"], held_out=["B"])
    b = slides["scanner"] == "B"
    assert set(held[b]) == {"unused", "test"}
    assert held[~b].equals(split[~b])
    with pytest.raises(ValueError, match="no slides"):
        leave_scanner_out(split, slides["scanner"], held_out=["Z"])


def test_column_split_is_validated():
    slides = _slides(2).assign(split=["train", "train", "test", "test"])
    assert column_split(slides).tolist() == ["train", "train", "test", "test"]
    with pytest.raises(ValueError, match="several splits"):
        column_split(slides.assign(split=["train", "val", "test", "test"]))
    with pytest.raises(ValueError, match="split must be one of"):
        column_split(slides.assign(split=["train", "train", "dev", "dev"]))
    with pytest.raises(ValueError, match="no 'split' column"):
        column_split(slides.drop(columns="split"))
    assert np.all(column_split(slides).index == slides.index)


def test_folds_keep_every_patient_and_specimen_whole_and_rotate_test_and_val():
    from raypath.train.splits import fold_split, patient_folds

    rng = np.random.default_rng(0)
    rows = [{"slide_id": f"P{p}-S{s}-{k}", "patient_id": f"P{p}", "specimen_id": f"P{p}-S{s}",
             "label": p % 2} for p in range(23) for s in range(1 + p % 2) for k in range(1 + rng.integers(3))]
    slides = pd.DataFrame(rows)
    folds = patient_folds(slides, folds=5, seed=3, stratify="label")
    assert (slides.assign(f=folds).groupby("patient_id")["f"].nunique() == 1).all()
    assert (slides.assign(f=folds).groupby("specimen_id")["f"].nunique() == 1).all()
    assert sorted(folds.unique()) == [0, 1, 2, 3, 4]
    per_fold = slides.assign(f=folds).groupby("f")["patient_id"].nunique()
    assert per_fold.max() - per_fold.min() <= 1
    labels = slides.assign(f=folds).groupby(["f", "label"])["patient_id"].nunique().unstack()
    assert (labels > 0).all().all()  # stratified: both classes in every fold
    tests = [set(slides.loc[fold_split(folds, fold=f, folds=5) == "test", "patient_id"]) for f in range(5)]
    assert set().union(*tests) == set(slides["patient_id"]) and sum(map(len, tests)) == 23
    split = fold_split(folds, fold=4, folds=5)
    assert set(slides.loc[split == "val", "patient_id"]) == set(slides.loc[folds == 0, "patient_id"])
    assert patient_folds(slides, folds=5, seed=3, stratify="label").equals(folds)


def test_the_split_has_its_own_seed_so_training_seeds_never_move_patients(simulated_bags):
    from raypath.train.config import TrainConfig
    from raypath.train.setup import make_split

    data = simulated_bags(n_specimens=30, tiles=4, dim=4, seed=0)
    config = TrainConfig(split={"source": "random", "seed": 7})
    first, again = make_split(config, data), make_split(config, data)
    assert first.equals(again)
    assert not make_split(TrainConfig(split={"source": "random", "seed": 8}), data).equals(first)
