"""stocBiO as one explicit Numba kernel (Ji, Yang, Liang 2021; docs/baselines.rst §2;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.stocbio.run_stocbio`: per iteration D × ∇_y G, then
∇_y F, ∇_x F (one outer sample), Q × HVP, JVP, each on a fresh sample. Oracles and
divergence handling: see :mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    RunLength,
    all_finite,
    call_hvp,
    call_jvp,
    call_outer,
    draw_idx,
    finish_trace,
    inner_sgd_step,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.stocbio import stocbio_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class StocBiOSteps(NamedTuple):
    """stocBiO's LL step alpha (D steps), Neumann step eta (Q terms), outer step beta."""

    alpha: float
    eta: float
    beta: float
    D: int
    Q: int

@njit(cache=True, error_model="numpy")
def stocbio_kernel(P, noise, rng, X, Y, run, steps):
    """T stocBiO iterations in place on X (R, d_x), Y (R, d_y).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    alpha, eta, beta, D, Q = steps.alpha, steps.eta, steps.beta, steps.D, steps.Q
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    YN = np.empty((R, dy))
    G = np.zeros((R, dy))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    U = np.zeros((R, dy))
    S = np.zeros((R, dy))
    HU = np.zeros((R, dy))
    CZ = np.zeros((R, dx))
    xn = np.empty(dx)
    for t in range(1, T + 1):
        YN[:] = Y
        for _ in range(D):
            inner_sgd_step(P, noise, rng, X, YN, G, alpha, act)
        call_outer(P, noise, rng, X, YN, FY, FX, act)
        U[:] = FY
        S[:] = FY
        for _ in range(Q):
            idx = draw_idx(rng, P, False, R)
            call_hvp(P, noise, rng, idx, X, YN, U, HU, act)
            for r in range(R):
                if act[r]:
                    for i in range(dy):
                        U[r, i] = U[r, i] - eta * HU[r, i]
                        S[r, i] = S[r, i] + U[r, i]
        for r in range(R):
            for i in range(dy):
                S[r, i] = eta * S[r, i]  # z = η s_Q
        idx = draw_idx(rng, P, False, R)
        call_jvp(P, noise, rng, idx, X, YN, S, CZ, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - beta * (FX[r, i] - CZ[r, i])
            if all_finite(xn) and all_finite(YN[r]):
                X[r] = xn
                Y[r] = YN[r]
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


@register("algorithm", "stocbio", "numba")
def run_stocbio_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                      outer_ratio: float = 1.0, n_inner_steps: int = 10,
                      n_neumann_steps: int = 10, theory_constants: dict | None = None,
                      record_every: int = 1, seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.stocbio.run_stocbio` (same arguments, same
    random numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    alpha, eta, beta, D, Q, params = stocbio_params(
        oracle, mode, step_size, outer_ratio, n_inner_steps, n_neumann_steps, theory_constants)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "stocbio", R, draws=T > 0)
    Xr, Yr, div = stocbio_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                 StocBiOSteps(float(alpha), float(eta), float(beta), D, Q))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": D, "hvp": Q, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": D + Q + 2 if k.finite_sum else D + Q + 3}
    return finish_trace(oracle, "stocbio", params, seed, T, every, Xr, Yr, div, per)
