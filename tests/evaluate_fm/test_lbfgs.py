"""The APD's L-BFGS-B loop is scipy's `minimize(method="L-BFGS-B", jac=True)` to the last bit, whether
it converges or stops at `maxiter`, without `minimize`'s per-evaluation wrappers."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize

from raypath.evaluate_fm import lbfgs
from raypath.evaluate_fm.lbfgs import minimize_lbfgsb


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    return float(optimize.rosen(x)), optimize.rosen_der(x)


@pytest.mark.parametrize("maxiter", [3, 40, 1000])
def test_the_minimiser_equals_scipys_bit_for_bit(maxiter):
    start = np.random.default_rng(maxiter).normal(size=6)
    options = {"maxiter": maxiter, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps}
    expected = optimize.minimize(rosenbrock, start, method="L-BFGS-B", jac=True, options=options).x
    assert np.array_equal(minimize_lbfgsb(rosenbrock, start, **options), expected)


def _changed_signature(*args: object) -> None:
    raise TypeError("setulb() takes 16 positional arguments but 17 were given")


@pytest.mark.parametrize("internal", [None, _changed_signature], ids=["missing", "changed"])
def test_a_scipy_whose_internal_routine_moved_or_changed_runs_minimize_itself(monkeypatch, internal):
    monkeypatch.setattr(lbfgs, "setulb", internal)
    start = np.random.default_rng(1).normal(size=6)
    options = {"maxiter": 40, "maxls": 50, "gtol": 1e-4, "ftol": 64 * np.finfo(float).eps}
    expected = optimize.minimize(rosenbrock, start, method="L-BFGS-B", jac=True, options=options).x
    assert np.array_equal(minimize_lbfgsb(rosenbrock, start, **options), expected)


@pytest.mark.slow
def test_a_worker_that_imports_the_pooled_metrics_does_not_load_torch():
    code = "import sys, raypath.evaluate_fm.measure; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
