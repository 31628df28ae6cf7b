"""The APD's logistic probe, computed as scikit-learn's `LogisticRegression(C=c).fit` computes it.

Why not the estimator itself: an APD fits ~1,800 probes per feature set (reshuffles × splits × 15
values of C), each a few hundred microseconds of arithmetic on a few hundred samples, and the
estimator's per-call argument checks, array-API dispatch and loss wrapper cost several times that
(75 % of a demo run's APD). This is the same computation without them: scikit-learn's objective
(mean half-binomial or half-multinomial loss plus ½·‖w‖²/(C·n), intercept unpenalised), evaluated
with scikit-learn's own per-sample loss, in the same float operations, minimised from zero by the
same L-BFGS-B loop with the same options (`lbfgs`: scipy's, without `minimize`'s wrappers). The
coefficients are therefore bit for bit the estimator's (tested against it), and so are its predictions.
"""

from dataclasses import dataclass

import numpy as np
from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

from raypath.evaluate_fm.lbfgs import minimize_lbfgsb

# LogisticRegression's defaults: max_iter 100, tol 1e-4; its L-BFGS-B options
LBFGS_OPTIONS = {"maxiter": 100, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps}


@dataclass(frozen=True)
class Probe:
    """A fitted linear probe: `classes` (sorted) and the (1 or n_classes, d) coefficients."""

    classes: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The estimator's `predict`: score > 0 for two classes, the argmax for more."""
        scores = features @ self.coef.T + self.intercept
        if scores.shape[1] == 1:
            return self.classes[(scores[:, 0] > 0).astype(np.intp)]
        return self.classes[scores.argmax(axis=1)]


class _BinaryObjective:
    """scikit-learn's `LinearModelLoss.loss_gradient` for a half-binomial loss with intercept."""

    def __init__(self, features: np.ndarray, target: np.ndarray, l2: float) -> None:
        self.features, self.target, self.l2, self.loss = features, target, l2, HalfBinomialLoss()

    def __call__(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        weights, n = coef[:-1], len(self.features)
        raw = self.features @ weights + np.asarray(coef[-1])
        loss, pointwise = self.loss.loss_gradient(y_true=self.target, raw_prediction=raw,
                                                  sample_weight=None, n_threads=1)
        value = float(loss.sum() / n) + float(0.5 * self.l2 * (weights @ weights))
        pointwise /= n
        grad = np.empty_like(coef)
        grad[:-1] = self.features.T @ pointwise + self.l2 * weights
        grad[-1] = pointwise.sum()
        return value, grad


class _MultinomialObjective:
    """The same for the half-multinomial loss; `coef` is (classes, d + 1) raveled in Fortran order."""

    def __init__(self, features: np.ndarray, target: np.ndarray, l2: float, n_classes: int) -> None:
        self.features, self.target, self.l2 = features, target, l2
        self.loss = HalfMultinomialLoss(n_classes=n_classes)

    def __call__(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        full = coef.reshape((self.loss.n_classes, -1), order="F")
        weights, n = full[:, :-1], len(self.features)
        raw = self.features @ weights.T + np.asarray(full[:, -1])
        loss, pointwise = self.loss.loss_gradient(y_true=self.target, raw_prediction=raw,
                                                  sample_weight=None, n_threads=1)
        flat = np.ravel(weights, order="K")
        value = float(loss.sum() / n) + float(0.5 * self.l2 * np.dot(flat, flat))
        pointwise /= n
        grad = np.empty(full.shape, dtype=weights.dtype, order="F")
        grad[:, :-1] = pointwise.T @ self.features + self.l2 * weights
        grad[:, -1] = pointwise.sum(axis=0)
        return value, grad.ravel(order="F")


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, c: float) -> Probe:
    """`LogisticRegression(C=c).fit(features, labels)` (lbfgs, L2, intercept), float64 features."""
    features = np.ascontiguousarray(features, dtype=np.float64)
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"a probe needs two classes; the training rows hold only {classes.tolist()}")
    l2, d = 1.0 / (c * len(features)), features.shape[1]
    if len(classes) == 2:
        objective = _BinaryObjective(features, (codes == 1).astype(np.float64), l2)
        start = np.zeros(d + 1)
    else:
        objective = _MultinomialObjective(features, codes.astype(np.float64), l2, len(classes))
        start = np.zeros(len(classes) * (d + 1))
    solution = minimize_lbfgsb(objective, start, **LBFGS_OPTIONS)
    if len(classes) == 2:
        return Probe(classes=classes, coef=solution[None, :-1], intercept=solution[-1:])
    full = np.ascontiguousarray(solution.reshape((len(classes), -1), order="F"))  # the estimator's layout
    return Probe(classes=classes, coef=full[:, :-1], intercept=full[:, -1])
