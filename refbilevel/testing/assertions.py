"""Assertions with stated false-positive rates, for tests of one's own estimators
(docs/testing.rst).

* :func:`assert_hypergradient_close`: a hypergradient value against the closed form at the
  same (x, y): UniBiO's generalized formula (UniBiO Thm 4.1 eq. (7), docs/unibio.rst §3.3;
  the classical Ghadimi-Wang formula when p = 2), or ∇phi(x) when y is omitted. Exact: the
  only false positives are rounding beyond the stated tolerance.
* :func:`mean_test` / :func:`assert_mean_matches`: the mean of R independent draws of an
  estimator against the truth plus the estimator's stated bias (an exact bias vector, or a
  bound on it), by per-coordinate Student-t tests with a Bonferroni correction or by
  Hotelling's T². Under the null hypothesis (the estimator's mean is what its author says)
  the test rejects with probability at most ``false_positive_rate`` (<= 1e-3), up to the
  normal approximation of the sample mean.
* :func:`assert_estimate_matches`: the same test for an estimate already reduced to its value
  and standard error (a Monte Carlo mean accumulated in chunks).
* :func:`fit_loglog_slope` / :func:`assert_loglog_slope`: the slope of log y against log x
  with its confidence interval (ordinary least squares with a Student-t interval, or weighted
  least squares from the standard errors of y by the delta method, as claim U7 does,
  docs/checks.rst U7); the assertion fails only if the interval excludes every slope within
  ``tolerance`` of the expected one, so its false-positive rate is at most 1 - level when the
  data follow a power law with that slope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from refbilevel.checks.intervals import t_quantile, z_quantile
from refbilevel.problems.base import BilevelProblem
from refbilevel.validation import require_range

#: the project's ceiling for the false-positive rate of a statistical test (docs/checks.rst)
MAX_FALSE_POSITIVE_RATE = 1e-3


def assert_hypergradient_close(problem: BilevelProblem, x: Any, value: Any, *, y: Any = None,
                               rtol: float = 1e-10) -> None:
    """Assert that ``value`` equals the closed-form hypergradient of ``problem`` at ``x``.

    With ``y`` given, the truth is the generalized hypergradient ∇̄f(x, y) at that lower-level
    point (the quantity an estimator that is exact in its linear solve returns there); without
    it, ∇phi(x). ``x``, ``y`` and ``value`` may carry leading batch dimensions. The check is
    ``max|value - truth| <= rtol · max(1, max|truth|)``: deterministic, so its only false
    positives are rounding errors larger than ``rtol`` (1e-10 leaves ~10⁶ ulps of room for a
    d <= 100 linear solve).
    """
    from refbilevel.hypergradient import generalized_hypergradient

    rtol = require_range("rtol", rtol, low=0.0)
    x = np.asarray(x, dtype=np.float64)
    truth = (problem.grad_phi(x) if y is None
             else generalized_hypergradient(problem, x, np.asarray(y, dtype=np.float64)))
    value = np.asarray(value, dtype=np.float64)
    if value.shape != truth.shape:
        raise ValueError(f"value must have the shape of the hypergradient {truth.shape}, got "
                         f"{value.shape}")
    err = float(np.max(np.abs(value - truth))) if value.size else 0.0
    scale = max(1.0, float(np.max(np.abs(truth)))) if truth.size else 1.0
    if not err <= rtol * scale:  # also fails on NaN
        raise AssertionError(
            f"hypergradient differs from the closed form ({'∇phi(x)' if y is None else '∇̄f(x, y)'}"
            f" of {problem!r}): max abs error {err:.3e} > rtol {rtol:g} × {scale:.3e}")


@dataclass(frozen=True)
class MeanTest:
    """The outcome of :func:`mean_test`. ``statistic`` and ``threshold``: the largest
    standardized excess |mean - target| - bias_bound over the standard error and its
    Bonferroni-corrected t quantile, or Hotelling's F statistic and its F quantile."""

    method: str
    mean: np.ndarray
    se: np.ndarray
    target: np.ndarray
    bias_bound: np.ndarray
    statistic: float
    threshold: float
    false_positive_rate: float
    n_samples: int
    rejected: bool

    def describe(self) -> str:
        worst = int(np.argmax(np.abs(self.mean - self.target) - self.bias_bound))
        return (f"{self.method}: statistic {self.statistic:.3f} vs threshold "
                f"{self.threshold:.3f} at false-positive rate {self.false_positive_rate:g} "
                f"(R = {self.n_samples}); worst coordinate {worst}: mean "
                f"{self.mean[worst]:.6g} ± {self.se[worst]:.2g} (SE), target "
                f"{self.target[worst]:.6g}" + (f" ± bias bound {self.bias_bound[worst]:.3g}"
                                               if self.bias_bound[worst] else ""))


