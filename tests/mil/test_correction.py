import contextlib
import io
import pickle

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat

from raypath.mil.correction import fit_correction, proportional_sample


def _features(rng):
    a = rng.normal(2.0, 1.0, (500, 3))
    b = rng.normal(-1.0, 3.0, (500, 3))
    return np.vstack([a, b]).astype(np.float32), np.array(["A"] * 500 + ["B"] * 500)


def _unequal_batches(seed: int = 0, sizes: tuple[int, ...] = (200, 500, 1500), dim: int = 16):
    """Features of SD ~2 whose location and scale depend on the scanner; batches of unequal size."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    scale, shift = rng.uniform(0.5, 2.0, (len(sizes), dim)), rng.normal(0, 1.5, (len(sizes), dim))
    features = rng.normal(0, 2.0, (len(codes), dim)) * scale[codes] + shift[codes]
    return features.astype(np.float32), np.array(["scan-a", "scan-b", "scan-c"])[codes]


def _neurocombat(features: np.ndarray, scanners: np.ndarray, *, eb: bool) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        result = neuroCombat(dat=features.T.astype(np.float64), covars=pd.DataFrame({"scanner": scanners}),
                             batch_col="scanner", eb=eb)
    return result["data"].T


def test_centering_removes_per_scanner_means():
    features, scanners = _features(np.random.default_rng(0))
    fitted = fit_correction(features, scanners, method="center")
    out = fitted.transform(features, scanners)
    np.testing.assert_allclose(out[:500].mean(0), out[500:].mean(0), atol=1e-4)
    assert out[500:].std(0).mean() > 2 * out[:500].std(0).mean()  # scale untouched


def test_combat_is_neurocombats_empirical_bayes_with_unequal_batch_sizes():
    features, scanners = _unequal_batches()
    out = fit_correction(features, scanners, method="combat").transform(features, scanners)
    np.testing.assert_allclose(out, _neurocombat(features, scanners, eb=True), atol=1e-4)
    # The empirical-Bayes step matters here: neuroCombat without it is measurably elsewhere.
    assert np.abs(out - _neurocombat(features, scanners, eb=False)).max() > 0.05


def test_combat_fit_on_train_rows_applies_to_other_rows_chunk_by_chunk(tmp_path):
    features, scanners = _unequal_batches(seed=1)
    train = np.random.default_rng(1).random(len(features)) < 0.5
    fitted = fit_correction(features[train], scanners[train], method="combat")
    stored = np.lib.format.open_memmap(tmp_path / "tiles.npy", mode="w+", dtype=np.float16,
                                       shape=features.shape)
    stored[:] = features
    whole = fitted.transform(stored, scanners)
    chunks = np.concatenate([fitted.transform(stored[i:i + 97], scanners[i:i + 97])
                             for i in range(0, len(features), 97)])
    np.testing.assert_array_equal(chunks, whole)
    assert whole.dtype == np.float32
    shifted = fitted.transform(features[:10] + 100, scanners[:10])  # training maps, not refitted
    np.testing.assert_allclose(shifted, fitted.transform(features[:10], scanners[:10])
                               + 100 * fitted.scales["scan-a"], rtol=1e-5)


def test_fitted_combat_is_small_whatever_the_number_of_training_tiles():
    small, small_scanners = _unequal_batches(sizes=(20, 50, 150))
    large, large_scanners = _unequal_batches(sizes=(2000, 5000, 15000))
    sizes = [len(pickle.dumps(fit_correction(f, s, method="combat")))
             for f, s in ((small, small_scanners), (large, large_scanners))]
    assert sizes[0] == sizes[1] < 4 * 16 * 8 + 1024  # (2 per scanner + 2) × d float32 and names


def test_combat_on_a_proportional_sample_keeps_the_batch_shares():
    codes = np.repeat(np.arange(3), (3, 500, 1500))
    rows = proportional_sample(codes, max_samples=200, seed=0)
    assert np.bincount(codes[rows]).tolist() == [2, 50, 150]  # never fewer than two tiles of a scanner
    assert proportional_sample(codes, max_samples=None, seed=0).size == len(codes)
    features, scanners = _unequal_batches(sizes=(2000, 5000, 15000))
    sampled = fit_correction(features, scanners, method="combat", max_samples=5000)
    full = fit_correction(features, scanners, method="combat", max_samples=None)
    for scanner in ("scan-a", "scan-b", "scan-c"):  # estimates from 5,000 tiles are within a few %
        np.testing.assert_allclose(sampled.scales[scanner], full.scales[scanner], rtol=0.1)
    difference = sampled.transform(features, scanners) - full.transform(features, scanners)
    assert np.abs(difference).mean() < 0.05 * full.transform(features, scanners).std()


def test_unseen_scanner_uses_its_own_statistics():
    features, scanners = _features(np.random.default_rng(2))
    for method in ("center", "combat"):
        fitted = fit_correction(features[:500], scanners[:500], method=method)
        out = fitted.transform(features, scanners)
        np.testing.assert_allclose(out[500:].mean(0), fitted.target_mean, atol=1e-4)
    assert fitted.transform(features, scanners) is not features
    none = fit_correction(features, scanners, method="none")
    assert none.transform(features, scanners) is features


@pytest.mark.parametrize("method", ["center", "combat"])
def test_correction_is_affine_per_scanner_so_slide_means_commute(method):
    features, scanners = _unequal_batches(seed=3)
    fitted = fit_correction(features, scanners, method=method)
    rows = np.flatnonzero(scanners == "scan-b")[:40]
    mean_then_correct = fitted.transform(features[rows].mean(0, keepdims=True), scanners[rows[:1]])
    np.testing.assert_allclose(mean_then_correct[0], fitted.transform(features[rows], scanners[rows]).mean(0),
                               atol=1e-4)


def _label_uneven_over_scanners(seed: int = 0, sizes: tuple[int, ...] = (200, 500, 1500), dim: int = 16):
    """Unequal batches whose label share differs by scanner (10 %, 50 %, 90 % positive), a label
    effect on every feature and a continuous covariate (age) with a small effect."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    label = (rng.random(len(codes)) < np.array([0.1, 0.5, 0.9])[codes]).astype(int)
    age = rng.normal(60.0, 10.0, len(codes))
    scale, shift = rng.uniform(0.5, 2.0, (len(sizes), dim)), rng.normal(0, 1.5, (len(sizes), dim))
    features = (rng.normal(0, 1.0, (len(codes), dim)) * scale[codes] + shift[codes] + 1.5 * label[:, None]
                + 0.02 * (age[:, None] - 60.0))
    covariates = pd.DataFrame({"label": label, "age": age})
    return features.astype(np.float32), np.array(["scan-a", "scan-b", "scan-c"])[codes], covariates


