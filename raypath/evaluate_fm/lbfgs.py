"""scipy's L-BFGS-B loop, `optimize.minimize(method="L-BFGS-B", jac=True)`, without its wrappers.

Why: an APD fits ~11,000 probes per demo run, each ~35 evaluations of a small objective, and
`minimize`'s per-evaluation machinery (its `ScalarFunction` cache, array-API conversions, copies
and equality checks) cost more than the objective itself (measured: over half of the APD's time).
This is the same loop as `scipy.optimize._lbfgsb_py._minimize_lbfgsb` for an unbounded problem:
the same compiled `setulb` routine, called with the same arguments and workspace, fed the same
objective values at the same points, with the same stopping rules (maxiter, maxfun). So the
solution is scipy's bit for bit (tested against `minimize`). `setulb` is scipy-internal: where it
is missing or its signature changed (a scipy other than 1.15-1.17), `minimize` itself runs.
"""

from collections.abc import Callable

import numpy as np
from scipy import optimize

try:
    from scipy.optimize._lbfgsb import setulb
except ImportError:  # scipy moved its internals: use the public call
    setulb = None

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
NEW_POINT, NEW_ITERATION, STOP = 3, 1, 5  # setulb's task codes (scipy >= 1.15)
STOP_MAXITER, STOP_MAXFUN = 504, 502


class _Workspace:
    """setulb's state arrays for n unknowns and `maxcor` corrections, shaped as scipy shapes them."""

    def __init__(self, n: int, maxcor: int) -> None:
        m = maxcor
        self.lower, self.upper, self.bounded = np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
        self.wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
        self.iwa = np.zeros(3 * n, dtype=np.int32)
        self.task, self.ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
        self.lsave, self.isave, self.dsave = np.zeros(4, np.int32), np.zeros(44, np.int32), np.zeros(29)


def minimize_lbfgsb(objective: Objective, start: np.ndarray, *, maxiter: int, maxls: int, gtol: float,
                    ftol: float, maxcor: int = 10, maxfun: int = 15000) -> np.ndarray:
    """The minimiser `minimize(objective, start, method="L-BFGS-B", jac=True, options=...)` returns."""
    options = {"maxiter": maxiter, "maxls": maxls, "gtol": gtol, "ftol": ftol, "maxcor": maxcor,
               "maxfun": maxfun}
    if setulb is not None:
        try:
            return _loop(objective, start, **options)
        except _SignatureChangedError:
            pass
    return optimize.minimize(objective, start, method="L-BFGS-B", jac=True, options=options).x


class _SignatureChangedError(Exception):
    """scipy's internal `setulb` no longer takes the arguments scipy 1.15-1.17 gave it."""


def _loop(objective: Objective, start: np.ndarray, *, maxiter: int, maxls: int, gtol: float, ftol: float,
          maxcor: int, maxfun: int) -> np.ndarray:
    x = np.array(start, dtype=np.float64).ravel()
    work = _Workspace(x.size, maxcor)
    value, grad = np.array(0.0), np.zeros(x.size)
    factr, iterations, evaluations = ftol / np.finfo(float).eps, 0, 0
    while True:
        try:
            setulb(maxcor, x, work.lower, work.upper, work.bounded, value, grad, factr, gtol, work.wa,
                   work.iwa, work.task, work.lsave, work.isave, work.dsave, maxls, work.ln_task)
        except TypeError as error:
            raise _SignatureChangedError from error
        if work.task[0] == NEW_POINT:
            value, grad = objective(x.copy())
            value, grad, evaluations = float(value), np.asarray(grad, dtype=np.float64), evaluations + 1
        elif work.task[0] == NEW_ITERATION:
            iterations += 1
            if iterations >= maxiter:
                work.task[:] = STOP, STOP_MAXITER
            elif evaluations > maxfun:
                work.task[:] = STOP, STOP_MAXFUN
        else:
            return x