def mean_test(samples: Any, truth: Any, *, bias: Any = 0.0, bias_bound: Any = 0.0,
              false_positive_rate: float = MAX_FALSE_POSITIVE_RATE,
              method: str = "bonferroni") -> MeanTest:
    """Test whether the mean of ``samples`` (R independent draws, shape (R,) or (R, d)) is
    ``truth + bias``, within ``bias_bound`` per coordinate.

    ``method="bonferroni"``: coordinate i is rejected when |mean_i - truth_i - bias_i| >
    bias_bound_i + t·SE_i, with t the two-sided Student-t quantile (R - 1 degrees of freedom)
    at level 1 - rate/d; by the union bound the test rejects a true null with probability <=
    ``false_positive_rate`` (exactly for normal draws, up to the CLT otherwise; a bias inside
    its bound only lowers the rate). ``method="hotelling"``: Hotelling's T² for the exact
    mean ``truth + bias`` (no ``bias_bound``), rejected when (R-d)/(d(R-1)) T² exceeds the
    F(d, R-d) quantile at 1 - rate: exact for normal draws, and more powerful when the
    coordinates are correlated. ``false_positive_rate`` must be in (0, 1e-3].
    """
    from scipy.special import fdtri

    rate = require_range("false_positive_rate", false_positive_rate, low=0.0,
                         high=MAX_FALSE_POSITIVE_RATE, low_inclusive=False)
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"samples must have shape (R,) or (R, d) with R >= 2, got "
                         f"{np.shape(samples)}")
    if not np.all(np.isfinite(x)):
        raise ValueError("samples must be finite (a diverged draw is a failure of its own)")
    R, d = x.shape
    target = np.broadcast_to(np.asarray(truth, dtype=np.float64)
                             + np.asarray(bias, dtype=np.float64), (d,)).copy()
    bound = np.broadcast_to(np.asarray(bias_bound, dtype=np.float64), (d,)).copy()
    if np.any(bound < 0) or not np.all(np.isfinite(bound)):
        raise ValueError("bias_bound must be finite and >= 0")
    mean = x.mean(axis=0)
    se = x.std(axis=0, ddof=1) / np.sqrt(R)
    if method == "bonferroni":
        q = float(t_quantile(1.0 - rate / d, R - 1))
        excess = np.maximum(np.abs(mean - target) - bound, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, excess / se, np.where(excess > 0, np.inf, 0.0))
        stat = float(z.max())
        return MeanTest("Bonferroni-corrected Student-t tests", mean, se, target, bound, stat,
                        q, rate, R, stat > q)
    if method == "hotelling":
        if np.any(bound > 0):
            raise ValueError("method 'hotelling' tests an exact mean: give the bias, not a "
                             "bias_bound (or use method 'bonferroni')")
        if R <= d:
            raise ValueError(f"method 'hotelling' needs more samples than dimensions (R > d); "
                             f"got R = {R}, d = {d}")
        diff = mean - target
        S = np.cov(x, rowvar=False, ddof=1).reshape(d, d)
        T2 = float(R * diff @ np.linalg.solve(S, diff))
        F = (R - d) / (d * (R - 1.0)) * T2
        q = float(fdtri(d, R - d, 1.0 - rate))
        return MeanTest("Hotelling's T²", mean, se, target, bound, F, q, rate, R, F > q)
    raise ValueError(f"method must be one of 'bonferroni', 'hotelling'; got {method!r}")


def assert_mean_matches(samples: Any, truth: Any, *, bias: Any = 0.0, bias_bound: Any = 0.0,
                        false_positive_rate: float = MAX_FALSE_POSITIVE_RATE,
                        method: str = "bonferroni") -> MeanTest:
    """:func:`mean_test`, raising AssertionError when it rejects; returns the test record.
    Several calls in one test add their rates (give each ``rate / number of calls``)."""
    res = mean_test(samples, truth, bias=bias, bias_bound=bias_bound,
                    false_positive_rate=false_positive_rate, method=method)
    if res.rejected:
        raise AssertionError(f"mean differs from truth + stated bias: {res.describe()}")
    return res


