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
    held = leave_scanner_out(split, slides["scanner"], scanner="B")
    b = slides["scanner"] == "B"
    assert set(held[b]) == {"unused", "test"}
    assert held[~b].equals(split[~b])
    with pytest.raises(ValueError, match="no slides"):
        leave_scanner_out(split, slides["scanner"], scanner="Z")


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
