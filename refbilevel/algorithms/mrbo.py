"""MRBO — Momentum-based Recursive Bilevel Optimizer (Yang, Ji, Liang, NeurIPS 2021, Alg. 1;
docs/baselines.rst §12). NumPy reference, batched over replicas, "+z" convention (§0.1).

Single loop with recursive (STORM) momentum on the lower-level gradient (tracker u) and on the
hypergradient (tracker v), t = 1..T from z_1 = (x0, y0):

    t = 1:  u_1 = ∇_y G(z_1; b_1),  v_1 = ĥ(z_1; B_1)                        (plain estimators)
    t ≥ 2:  u_t = ∇_y G(z_t; b_t) + (1 − a^y_t)(u_{t−1} − ∇_y G(z_{t−1}; b_t))
            v_t = ĥ(z_t; B_t) + (1 − a^x_t)(v_{t−1} − ĥ(z_{t−1}; B_t))      [coupled pairs]
    x_{t+1} = x_t − (s/r) η_t v_t,   y_{t+1} = y_t − s η_t u_t               (simultaneous)

with ĥ the truncated-Neumann hypergradient NS_Q of docs/baselines.rst §11
(:mod:`refbilevel.algorithms.coupled_hypergradient`), the same sample bundle at z_t and
z_{t−1}. The schedule (§12 PAPER, recalled: η_k = d/(m + k)^{1/3}, α_{k+1} = c_1 η_k²,
β_{k+1} = c_2 η_k²) is written normalized to η_1 = 1:

    η_t = ((m + 1)/(m + t))^{1/3},   a^x_t = c_x η_{t−1}²,   a^y_t = c_y η_{t−1}²  (t ≥ 2),

i.e. ``step_size`` s = λ d/(m+1)^{1/3}, ``outer_ratio`` r = λ/γ, c_x = c_1 d²/(m+1)^{2/3};
every momentum weight is ≤ 1 exactly when c_x, c_y ≤ 1 (the paper's condition m ≥ ... on the
offset, in this normalization). The weight of step t uses η_{t−1}: the one-step lag of the
paper's α_{k+1} = c_1 η_k² (benchmark_bilevel uses the current t).

Choices where docs/baselines.rst §12 says "recalled" or NOT RECOVERED (documented in
docs/baselines.rst §12 "Reference choices"): the PAPER form above (plain estimators at the first
iteration, not the benchmark's zero-memory start; a fresh JVP sample, not the ∇_y G batch;
separate c_x, c_y; offset m); no projection; the output is the last iterate (the trace holds
every recorded iterate, so a uniformly drawn one can be taken from it). The theorem's
constants are NOT RECOVERED, so there is no ``mode="theory"``.

Random-number order per iteration (the parity contract with :mod:`~refbilevel.algorithms.
mrbo_numba`): the ∇_y G sample, then the bundle of ĥ (outer sample, Q HVP samples, JVP
sample; :mod:`~refbilevel.algorithms.coupled_hypergradient`).

Oracle calls per iteration (docs/baselines.rst §12, PAPER = CODE): t ≥ 2: ∇_y G 2, ∇_y F 2,
∇_x F 2, HVP 2Q, JVP 2; t = 1 half of that (:func:`recursive_momentum_counts`).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.coupled_hypergradient import (
    NeumannSeries,
    coupled_hypergradients,
    coupled_lower_gradients,
)
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_range


class MomentumSchedule(NamedTuple):
    """Per-iteration steps and momentum weights of MRBO/SUSTAIN, index t − 1 for t = 1..T:
    y step ``lr_y``, x step ``lr_x``, momentum weights ``a_x`` (hypergradient tracker) and
    ``a_y`` (LL tracker; entry 0 unused: plain estimators at t = 1)."""

    lr_y: np.ndarray
    lr_x: np.ndarray
    a_x: np.ndarray
    a_y: np.ndarray


def momentum_schedule(T: int, step_size, outer_ratio, offset, momentum_x, momentum_y
                      ) -> tuple[MomentumSchedule, dict[str, Any]]:
    """The validated schedule of the module docstring and its params record."""
    s = B.positive("step_size", step_size)
    r = B.positive("outer_ratio", outer_ratio)
    m = require_range("offset", offset, low=0.0)
    c_x = require_range("momentum_x", momentum_x, low=0.0, high=1.0, low_inclusive=False)
    c_y = require_range("momentum_y", momentum_y, low=0.0, high=1.0, low_inclusive=False)
    t = np.arange(1, T + 1, dtype=np.float64)
    eta = ((m + 1.0) / (m + t)) ** (1.0 / 3.0)
    prev = np.concatenate([[1.0], eta[:-1]])
    sched = MomentumSchedule(s * eta, (s / r) * eta, c_x * prev**2, c_y * prev**2)
    params = {"step_size": s, "outer_ratio": r, "offset": m, "momentum_x": c_x,
              "momentum_y": c_y}
    return sched, params


def recursive_momentum_bilevel(oracle, x0, y0, *, T: int, series: NeumannSeries,
                               sched: MomentumSchedule, params: dict[str, Any], name: str,
                               record_every: int, seed) -> Trace:
    """The MRBO/SUSTAIN loop (module docstring) with the Neumann ``series`` of ĥ."""
    x, y, R = B.start_points(oracle, x0, y0)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    u = np.zeros_like(y)
    v = np.zeros_like(x)
    xp, yp = x.copy(), y.copy()
    ps = np.zeros((T, R), dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            pts = [(x, y)] if t == 1 else [(x, y), (xp, yp)]
            g = coupled_lower_gradients(oracle, pts)
            est = coupled_hypergradients(oracle, pts, series, bad)
            if est.p is not None:
                ps[t - 1] = est.p
            if t == 1:
                un, vn = g[0], est.h[0]
            else:
                un = g[0] + (1.0 - sched.a_y[t - 1]) * (u - g[1])
                vn = est.h[0] + (1.0 - sched.a_x[t - 1]) * (v - est.h[1])
            xn = x - sched.lr_x[t - 1] * vn
            yn = y - sched.lr_y[t - 1] * un
            x, y, u, v, xp, yp = B.freeze(rec, t, (xn, yn, un, vn, x, y),
                                          (x, y, u, v, xp, yp), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        extra = {"hia_p": ps} if series.randomized else {}
        return rec.finish(name, "numpy", params, seed, **extra)


def mrbo_series(neumann_step, n_neumann_steps) -> NeumannSeries:
    return NeumannSeries("truncated", n_neumann_steps, neumann_step)


@register("algorithm", "mrbo", "numpy")
def run_mrbo(oracle, x0, y0, *, T: int, step_size: float = 0.1, outer_ratio: float = 1.0,
             offset: float = 0.0, momentum_x: float = 0.5, momentum_y: float = 0.5,
             neumann_step: float = 0.1, n_neumann_steps: int = 10, record_every: int = 1,
             seed: int | None = None) -> Trace:
    """Run MRBO for T iterations from (x0, y0) (R replicas); see the module docstring.
    Defaults: benchmark_bilevel's (docs/baselines.rst §12 CODE: s = 0.1, r = 1, momentum
    eta = 0.5, Q = 10, Neumann step tied to s, schedule exponents 1/3 and 2/3 from t = 1, i.e.
    offset 0)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    series = mrbo_series(neumann_step, n_neumann_steps)
    sched, params = momentum_schedule(T, step_size, outer_ratio, offset, momentum_x,
                                      momentum_y)
    params.update(neumann_step=series.eta, n_neumann_steps=series.length)
    return recursive_momentum_bilevel(oracle, x0, y0, T=T, series=series, sched=sched,
                                      params=params, name="mrbo", record_every=record_every,
                                      seed=seed)


