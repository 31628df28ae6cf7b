import numpy as np

from raypath.mil.correction import fit_correction


def _features(rng):
    a = rng.normal(2.0, 1.0, (500, 3))
    b = rng.normal(-1.0, 3.0, (500, 3))
    return np.vstack([a, b]).astype(np.float32), np.array(["A"] * 500 + ["B"] * 500)


def test_centering_removes_per_scanner_means():
    features, scanners = _features(np.random.default_rng(0))
    fitted = fit_correction(features, scanners, method="center")
    out = fitted.transform(features, scanners)
    np.testing.assert_allclose(out[:500].mean(0), out[500:].mean(0), atol=1e-4)
    assert out[500:].std(0).mean() > 2 * out[:500].std(0).mean()  # scale untouched


def test_combat_equalises_location_and_scale_and_uses_train_statistics():
    rng = np.random.default_rng(1)
    features, scanners = _features(rng)
    fitted = fit_correction(features, scanners, method="combat")
    out = fitted.transform(features, scanners)
    np.testing.assert_allclose(out[:500].std(0), out[500:].std(0), rtol=1e-4)
    shifted = fitted.transform(features[:10] + 100, scanners[:10])  # train statistics, not refitted
    np.testing.assert_allclose(shifted, out[:10] + 100 * fitted.pooled_std / fitted.stds["A"], rtol=1e-4)


def test_unseen_scanner_uses_its_own_statistics():
    features, scanners = _features(np.random.default_rng(2))
    fitted = fit_correction(features[:500], scanners[:500], method="center")
    out = fitted.transform(features, scanners)
    np.testing.assert_allclose(out[500:].mean(0), fitted.grand_mean, atol=1e-4)
    assert fitted.transform(features, scanners) is not features
    none = fit_correction(features, scanners, method="none")
    assert none.transform(features, scanners) is features
