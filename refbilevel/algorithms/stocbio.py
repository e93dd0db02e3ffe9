"""stocBiO (Ji, Yang, Liang, ICML 2021; docs/baselines.rst §2). NumPy reference, batched over
replicas, "+z" convention (docs/baselines.rst §0.1).

Per outer iteration k:

1. D warm-started SGD steps on the lower level at x_k: y ← y − α ∇_y G(x_k, y; S_t);
2. one outer sample: v_0 = ∇_y F(x_k, y; D_F), u = ∇_x F(x_k, y; D_F);
3. Neumann series with Q HVPs on independent samples B_j (the PAPER formula):
   u_0 = v_0, s_0 = v_0, u_j = u_{j−1} − η ∇²_yy G(x_k, y; B_j) u_{j−1}, s_j = s_{j−1} + u_j,
   z = η s_Q (Q + 1 terms; not the BO-REP group's quirk, §2 CODE);
4. x_{k+1} = x_k − β (∇_x F − ∇²_xy G(x_k, y; D_G) z).

(The estimator module's ``neumann_hypergradient(truncation="fixed")`` computes the same
series; it is not called here because it draws ∇_x F and ∇_y F as two samples, while
stocBiO — and the benchmark — uses one outer sample D_F for both.)

Oracle calls per iteration (X3; docs/baselines.rst §0.2 "(21, 2)" for D = Q = 10): grad_y_g D,
hvp Q, jvp 1 (D + Q + 1 inner), grad_y_f 1, grad_x_f 1. GaussianOracle draw order (the Numba
kernel reproduces it): D × ∇_y G, ∇_y F, ∇_x F, Q × HVP, JVP.

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §2): constant α = η = s, β = s/r; defaults s = 0.1,
  r = 1, D = Q = 10. Caution (§2): η = s must be < 2/L_g for the series to converge.
- ``"theory"`` (PAPER, §2, recalled): α = 2/(L_g + μ), η = 1/L_g (the boundary of η ≤ 1/L_g),
  β = c_beta / L_Φ with L_Φ = ``constants.L_phi2``; the constant c_beta of β = Θ(1/L_Φ) is
  NOT RECOVERED (pass ``theory_constants={"c_beta": ...}``). D and Q stay explicit
  (Q = Θ(κ log 1/ε) with an unrecovered constant).
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def stocbio_params(oracle, mode, step_size, outer_ratio, n_inner_steps, n_neumann_steps,
                   theory_constants):
    """(alpha, eta, beta, D, Q, params) for both backends."""
    B.require_mode(mode)
    D = require_int("n_inner_steps", n_inner_steps, low=0)
    Q = require_int("n_neumann_steps", n_neumann_steps, low=0)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        params = {"mode": mode, "step_size": s, "outer_ratio": r, "n_inner_steps": D,
                  "n_neumann_steps": Q}
        return s, s, s / r, D, Q, params
    c = B.theory_constants("stocBiO", "§2", theory_constants, ("c_beta",))
    mu = B.problem_constant(oracle, "mu", "stocBiO", "§2")
    L = B.problem_constant(oracle, "L_y", "stocBiO", "§2")
    L_phi = B.problem_constant(oracle, "L_phi2", "stocBiO", "§2")
    alpha, eta, beta = 2.0 / (L + mu), 1.0 / L, c["c_beta"] / L_phi
    params = {"mode": mode, **c, "alpha": alpha, "eta": eta, "beta": beta, "n_inner_steps": D,
              "n_neumann_steps": Q}
    return alpha, eta, beta, D, Q, params


@register("algorithm", "stocbio", "numpy")
def run_stocbio(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                outer_ratio: float = 1.0, n_inner_steps: int = 10, n_neumann_steps: int = 10,
                theory_constants: dict | None = None, record_every: int = 1,
                seed: int | None = None) -> Trace:
    """Run stocBiO for T outer iterations from (x0, y0) (R replicas); see the module
    docstring. ``n_inner_steps`` = D, ``n_neumann_steps`` = Q; the other arguments are as in
    :func:`refbilevel.algorithms.soba.run_soba`."""
    B.require_oracle(oracle)
    alpha, eta, beta, D, Q, params = stocbio_params(
        oracle, mode, step_size, outer_ratio, n_inner_steps, n_neumann_steps, theory_constants)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            yn = B.sgd_block(oracle, x, y, D, alpha, bad)
            fy, fx = B.outer_gradients(oracle, x, yn, R)
            u = B.guard(fy, bad)
            s = u
            for _ in range(Q):
                u = B.guard(u - eta * oracle.hvp_yy_g(x, yn, u), bad)
                s = s + u
            z = B.guard(eta * s, bad)
            xn = x - beta * (fx - oracle.jvp_xy_g(x, yn, z))
            x, y = B.freeze(rec, t, (xn, yn), (x, y), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("stocbio", "numpy", params, seed)


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """stocBiO "default" (docs/baselines.rst §2, PAPER parameters): α = η = 1/L_y (η ≤ 1/L_g),
    D = ⌈κ⌉ warm-started LL steps (each contracts by 1 − 1/κ), Q = ⌈κ ln 1e4⌉ Neumann terms
    (Q = Θ(κ log 1/ε): bias (1 − 1/κ)^Q ≤ 1e-4), β = 1/L_Φ (β = Θ(1/L_Φ)); in the
    benchmark's parametrization outer_ratio = s/β = L_φ/L_y. Constants μ, L_y, L_φ global."""
    k = sc.kappa
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": sc.L_phi / sc.L_y,
            "n_inner_steps": int(math.ceil(k)),
            "n_neumann_steps": int(math.ceil(k * math.log(1e4)))}


def _horizon(sc, options):
    """ln(1e3) L_φ/m_φ: gradient descent with step 1/L_φ."""
    from refbilevel.solver_record import horizon

    return horizon(sc.m_phi / sc.L_phi)


SOLVER = B.baseline_record("stocbio", run_stocbio, "docs/baselines.rst §2", _default_options,
                           _horizon)
