"""FSLA as one explicit Numba kernel (Li, Gu, Huang, AAAI 2022; docs/baselines.rst §15;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.fsla.run_fsla`: per iteration ∇_y G, HVP, ∇_y F
(each on its own sample), then one outer sample b'_2 and one inner sample b_3 used at both
points of the coupled pair (ν_t, ν'_t). Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.

The coupled pair: each of its two samples is drawn once (``draw_sample``: a minibatch or a
noise block, as ``GaussianOracle.draw``) and evaluated at both points (``call_on_sample``,
the machinery of the coupled pairs of docs/baselines.rst §11).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_X_F,
    JVP,
    RunLength,
    all_finite,
    call_grad_y_f,
    call_grad_y_g,
    call_hvp,
    call_on_sample,
    draw_idx,
    draw_sample,
    finish_trace,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.fsla import fsla_params, schedule
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class FslaSteps(NamedTuple):
    """Per-iteration steps ρ_t (y, v), momentum weights a_t, outer steps γ_t (each (T,)) and
    the start of the memory (True: "plain", d_1 = ν_1; False: the benchmark's d_0 = 0,
    x_p = 0)."""

    rhos: np.ndarray
    momenta: np.ndarray
    gammas: np.ndarray
    plain_start: bool


@njit(cache=True, error_model="numpy")
def _coupled_direction(P, noise, idx_o, ZX, idx_i, ZJ, X, Y, V, FX, CV, OUT, act):
    """OUT = ∇_x F(X, Y; b'_2) − ∇²_xy G(X, Y; b_3) V on the samples (idx_o, ZX), (idx_i, ZJ)
    of ``draw_sample``."""
    call_on_sample(GRAD_X_F, P, noise, idx_o, ZX, X, Y, Y, FX, act)
    call_on_sample(JVP, P, noise, idx_i, ZJ, X, Y, V, CV, act)
    for r in range(X.shape[0]):
        if act[r]:
            for i in range(X.shape[1]):
                OUT[r, i] = FX[r, i] - CV[r, i]


@njit(cache=True, error_model="numpy")
def fsla_kernel(P, noise, rng, X, Y, run, steps):
    """T FSLA iterations in place on X (R, d_x), Y (R, d_y) (+z convention). Returns
    (X records, Y records, diverged_at, final V)."""
    T, every = run.T, run.every
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    V = np.zeros((R, dy))
    D = np.zeros((R, dx))
    XP = X.copy() if steps.plain_start else np.zeros((R, dx))
    YN = np.empty((R, dy))
    VN = np.empty((R, dy))
    G = np.zeros((R, dy))
    HV = np.zeros((R, dy))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    CV = np.zeros((R, dx))
    NU = np.zeros((R, dx))
    NUP = np.zeros((R, dx))
    xn = np.empty(dx)
    dn = np.empty(dx)
    for t in range(1, T + 1):
        rho, a, gamma = steps.rhos[t - 1], steps.momenta[t - 1], steps.gammas[t - 1]
        idx = draw_idx(rng, P, False, R)
        call_grad_y_g(P, noise, rng, idx, X, Y, G, act)
        for r in range(R):
            for i in range(dy):
                YN[r, i] = Y[r, i] - rho * G[r, i]
        idx = draw_idx(rng, P, False, R)
        call_hvp(P, noise, rng, idx, X, YN, V, HV, act)
        idx = draw_idx(rng, P, True, R)
        call_grad_y_f(P, noise, rng, idx, X, YN, FY, act)
        for r in range(R):
            for i in range(dy):
                VN[r, i] = V[r, i] - rho * (HV[r, i] - FY[r, i])
        idx_o, ZX = draw_sample(GRAD_X_F, P, noise, rng, R, dx)
        idx_i, ZJ = draw_sample(JVP, P, noise, rng, R, dx)
        _coupled_direction(P, noise, idx_o, ZX, idx_i, ZJ, X, YN, VN, FX, CV, NU, act)
        _coupled_direction(P, noise, idx_o, ZX, idx_i, ZJ, XP, Y, V, FX, CV, NUP, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                d_prev = NUP[r, i] if (t == 1 and steps.plain_start) else D[r, i]
                dn[i] = NU[r, i] + (1.0 - a) * (d_prev - NUP[r, i])
                xn[i] = X[r, i] - gamma * dn[i]
            if all_finite(xn) and all_finite(YN[r]) and all_finite(VN[r]) and all_finite(dn):
                XP[r] = X[r]
                X[r] = xn
                Y[r] = YN[r]
                V[r] = VN[r]
                D[r] = dn
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, V


@register("algorithm", "fsla", "numba")
def run_fsla_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                   outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
                   momentum: float | None = None, init_memory: str = "plain",
                   record_every: int = 1, seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.fsla.run_fsla` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = fsla_params(mode, step_size, outer_ratio, exponents, momentum, init_memory)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "fsla", R, draws=T > 0)
    sch = np.array([schedule(params, t) for t in range(1, T + 1)],
                   dtype=np.float64).reshape(T, 3)
    steps = FslaSteps(np.ascontiguousarray(sch[:, 0]), np.ascontiguousarray(sch[:, 1]),
                      np.ascontiguousarray(sch[:, 2]), init_memory == "plain")
    Xr, Yr, div, v = fsla_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every), steps)
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": 1, "hvp": 1, "grad_y_f": 1, "grad_x_f": 2, "jvp": 2, "samples": 5}
    return finish_trace(oracle, "fsla", params, seed, T, every, Xr, Yr, div, per, v=v)
