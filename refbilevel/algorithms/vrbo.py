"""VRBO — Variance Reduction Bilevel Optimizer (Yang, Ji, Liang, NeurIPS 2021, Alg. 2;
docs/baselines.rst §13). NumPy reference, batched over replicas, "+z" convention (§0.1).

Double loop, SARAH/SPIDER recursion restarted from a large-batch checkpoint every q outer
iterations, constant steps. Outer iteration k = 1..T from (x_1, y_1) = (x0, y0):

    if (k − 1) mod q = 0:  u = ∇_y G(z_k; S_1),  v = ĥ(z_k; S_1)                [refresh]
    x_{k+1} = x_k − α v
    z̃_{−1} = (x_k, y⁻),  z̃_0 = (x_{k+1}, y_k)
    for t = 0..m (fresh S_2 each step):
        u ← u + ∇_y G(z̃_t; S_2) − ∇_y G(z̃_{t−1}; S_2)
        v ← v + ĥ(z̃_t; S_2) − ĥ(z̃_{t−1}; S_2)                                 [coupled pairs]
        ỹ_{t+1} = ỹ_t − β u,   x̃_{t+1} = x_{k+1}
    y_{k+1} = ỹ_{m+1}

with ĥ the truncated-Neumann hypergradient NS_Q (docs/baselines.rst §11;
:mod:`refbilevel.algorithms.coupled_hypergradient`). Step t = 0 corrects both trackers for the
x move at fixed y (the correction benchmark_bilevel's form misses, §13 deviation (a): it is
present here); steps t ≥ 1 for the y moves; m + 1 y-steps per x-step.

y⁻ (the "previous" y of step t = 0): the PAPER as written takes y⁻ = y_k, while the trackers
were last evaluated at ỹ_m of the previous loop (one y step behind y_k = ỹ_{m+1}), so across
loops without a refresh they lag by the last y step (§13 "Checks"). ``lag_free=True`` takes
y⁻ = ỹ_m of the previous loop (y_k right after a refresh, where the trackers are exact at
z_k), which removes the lag: with full batches the trackers are then exact in every loop.

Checkpoint batch S_1 (§13 reference choice): on a finite-sum oracle the whole data set
(every sample of the refresh bundle is indices 0..n−1: one call of each kind, no sample
drawn); a Gaussian oracle has no data set, so its refresh is one ordinary draw (S_1 = S_2).
Inner batches S_2: the oracle's own (its ``batch_size``, or one noise draw).

Choices where §13 says "recalled" or NOT RECOVERED (docs/baselines.rst §13 "Reference
choices"): constant steps β (y) and α = β/r (x), m, q, Q, η are options (their theorem values
NOT RECOVERED, so no ``mode="theory"``); no projection; last iterate as output.

Random-number order per outer iteration (parity with :mod:`~refbilevel.algorithms.
vrbo_numba`): [refresh: the ∇_y G sample, then ĥ's bundle (outer sample, Q HVP samples, JVP
sample) — nothing on a finite-sum oracle], then for t = 0..m the ∇_y G sample and ĥ's bundle.

Oracle calls per outer iteration (§13 PAPER; :func:`vrbo_counts`): (m + 1) × (∇_y G 2,
∇_y F 2, ∇_x F 2, HVP 2Q, JVP 2), plus at a refresh ∇_y G 1, ∇_y F 1, ∇_x F 1, HVP Q, JVP 1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.coupled_hypergradient import (
    NeumannSeries,
    coupled_hypergradients,
    coupled_lower_gradients,
)
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def vrbo_params(step_size, outer_ratio, period, n_inner_steps, neumann_step, n_neumann_steps,
                lag_free) -> tuple[float, float, int, int, NeumannSeries, dict[str, Any]]:
    """(β, α, q, m, series, params), validated."""
    beta = B.positive("step_size", step_size)
    r = B.positive("outer_ratio", outer_ratio)
    q = require_int("period", period, low=1)
    m = require_int("n_inner_steps", n_inner_steps, low=0)
    series = NeumannSeries("truncated", n_neumann_steps, neumann_step)
    if not isinstance(lag_free, (bool, np.bool_)):
        raise ValueError(f"lag_free must be True or False; got {lag_free!r}")
    params = {"step_size": beta, "outer_ratio": r, "period": q, "n_inner_steps": m,
              "neumann_step": series.eta, "n_neumann_steps": series.length,
              "lag_free": bool(lag_free)}
    return beta, beta / r, q, m, series, params


@register("algorithm", "vrbo", "numpy")
def run_vrbo(oracle, x0, y0, *, T: int, step_size: float = 0.1, outer_ratio: float = 1.0,
             period: int = 5, n_inner_steps: int = 10, neumann_step: float = 0.1,
             n_neumann_steps: int = 10, lag_free: bool = False, record_every: int = 1,
             seed: int | None = None) -> Trace:
    """Run VRBO for T outer iterations from (x0, y0) (R replicas); see the module docstring.
    Defaults: benchmark_bilevel's (docs/baselines.rst §13 CODE: s = 0.1, r = 1, m = 10,
    Q = 10, Neumann step tied to s; q = 5, the period of its best quadratic configuration)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    beta, alpha, q, m, series, params = vrbo_params(
        step_size, outer_ratio, period, n_inner_steps, neumann_step, n_neumann_steps, lag_free)
    x, y, R = B.start_points(oracle, x0, y0)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    u = np.zeros_like(y)
    v = np.zeros_like(x)
    y_last = y.copy()  # ỹ_m of the previous loop: where the trackers were last evaluated
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            un, vn = u, v
            if (k - 1) % q == 0:
                un = coupled_lower_gradients(oracle, [(x, y)], full_batch=True)[0]
                vn = coupled_hypergradients(oracle, [(x, y)], series, bad, full_batch=True).h[0]
                y_prev = y
            else:
                y_prev = y_last if params["lag_free"] else y
            xn = x - alpha * vn
            x_prev = x
            yt = y
            for _ in range(m + 1):
                pts = [(xn, yt), (x_prev, y_prev)]
                g = coupled_lower_gradients(oracle, pts)
                h = coupled_hypergradients(oracle, pts, series, bad).h
                un = un + g[0] - g[1]
                vn = vn + h[0] - h[1]
                x_prev, y_prev = xn, yt
                yt = B.guard(yt - beta * un, bad)
            x, y, u, v, y_last = B.freeze(rec, k, (xn, yt, un, vn, y_prev),
                                          (x, y, u, v, y_last), bad)
            rec.record(k, x, y, oracle.counts, force=k == T)
        return rec.finish("vrbo", "numpy", params, seed)