def assert_estimate_matches(estimate: Any, se: Any, truth: Any, *, bias_bound: Any = 0.0,
                            false_positive_rate: float = MAX_FALSE_POSITIVE_RATE) -> float:
    """Assert that a Monte Carlo estimate (one number or a vector, e.g. a mean accumulated in
    chunks) with standard error ``se`` agrees with ``truth`` within ``bias_bound`` per
    coordinate: rejected when |estimate - truth| - bias_bound > z·se, with z the two-sided
    normal quantile at 1 - rate/d (Bonferroni over the d coordinates). False-positive rate
    <= ``false_positive_rate`` up to the normal approximation of the estimate. Returns z."""
    rate = require_range("false_positive_rate", false_positive_rate, low=0.0,
                         high=MAX_FALSE_POSITIVE_RATE, low_inclusive=False)
    est = np.atleast_1d(np.asarray(estimate, dtype=np.float64))
    d = est.size
    se_v = np.broadcast_to(np.asarray(se, dtype=np.float64), est.shape)
    target = np.broadcast_to(np.asarray(truth, dtype=np.float64), est.shape)
    bound = np.broadcast_to(np.asarray(bias_bound, dtype=np.float64), est.shape)
    if np.any(se_v < 0) or np.any(bound < 0):
        raise ValueError("se and bias_bound must be >= 0")
    z = z_quantile(1.0 - rate / d)
    excess = np.abs(est - target) - bound
    bad = np.flatnonzero(~(excess <= z * se_v))  # NaN fails too
    if bad.size:
        i = int(bad[0])
        raise AssertionError(
            f"estimate differs from truth: coordinate {i}: {est[i]:.6g} ± {se_v[i]:.2g} (SE) "
            f"vs {target[i]:.6g}" + (f" ± {bound[i]:.3g}" if bound[i] else "")
            + f"; |difference| exceeds {z:.3f} SE (false-positive rate {rate:g}, "
              f"{d} coordinate(s))")
    return z


@dataclass(frozen=True)
class SlopeFit:
    """A fitted log-log slope with its ``level`` confidence interval ``ci``."""

    slope: float
    intercept: float
    se: float
    ci: tuple[float, float]
    level: float
    method: str


def fit_loglog_slope(x: Any, y: Any, *, y_se: Any = None, level: float = 0.999) -> SlopeFit:
    """Slope of log y against log x. Without ``y_se``: ordinary least squares, interval from
    the residuals on n - 2 degrees of freedom (Student t; needs n >= 3 points). With ``y_se``
    (standard errors of the y, e.g. of Monte Carlo means): weighted least squares with weights
    (y/y_se)² (delta method: SE(log y) ≈ y_se/y) and a normal interval, as claim U7 fits its
    rates (docs/checks.rst U7)."""
    level = require_range("level", level, low=0.0, high=1.0, low_inclusive=False,
                          high_inclusive=False)
    lx = np.log(np.asarray(x, dtype=np.float64))
    yv = np.asarray(y, dtype=np.float64)
    if lx.ndim != 1 or yv.shape != lx.shape:
        raise ValueError(f"x and y must be 1-D of the same length, got {lx.shape}, {yv.shape}")
    if np.any(yv <= 0) or not np.all(np.isfinite(lx)):
        raise ValueError("x and y must be positive and finite (their logs are fitted)")
    ly = np.log(yv)
    X = np.column_stack([np.ones_like(lx), lx])
    if y_se is None:
        n = lx.size
        if n < 3:
            raise ValueError(f"an unweighted fit needs at least 3 points for its interval; "
                             f"got {n}")
        beta, *_ = np.linalg.lstsq(X, ly, rcond=None)
        resid = ly - X @ beta
        s2 = float(resid @ resid) / (n - 2)
        cov = np.asarray(s2 * np.linalg.inv(X.T @ X), dtype=np.float64)
        q = float(t_quantile(level, n - 2))
        method = f"ordinary least squares, Student-t interval on {n - 2} df"
    else:
        se_log = np.asarray(y_se, dtype=np.float64) / yv
        if se_log.shape != lx.shape or np.any(se_log <= 0):
            raise ValueError("y_se must be positive, one per point")
        W = 1.0 / se_log**2
        cov = np.asarray(np.linalg.inv(X.T @ (X * W[:, None])), dtype=np.float64)
        beta = cov @ (X.T @ (W * ly))
        q = z_quantile(level)
        method = "weighted least squares (delta-method SE of log y), normal interval"
    se = float(np.sqrt(cov[1, 1]))
    slope = float(beta[1])
    return SlopeFit(slope, float(beta[0]), se, (slope - q * se, slope + q * se), level, method)


def assert_loglog_slope(x: Any, y: Any, expected: float, *, tolerance: float = 0.0,
                        y_se: Any = None, level: float = 0.999) -> SlopeFit:
    """Assert that the fitted log-log slope is compatible with ``expected``: the ``level``
    interval of :func:`fit_loglog_slope` must meet [expected - tolerance, expected +
    tolerance]. False-positive rate <= 1 - level (1e-3 by default) when the data follow a
    power law with a slope in that range (with the fit's error model)."""
    tolerance = require_range("tolerance", tolerance, low=0.0)
    fit = fit_loglog_slope(x, y, y_se=y_se, level=level)
    lo, hi = fit.ci
    if hi < expected - tolerance or lo > expected + tolerance:
        raise AssertionError(
            f"log-log slope {fit.slope:.4f}, {level:.1%} interval [{lo:.4f}, {hi:.4f}] "
            f"({fit.method}), excludes the expected {expected:g} ± {tolerance:g}")
    return fit