# ---- oracle counts (claim X3) -------------------------------------------------------------------
def recursive_momentum_counts(iterations, hvp_per_point) -> dict[str, np.ndarray]:
    """Cumulative calls after each iteration in ``iterations`` (docs/baselines.rst §12, §14): one
    point at t = 1, two after (k_t = 1, 2, 2, ...), per point ∇_y G 1, ∇_y F 1, ∇_x F 1, JVP 1
    and ``hvp_per_point[t − 1]`` HVPs (Q, or the realized p_t)."""
    its = np.asarray(iterations, dtype=np.int64)
    T = int(its.max()) if its.size else 0
    k = np.full(T, 2, dtype=np.int64)
    if T:
        k[0] = 1
    cum = np.concatenate([[0], np.cumsum(k)])[its]
    hvp = np.concatenate([[0], np.cumsum(k * np.asarray(hvp_per_point, dtype=np.int64)[:T])])
    return {"grad_y_g": cum, "grad_y_f": cum, "grad_x_f": cum, "jvp": cum, "hvp": hvp[its],
            "grad_x_g": 0 * its, "gen_hvp": 0 * its, "f_u": 0 * its}


def _mrbo_counts(trace, problem) -> dict[str, np.ndarray]:
    T = int(np.max(trace.iterations))
    return recursive_momentum_counts(trace.iterations,
                                     np.full(T, int(trace.params["n_neumann_steps"])))