# ---- oracle counts (claim X3) -------------------------------------------------------------------
def vrbo_counts(iterations, period: int, n_inner_steps: int, n_neumann_steps: int
                ) -> dict[str, np.ndarray]:
    """Cumulative calls after each outer iteration in ``iterations`` (module docstring)."""
    its = np.asarray(iterations, dtype=np.int64)
    refreshes = (its + period - 1) // period  # iterations 1, q + 1, 2q + 1, ... refresh
    steps = 2 * (n_inner_steps + 1) * its
    one = steps + refreshes
    zero = 0 * its
    return {"grad_y_g": one, "grad_y_f": one, "grad_x_f": one, "jvp": one,
            "hvp": n_neumann_steps * one, "grad_x_g": zero, "gen_hvp": zero, "f_u": zero}


def _vrbo_paper_counts(trace, problem) -> dict[str, np.ndarray]:
    p = trace.params
    return vrbo_counts(trace.iterations, int(p["period"]), int(p["n_inner_steps"]),
                       int(p["n_neumann_steps"]))


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc) -> dict[str, Any]:
    """VRBO "default" (docs/baselines.rst §13 "Reference choices"), from μ, L_y, L_φ (global):
    the y step β = 1/L_y and m + 1 = ⌈κ⌉ y-steps per x-step (each contracts the LL error by
    1 − 1/κ, as stocBiO's D = ⌈κ⌉ warm-started steps, §2); the x step α = 1/L_φ (a
    double-loop method: gradient descent on φ, as stocBiO's default β = 1/L_Φ); Q = ⌈κ ln 1e3⌉
    (NS_Q's bias (1 − 1/κ)^{Q+1} ≤ 1e-3: each inner step evaluates two NS_Q, so Q sets the
    cost); q = ⌈√K⌉ for the
    default horizon K (the theorem's q = Θ(ε^{-1/2}) with K = Θ(ε^{-1})); the lag-free
    indexing (with exact oracles the trackers are then exact)."""
    k = sc.kappa
    T = _horizon(sc, None)
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": sc.L_phi / sc.L_y,
            "period": int(math.ceil(math.sqrt(T))), "n_inner_steps": max(0, math.ceil(k) - 1),
            "neumann_step": 1.0 / sc.L_y, "n_neumann_steps": int(math.ceil(k * math.log(1e3))),
            "lag_free": True}


def _horizon(sc, options) -> int:
    """ln(1e3) L_φ/m_φ: gradient descent with step 1/L_φ."""
    from refbilevel.solver_record import horizon

    return horizon(sc.m_phi / sc.L_phi)


def _record():
    from refbilevel.solver_record import (
        LIPSCHITZ_HYPERGRADIENT,
        LOWER_LEVEL_GRADIENTS,
        PHI_BOUNDED_BELOW,
        SMOOTH_LL,
        STRONGLY_CONVEX_LL,
        SolverRecord,
        StepConstants,
        register_solver,
    )

    def defaults(problem, mode):
        if mode == "theory":
            raise ValueError("vrbo has no mode='theory': the constants of its theorem (m, α, "
                             "β, q, S_1, S_2) are NOT RECOVERED (docs/baselines.rst §13); use "
                             "mode='default' or 'paper'")
        return _default_options(StepConstants.of(problem)) if mode == "default" else {}

    def default_T(problem, mode, options):
        return _horizon(StepConstants.of(problem), options) if mode == "default" else 1000

    def invoke(run, inputs):
        return run(inputs.oracle, inputs.x0, inputs.y0, T=inputs.T,
                   record_every=inputs.record_every, seed=inputs.seed, **inputs.options)

    return register_solver(SolverRecord(
        name="vrbo", reference="docs/baselines.rst §13",
        assumptions=(LOWER_LEVEL_GRADIENTS, STRONGLY_CONVEX_LL, SMOOTH_LL,
                     LIPSCHITZ_HYPERGRADIENT, PHI_BOUNDED_BELOW),
        options=B.baseline_options(run_vrbo), defaults=defaults, default_T=default_T,
        invoke=invoke, step_options=("step_size",), parity=lambda: dict(B.PARITY_QUADRATIC),
        paper_counts=_vrbo_paper_counts,
        counts_reference="docs/baselines.rst §13 (PAPER: (m + 1) × (∇_y G 2, ∇_y F 2, "
                         "∇_x F 2, HVP 2Q, JVP 2) per outer iteration, plus ∇_y G, ∇_y F, "
                         "∇_x F, JVP 1 and Q HVPs per refresh)"))


SOLVER = _record()
