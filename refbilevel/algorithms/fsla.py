"""FSLA — Fully Single Loop Algorithm (Li, Gu, Huang, AAAI 2022, arXiv 2112.04660;
docs/baselines.rst §15). NumPy reference, batched over replicas, "+z" convention.

The implicit term is a state variable v (≈ [∇²_yy g]^{-1}∇_y f), updated once per iteration by
one step of the linear-system recursion and alternated with single updates of y and x; the
outer direction is a STORM recursive-momentum estimate. The paper's box is NOT RECOVERED
(§15); this is the benchmark_bilevel form (CODE), the §15 reference. Iteration t = 1..T:

    1. y_{t+1} = y_t − ρ_t ∇_y G(x_t, y_t; b_1)
    2. v_{t+1} = v_t − ρ_t (∇²_yy G(x_t, y_{t+1}; b_2) v_t − ∇_y F(x_t, y_{t+1}; b'_1))
    3. ν_t  = ∇_x F(x_t, y_{t+1}; b'_2) − ∇²_xy G(x_t, y_{t+1}; b_3) v_{t+1}
       ν'_t = ∇_x F(x_p, y_t; b'_2) − ∇²_xy G(x_p, y_t; b_3) v_t           (coupled pair)
    4. d_t = ν_t + (1 − a_t)(d_{t−1} − ν'_t)
    5. x_{t+1} = x_t − γ_t d_t,   x_p ← x_t

(Gauss–Seidel order: y first, then v at the new y, then ν at the new (y, v).) ν'_t sits where
ν_{t−1} was evaluated, with the same samples b'_2, b_3 as ν_t: one outer and one inner
sample per iteration evaluated at two points (``sample=``: the same minibatch, or the same
Gaussian noise block). Start: v_1 = 0 and ``init_memory``:

- ``"plain"`` (default): x_p = x_1 and d_0 = ν'_1, so d_1 = ν_1 — the recursion starts from
  the plain estimate (ν'_1 is still evaluated, so every iteration costs the same);
- ``"zero"`` (benchmark_bilevel CODE): d_0 = 0 and x_p = 0, so d_1 = ν_1 − (1 − a_1)
  ∇_x F(0, y_1; b'_2), a spurious correction (§15) kept only to reproduce the benchmark.

Schedules (CODE): ρ_t = s/t^{e_in} (y and v), a_t = c_a/t^{e_in} with c_a = ``momentum``
(default: tied to s, as the benchmark), γ_t = (s/r)/t^{e_out}; benchmark exponents
(0.5, 0.5), s = 0.1, r = 1. c_a ≤ 1 is required (1 − a_t ≥ 0).

Oracle calls per iteration (X3; §15 CODE): grad_y_g 1, hvp 1, grad_y_f 1, grad_x_f 2,
jvp 2 (benchmark plot count (4, 3)). Random-number order: b_1, b_2, b'_1 (each drawn by its
call), then b'_2 (``oracle.draw("grad_x_f")``) and b_3 (``oracle.draw("jvp")``).
``mode="theory"``: the paper's schedule and constants are NOT RECOVERED (§15): it raises.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_range

INIT_MEMORY = ("plain", "zero")


def fsla_params(mode, step_size, outer_ratio, exponents, momentum, init_memory):
    """The validated params record of a run (both backends)."""
    B.require_mode(mode)
    if mode == "theory":
        raise ValueError(
            "FSLA mode='theory': the paper's algorithm box, schedules and constants are NOT "
            "RECOVERED (docs/baselines.rst §15); use mode='tuned' (the benchmark form) or "
            "solve(..., mode='default')")
    if init_memory not in INIT_MEMORY:
        raise ValueError(f"init_memory must be one of {', '.join(map(repr, INIT_MEMORY))}; "
                         f"got {init_memory!r}")
    s = B.positive("step_size", step_size)
    r = B.positive("outer_ratio", outer_ratio)
    e_in, e_out = B.exponent_pair(exponents)
    c_a = require_range("momentum", s if momentum is None else momentum, low=0.0, high=1.0,
                        low_inclusive=False)
    return {"mode": mode, "step_size": s, "outer_ratio": r, "exponents": (e_in, e_out),
            "momentum": c_a, "init_memory": init_memory}


def schedule(params, t: int) -> tuple[float, float, float]:
    """(ρ_t, a_t, γ_t) of iteration t = 1, 2, ..."""
    s = params["step_size"]
    e_in, e_out = params["exponents"]
    return (B.decay(s, e_in, t), B.decay(params["momentum"], e_in, t),
            B.decay(s / params["outer_ratio"], e_out, t))


@register("algorithm", "fsla", "numpy")
def run_fsla(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
             outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
             momentum: float | None = None, init_memory: str = "plain",
             record_every: int = 1, seed: int | None = None) -> Trace:
    """Run FSLA for T iterations from (x0, y0) (R replicas); see the module docstring. The
    final v is in ``trace.extra["v"]``."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = fsla_params(mode, step_size, outer_ratio, exponents, momentum, init_memory)
    x, y, R = B.start_points(oracle, x0, y0)
    v = np.zeros_like(y)
    d = np.zeros_like(x)
    xp = x.copy() if init_memory == "plain" else np.zeros_like(x)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            rho, a, gamma = schedule(params, t)
            bad = np.zeros(R, dtype=bool)
            yn = B.guard(y - rho * oracle.grad_y_g(x, y), bad)
            hv = oracle.hvp_yy_g(x, yn, v)
            vn = B.guard(v - rho * (hv - oracle.grad_y_f(x, yn)), bad)
            bx, bj = oracle.draw("grad_x_f", (R,)), oracle.draw("jvp", (R,))
            nu = oracle.grad_x_f(x, yn, sample=bx) - oracle.jvp_xy_g(x, yn, vn, sample=bj)
            nu_prev = oracle.grad_x_f(xp, y, sample=bx) - oracle.jvp_xy_g(xp, y, v, sample=bj)
            if t == 1 and init_memory == "plain":
                d = nu_prev
            dn = nu + (1.0 - a) * (d - nu_prev)
            xn = x - gamma * dn
            x, y, v, d, xp = B.freeze(rec, t, (xn, yn, vn, dn, x), (x, y, v, d, xp), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("fsla", "numpy", params, seed, v=v)


# ---- solver record ------------------------------------------------------------------------------
#: the constant momentum weight of the default (see _default_options)
DEFAULT_MOMENTUM = 0.5


def _default_options(sc):
    """FSLA "default" (docs/baselines.rst §15; the paper's constants are NOT RECOVERED, these
    are ours). Constants μ, L_y, L_φ, m_φ (global; :class:`~refbilevel.solver_record.
    StepConstants`). The benchmark's schedules s/√t taken constant (their deterministic
    limit, as SOBA's default, §4): ρ = 1/L_y for y and v (each recursion contracts by
    1 − μ/L_y), γ = min(ρμ/L_φ, 1/(4L_φ)) (:func:`~refbilevel.algorithms._baselines.
    single_loop_outer_step`: FSLA is a sequential SOBA with a tracked direction), a constant
    momentum weight a = 1/2 (at full batch the tracker is exact for every a ∈ (0, 1], §15
    check (ii); 1/2 keeps half the recursive correction), ``init_memory="plain"``."""
    gamma = B.single_loop_outer_step(sc)
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * gamma),
            "exponents": (0.0, 0.0), "momentum": DEFAULT_MOMENTUM, "init_memory": "plain"}


def _horizon(sc, options):
    """ln(1e3)/(γ m_φ)."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi)


SOLVER = B.baseline_record("fsla", run_fsla, "docs/baselines.rst §15", _default_options,
                           _horizon)