# ---- solver record ------------------------------------------------------------------------------
PAPER_HORIZON = 1000


def momentum_defaults(sc) -> dict[str, float]:
    """The "default" steps and weights shared by MRBO and SUSTAIN (docs/baselines.rst §12, §14
    "Reference choices"), from the global constants μ, L_y, L_φ:

    * y step s = 1/L_y (the LL gradient step; η ≤ 1/L_g for the Neumann step too);
    * x step γ = min(μ/(L_y L_φ), 1/(4 L_φ)) (:func:`~refbilevel.algorithms._baselines.
      single_loop_outer_step`: a simultaneous single-loop method needs x slower than y by
      μ/L_φ), i.e. ``outer_ratio`` = 1/(L_y γ);
    * offset m = γ^{-3} (as FdeHBO's default, docs/fdehbo.rst §7: over the default horizon
      t ≪ m, so the steps stay within a few per cent of their start);
    * momentum weights a = c η² with c = (γ L_φ)² ≤ 1/16: STORM's weight ∝ step² with the
      step measured in units of 1/L_φ (the dimensionless form of the papers' c η_k²). A small
      weight is what averages the estimator's noise; with exact oracles MRBO's trackers are
      exact whatever the weight (docs/baselines.rst §12 "Checks")."""
    g = B.single_loop_outer_step(sc)
    c = (g * sc.L_phi) ** 2
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * g), "offset": g**-3.0,
            "momentum_x": c, "momentum_y": c, "neumann_step": 1.0 / sc.L_y}


def momentum_record(name: str, run, reference: str, series_defaults, paper_counts,
                    counts_reference: str, horizon_scale: float = 1.0):
    """The SolverRecord of MRBO or SUSTAIN: "default" = :func:`momentum_defaults` updated by
    ``series_defaults(sc)`` (the Neumann length, and what the method sets otherwise),
    "paper" = the implementation's (benchmark_bilevel) defaults, no "theory" (constants NOT
    RECOVERED)."""
    from refbilevel.solver_record import (
        LIPSCHITZ_HYPERGRADIENT,
        LOWER_LEVEL_GRADIENTS,
        PHI_BOUNDED_BELOW,
        SMOOTH_LL,
        STRONGLY_CONVEX_LL,
        SolverRecord,
        StepConstants,
        horizon,
        register_solver,
    )

    def defaults(problem, mode):
        if mode == "theory":
            raise ValueError(f"{name} has no mode='theory': the constants of its theorem are "
                             f"NOT RECOVERED ({reference}); use mode='default' or 'paper'")
        if mode == "paper":
            return {}
        sc = StepConstants.of(problem)
        return {**momentum_defaults(sc), **series_defaults(sc)}

    def default_T(problem, mode, options):
        if mode != "default":
            return PAPER_HORIZON
        sc = StepConstants.of(problem)
        gamma = float(options["step_size"]) / float(options["outer_ratio"])
        return horizon(gamma * sc.m_phi, horizon_scale)

    def invoke(run, inputs):
        return run(inputs.oracle, inputs.x0, inputs.y0, T=inputs.T,
                   record_every=inputs.record_every, seed=inputs.seed, **inputs.options)

    return register_solver(SolverRecord(
        name=name, reference=reference,
        assumptions=(LOWER_LEVEL_GRADIENTS, STRONGLY_CONVEX_LL, SMOOTH_LL,
                     LIPSCHITZ_HYPERGRADIENT, PHI_BOUNDED_BELOW),
        options=B.baseline_options(run), defaults=defaults, default_T=default_T,
        invoke=invoke, step_options=("step_size",), parity=lambda: dict(B.PARITY_QUADRATIC),
        paper_counts=paper_counts, counts_reference=counts_reference))


def _mrbo_series_defaults(sc) -> dict[str, int]:
    """Q = ⌈κ ln 1e3⌉ (Q = Θ(κ log 1/ε): NS_Q's bias (1 − 1/κ)^{Q+1} ≤ 1e-3 at η = 1/L_y;
    two NS_Q per iteration, so Q sets the cost)."""
    return {"n_neumann_steps": int(math.ceil(sc.kappa * math.log(1e3)))}


SOLVER = momentum_record(
    "mrbo", run_mrbo, "docs/baselines.rst §12", _mrbo_series_defaults, _mrbo_counts,
    "docs/baselines.rst §12 (PAPER = CODE: t ≥ 2 ∇_y G 2, ∇_y F 2, ∇_x F 2, HVP 2Q, JVP 2; "
    "t = 1 half)")