def _neurocombat_with(features, scanners, covariates, **columns) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        return neuroCombat(dat=features.T.astype(np.float64), covars=covariates.assign(scanner=scanners),
                           batch_col="scanner", **columns)


def _from_training(features, scanners, estimates, monkeypatch) -> np.ndarray:
    """neuroCombat's own rule for rows without covariates. Its level lookup calls int() on a
    1-element array, which NumPy 2 refuses; the module's `int` is shimmed to take the element."""
    import builtins
    import sys

    from neuroCombat import neuroCombatFromTraining

    monkeypatch.setattr(sys.modules["neuroCombat.neuroCombat"], "int",
                        lambda a: builtins.int(np.asarray(a).item()), raising=False)
    with contextlib.redirect_stdout(io.StringIO()):
        return neuroCombatFromTraining(dat=features.T.astype(np.float64), batch=scanners,
                                       estimates=estimates)["data"].T


def test_combat_with_the_label_as_covariate_is_neurocombat_on_unequal_batches(monkeypatch):
    features, scanners, covariates = _label_uneven_over_scanners()
    reference = _neurocombat_with(features, scanners, covariates, categorical_cols=["label"],
                                  continuous_cols=["age"])
    fitted = fit_correction(features, scanners, method="combat", covariates=covariates,
                            categorical=["label"], continuous=["age"])
    # Float32 maps on float32 features of magnitude ~10: 1e-5 leaves room for their rounding only.
    np.testing.assert_allclose(fitted.transform_with_covariates(features, scanners, covariates),
                               reference["data"].T, atol=1e-5)
    from_training = _from_training(features, scanners, reference["estimates"], monkeypatch)
    np.testing.assert_allclose(fitted.transform(features, scanners), from_training, atol=1e-5)


def test_the_label_covariate_keeps_the_label_effect_combat_otherwise_removes():
    features, scanners, covariates = _label_uneven_over_scanners(seed=1)

    def label_effect(out):
        return float((out[covariates["label"] == 1].mean(0) - out[covariates["label"] == 0].mean(0)).mean())

    protected = fit_correction(features, scanners, method="combat", covariates=covariates,
                               categorical=["label"])
    plain = fit_correction(features, scanners, method="combat")
    kept = label_effect(protected.transform_with_covariates(features, scanners, covariates))
    assert kept == pytest.approx(1.5, abs=0.15)  # the simulated effect, within noise
    assert label_effect(plain.transform(features, scanners)) < 0.8 * kept  # without it, biology goes


def test_a_label_the_scanner_determines_cannot_be_protected():
    features, scanners, covariates = _label_uneven_over_scanners(sizes=(100, 100, 100))
    confounded = covariates.assign(label=(scanners == "scan-c").astype(int))
    with pytest.raises(ValueError, match="confounded with the scanner"):
        fit_correction(features, scanners, method="combat", covariates=confounded, categorical=["label"])
    with pytest.raises(ValueError, match="not columns"):
        fit_correction(features, scanners, method="combat", covariates=covariates, categorical=["grade"])
