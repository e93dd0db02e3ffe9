"""Confidence intervals for the measured values of theory-check verdicts.

Every random quantity a verdict reports (one that depends on the seed: Monte Carlo means,
stochastic runs, counts over replicas) comes with an interval at a stated level and the
method that produced it; every deterministic one says so (:data:`EXACT`). Each check lists
which is which under ``measured["uncertainty"]``.

The helpers return JSON-able dicts with the keys ``ci`` ([low, high]), ``level`` (e.g.
0.999) and ``method``, plus what they estimate. Randomness (the bootstrap) comes only from
a Generator passed in, built by the check from its seed with
:func:`refbilevel.randomness.named_stream`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

LEVEL = 0.999  # the default level of the checks' intervals
EXACT = "exact (deterministic computation, no sampling)"
EXACT_AT_PROBES = ("exact at each probed point (closed-form evaluation, no sampling error); "
                   "the points are a seeded random search, so the worst value over them can "
                   "only understate the true worst case and is not an estimate with an "
                   "interval; see violation_frequency for what the search rules out")


def z_quantile(level: float = LEVEL) -> float:
    """Two-sided normal quantile: P(|Z| <= z) = level."""
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def t_quantile(level: float, df):
    """Two-sided Student-t quantile on ``df`` degrees of freedom (array-friendly)."""
    from scipy.special import stdtrit  # scipy.stats costs seconds to import

    q = stdtrit(df, 0.5 + level / 2.0)
    return float(q) if np.ndim(q) == 0 else q


def z_level(z: float) -> float:
    """The two-sided level P(|Z| <= z) of a ±z standard-error interval."""
    return 1.0 - 2.0 * NormalDist().cdf(-z)


def normal_ci(estimate: float, se: float, *, z: float | None = None, level: float = LEVEL,
              method: str = "normal approximation, estimate ± z SE") -> dict:
    """estimate ± z·se, with z from ``level`` (or ``level`` from a given ``z``)."""
    if z is None:
        z = z_quantile(level)
    else:
        level = z_level(z)
    return {"estimate": float(estimate), "se": float(se),
            "ci": [float(estimate - z * se), float(estimate + z * se)],
            "level": level, "method": f"{method} (z = {z:.3f})"}


def mean_ci(samples, level: float = LEVEL, *, what: str = "replicas") -> dict:
    """Mean of independent replicas and its interval, mean ± q·sd/√n, with q the Student-t
    quantile on n − 1 degrees of freedom (the normal quantile for large n; t keeps the level
    honest for the few replicas of quick mode). Non-finite replicas are left out and
    counted."""
    x = np.asarray(samples, dtype=float).ravel()
    finite = x[np.isfinite(x)]
    n = int(finite.size)
    out = {"n": n, "non_finite": int(x.size - n), "level": level,
           "method": f"Student-t interval over {n} independent {what} (mean ± t_(n-1) SE)"}
    if n == 0:
        return {**out, "mean": float("nan"), "se": float("nan"),
                "ci": [float("nan"), float("nan")]}
    mean = float(finite.mean())
    if n < 2:
        return {**out, "mean": mean, "se": float("nan"), "ci": [float("nan"), float("nan")]}
    se = float(finite.std(ddof=1) / math.sqrt(n))
    q = t_quantile(level, n - 1)
    return {**out, "mean": mean, "se": se, "ci": [mean - q * se, mean + q * se]}


def binomial_ci(k: int, n: int, level: float = LEVEL, *, event: str = "event") -> dict:
    """Clopper-Pearson (exact binomial) interval for the probability of ``event`` after
    ``k`` occurrences in ``n`` independent trials."""
    from scipy.special import betaincinv  # scipy.stats costs seconds to import

    k, n = int(k), int(n)
    a = 1.0 - level
    lo = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, a / 2))
    hi = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - a / 2))
    return {"event": event, "count": k, "n": n, "rate": k / n if n else float("nan"),
            "ci": [lo, hi], "level": level,
            "method": "Clopper-Pearson exact binomial interval over independent trials"}


def bootstrap_ci(samples, statistic: Callable[[np.ndarray], float],
                 rng: np.random.Generator, level: float = LEVEL, n_boot: int = 2000,
                 *, what: str = "replicas") -> dict:
    """Percentile bootstrap over the rows of ``samples`` (independent replicas)."""
    x = np.asarray(samples)
    idx = rng.integers(0, x.shape[0], (n_boot, x.shape[0]))
    boot = np.array([statistic(x[i]) for i in idx])
    a = 1.0 - level
    return {"estimate": float(statistic(x)),
            "ci": [float(np.quantile(boot, a / 2)), float(np.quantile(boot, 1 - a / 2))],
            "level": level,
            "method": f"percentile bootstrap over {x.shape[0]} {what}, {n_boot} resamples, "
                      "Generator from the check's seed"}


def pointwise_mean_band(values, level: float = LEVEL, axis: int = -1):
    """(mean, low, high) along ``axis`` (replicas): the Student-t interval of the mean at
    every point, for figure bands (NaNs ignored)."""
    v = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points (diverged runs)
        n = np.sum(np.isfinite(v), axis=axis)
        mean = np.nanmean(v, axis=axis)
        se = np.nanstd(v, axis=axis, ddof=1) / np.sqrt(n)
        q = t_quantile(level, np.maximum(n - 1, 1))
    return mean, mean - q * se, mean + q * se


def brief(interval: dict) -> dict:
    """An interval without its ``level``, ``method`` and ``event`` (stated once elsewhere in
    the verdict, e.g. under ``measured["uncertainty"]``), for long per-row lists."""
    return {k: v for k, v in interval.items() if k not in ("level", "method", "event")}
