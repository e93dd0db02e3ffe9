"""AmIGO as one explicit Numba kernel (Arbel & Mairal 2022; docs/baselines.rst §7;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.amigo.run_amigo`: per iteration n × ∇_y G, then
∇_y F, ∇_x F (one outer sample), m × HVP, JVP, each on a fresh sample: stocBiO's layout, so the
kernel reuses :func:`refbilevel.algorithms.stocbio_numba.stocbio_draws`. Oracles and divergence
handling: see :mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    HVP,
    JVP,
    RunLength,
    all_finite,
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
from refbilevel.algorithms.amigo import amigo_params
from refbilevel.algorithms.stocbio_numba import stocbio_draws
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.numba_rows import borrowed_subrow as subrow
from refbilevel.backends.registry import register


class AmIGOSteps(NamedTuple):
    """AmIGO's LL step alpha (n steps), z step beta (m steps), outer step gamma."""

    alpha: float
    beta: float
    gamma: float
    n: int
    m: int

class AmIGORows(NamedTuple):
    """The replicas' state (X, Y, Z, act, diverged_at) and per-replica workspace rows."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    act: np.ndarray
    div: np.ndarray
    YN: np.ndarray
    ZN: np.ndarray
    G: np.ndarray
    W: np.ndarray
    U: np.ndarray
    HZ: np.ndarray
    CZ: np.ndarray
    XN: np.ndarray


@njit(cache=True, error_model="numpy")
def amigo_row(P, noise, d, s, r, t, alphas, beta, gamma):
    """Replica r's AmIGO iteration t: n SGD steps, the outer sample, m warm-started SGD
    steps on the linear system, the JVP and the x-update (or the freeze)."""
    x, yn, zn, g, w = row(s.X, r), row(s.YN, r), row(s.ZN, r), row(s.G, r), row(s.W, r)
    u, hz, cz, xn = row(s.U, r), row(s.HZ, r), row(s.CZ, r), row(s.XN, r)
    yn[:] = row(s.Y, r)
    sgd_steps_row(P, noise, d.sgd_idx, d.sgd_z, r, x, yn, g, alphas)
    outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r), x, yn, w, u)
    zn[:] = row(s.Z, r)
    for j in range(d.hvp_idx.shape[0]):
        oracle_row(HVP, P, noise, subrow(d.hvp_idx, j, r), subrow(d.hvp_z, j, r), x, yn, zn, hz)
        for i in range(zn.shape[0]):
            zn[i] = zn[i] - beta * (hz[i] - w[i])
    oracle_row(JVP, P, noise, subrow(d.jvp_idx, 0, r), subrow(d.jvp_z, 0, r), x, yn, zn, cz)
    for i in range(xn.shape[0]):
        xn[i] = x[i] - gamma * (u[i] - cz[i])
    if all_finite(xn) and all_finite(yn) and all_finite(zn):
        x[:] = xn
        s.Y[r] = yn
        s.Z[r] = zn
    else:
        s.act[r] = False
        s.div[r] = t


def _amigo_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T AmIGO iterations in place on X (R, d_x), Y, Z (R, d_y): per iteration the draws,
    then one region over replicas (docs: _baselines_numba).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    alpha, beta, gamma, n, m = steps.alpha, steps.beta, steps.gamma, steps.n, steps.m
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    s = AmIGORows(X, Y, Z, np.ones(R, dtype=np.bool_), div, np.empty((R, dy)),
                  np.empty((R, dy)), np.zeros((R, dy)), np.zeros((R, dy)), np.zeros((R, dx)),
                  np.zeros((R, dy)), np.zeros((R, dx)), np.empty((R, dx)))
    alphas = np.full(n, alpha)
    for t in range(1, T + 1):
        d = stocbio_draws(rng, P, noise, R, dx, dy, n, m)
        for r in prange(R):
            if s.act[r]:
                amigo_row(P, noise, d, s, r, t, alphas, beta, gamma)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


amigo_kernel, amigo_kernel_parallel = jit_pair(_amigo_kernel)


@register("algorithm", "amigo", "numba")
def run_amigo_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                    outer_ratio: float = 1.0, n_inner_steps: int = 10,
                    n_z_steps: int | None = None, record_every: int = 1,
                    seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.amigo.run_amigo` (same arguments, same
    random numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    alpha, beta, gamma, n, m, params = amigo_params(oracle, mode, step_size, outer_ratio,
                                                    n_inner_steps, n_z_steps)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = np.zeros((R, oracle.problem.d_y))
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "amigo", R, draws=T > 0)
    kernel = (amigo_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else amigo_kernel)
    Xr, Yr, div = kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                         AmIGOSteps(float(alpha), float(beta), float(gamma), n, m))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": n, "hvp": m, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": n + m + 2 if k.finite_sum else n + m + 3}
    return finish_trace(oracle, "amigo", params, seed, T, every, Xr, Yr, div, per, z=z)
