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
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    all_finite,
    draw_calls,
    draw_outer,
    finish_trace,
    kernel_inputs,
    oracle_row,
    outer_row,
    sgd_steps_row,
    start_records,
    store_record,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.stocbio import stocbio_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.numba_rows import borrowed_subrow as subrow
from refbilevel.backends.registry import register


class StocBiOSteps(NamedTuple):
    """stocBiO's LL step alpha (D steps), Neumann step eta (Q terms), outer step beta."""

    alpha: float
    eta: float
    beta: float
    D: int
    Q: int

class StocBiODraws(NamedTuple):
    """One stocBiO iteration's random numbers for all replicas, in the reference's order: D
    lower-level calls, the outer sample, Q HVP calls, the JVP call (``*_idx``, ``*_z`` as in
    :class:`~refbilevel.algorithms._baselines_numba.Calls`)."""

    sgd_idx: np.ndarray
    sgd_z: np.ndarray
    outer: np.ndarray
    z_grad_y_f: np.ndarray
    z_grad_x_f: np.ndarray
    hvp_idx: np.ndarray
    hvp_z: np.ndarray
    jvp_idx: np.ndarray
    jvp_z: np.ndarray


class StocBiORows(NamedTuple):
    """The replicas' state (X, Y, act, diverged_at) and per-replica workspace rows."""

    X: np.ndarray
    Y: np.ndarray
    act: np.ndarray
    div: np.ndarray
    YN: np.ndarray
    G: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    U: np.ndarray
    S: np.ndarray
    HU: np.ndarray
    CZ: np.ndarray
    XN: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def stocbio_draws(rng, P, noise, R, dx, dy, D, Q):
    sgd = draw_calls(rng, P, noise, GRAD_Y_G, D, R, dy)
    o = draw_outer(rng, P, noise, R, dx, dy)
    hv = draw_calls(rng, P, noise, HVP, Q, R, dy)
    jv = draw_calls(rng, P, noise, JVP, 1, R, dx)
    return StocBiODraws(sgd.idx, sgd.z, o.idx, o.z_y, o.z_x, hv.idx, hv.z, jv.idx, jv.z)


@njit(cache=True, error_model="numpy")
def stocbio_row(P, noise, d, s, r, t, alphas, eta, beta):
    """Replica r's stocBiO iteration t: D SGD steps, the outer sample, the Neumann sum
    z = η Σ_q (I − η H)^q ∇_y F, the JVP and the x-update (or the freeze)."""
    x, yn, g, fy, fx = row(s.X, r), row(s.YN, r), row(s.G, r), row(s.FY, r), row(s.FX, r)
    u, sv, hu, cz, xn = row(s.U, r), row(s.S, r), row(s.HU, r), row(s.CZ, r), row(s.XN, r)
    yn[:] = row(s.Y, r)
    sgd_steps_row(P, noise, d.sgd_idx, d.sgd_z, r, x, yn, g, alphas)
    outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r), x, yn,
              fy, fx)
    u[:] = fy
    sv[:] = fy
    for j in range(d.hvp_idx.shape[0]):
        oracle_row(HVP, P, noise, subrow(d.hvp_idx, j, r), subrow(d.hvp_z, j, r), x, yn, u, hu)
        for i in range(u.shape[0]):
            u[i] = u[i] - eta * hu[i]
            sv[i] = sv[i] + u[i]
    for i in range(sv.shape[0]):
        sv[i] = eta * sv[i]  # z = η s_Q
    oracle_row(JVP, P, noise, subrow(d.jvp_idx, 0, r), subrow(d.jvp_z, 0, r), x, yn, sv, cz)
    for i in range(xn.shape[0]):
        xn[i] = x[i] - beta * (fx[i] - cz[i])
    if all_finite(xn) and all_finite(yn):
        x[:] = xn
        s.Y[r] = yn
    else:
        s.act[r] = False
        s.div[r] = t


def _stocbio_kernel(P, noise, rng, X, Y, run, steps):
    """T stocBiO iterations in place on X (R, d_x), Y (R, d_y): per iteration the draws,
    then one region over replicas (docs: _baselines_numba).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    alpha, eta, beta, D, Q = steps.alpha, steps.eta, steps.beta, steps.D, steps.Q
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    s = StocBiORows(X, Y, np.ones(R, dtype=np.bool_), div, np.empty((R, dy)),
                    np.zeros((R, dy)), np.zeros((R, dy)), np.zeros((R, dx)),
                    np.zeros((R, dy)), np.zeros((R, dy)), np.zeros((R, dy)),
                    np.zeros((R, dx)), np.empty((R, dx)))
    alphas = np.full(D, alpha)
    for t in range(1, T + 1):
        d = stocbio_draws(rng, P, noise, R, dx, dy, D, Q)
        for r in prange(R):
            if s.act[r]:
                stocbio_row(P, noise, d, s, r, t, alphas, eta, beta)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


stocbio_kernel, stocbio_kernel_parallel = jit_pair(_stocbio_kernel)


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
    kernel = (stocbio_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else stocbio_kernel)
    Xr, Yr, div = kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                         StocBiOSteps(float(alpha), float(eta), float(beta), D, Q))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": D, "hvp": Q, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": D + Q + 2 if k.finite_sum else D + Q + 3}
    return finish_trace(oracle, "stocbio", params, seed, T, every, Xr, Yr, div, per)
