"""AmIGO as one explicit Numba kernel (Arbel & Mairal 2022; docs/baselines.rst §7;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.amigo.run_amigo`: per iteration n × ∇_y G, then
∇_y F, ∇_x F (one outer sample), m × HVP, JVP, each on a fresh sample. Oracles and divergence
handling: see :mod:`refbilevel.algorithms._baselines_numba`.
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
from refbilevel.algorithms.amigo import amigo_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class AmIGOSteps(NamedTuple):
    """AmIGO's LL step alpha (n steps), z step beta (m steps), outer step gamma."""

    alpha: float
    beta: float
    gamma: float
    n: int
    m: int

@njit(cache=True, error_model="numpy")
def amigo_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T AmIGO iterations in place on X (R, d_x), Y, Z (R, d_y).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    alpha, beta, gamma, n, m = steps.alpha, steps.beta, steps.gamma, steps.n, steps.m
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    YN = np.empty((R, dy))
    ZN = np.empty((R, dy))
    G = np.zeros((R, dy))
    W = np.zeros((R, dy))
    U = np.zeros((R, dx))
    HZ = np.zeros((R, dy))
    CZ = np.zeros((R, dx))
    xn = np.empty(dx)
    for t in range(1, T + 1):
        YN[:] = Y
        for _ in range(n):
            inner_sgd_step(P, noise, rng, X, YN, G, alpha, act)
        call_outer(P, noise, rng, X, YN, W, U, act)
        ZN[:] = Z
        for _ in range(m):
            idx = draw_idx(rng, P, False, R)
            call_hvp(P, noise, rng, idx, X, YN, ZN, HZ, act)
            for r in range(R):
                if act[r]:
                    for i in range(dy):
                        ZN[r, i] = ZN[r, i] - beta * (HZ[r, i] - W[r, i])
        idx = draw_idx(rng, P, False, R)
        call_jvp(P, noise, rng, idx, X, YN, ZN, CZ, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - gamma * (U[r, i] - CZ[r, i])
            if all_finite(xn) and all_finite(YN[r]) and all_finite(ZN[r]):
                X[r] = xn
                Y[r] = YN[r]
                Z[r] = ZN[r]
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


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
    Xr, Yr, div = amigo_kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                               AmIGOSteps(float(alpha), float(beta), float(gamma), n, m))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": n, "hvp": m, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": n + m + 2 if k.finite_sum else n + m + 3}
    return finish_trace(oracle, "amigo", params, seed, T, every, Xr, Yr, div, per, z=z)
