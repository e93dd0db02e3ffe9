"""MA-SOBA as one explicit Numba kernel (Chen, Xu, Zhang 2023; docs/baselines.rst §6;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.ma_soba.run_ma_soba`: per iteration ∇_y G, HVP, JVP
(one inner sample), then ∇_y F, ∇_x F (one outer sample). Oracles and divergence handling:
see :mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    RunLength,
    all_finite,
    call_grad_y_g,
    call_hvp,
    call_jvp,
    call_outer,
    draw_idx,
    finish_trace,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.ma_soba import ma_soba_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class MASobaSteps(NamedTuple):
    """MA-SOBA's steps and averaging: radius < 0 means no projection; ``updated_h`` selects
    the averaged direction of the update."""

    beta: float
    gamma: float
    alpha: float
    theta: float
    radius: float
    updated_h: bool

@njit(cache=True, error_model="numpy")
def ma_soba_kernel(P, noise, rng, X, Y, Z, H, run, steps):
    """T MA-SOBA iterations in place on X, H (R, d_x), Y, Z (R, d_y); radius < 0 means no
    projection. Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    beta, gamma, alpha, theta = steps.beta, steps.gamma, steps.alpha, steps.theta
    radius, updated_h = steps.radius, steps.updated_h
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    DY = np.zeros((R, dy))
    HZ = np.zeros((R, dy))
    CZ = np.zeros((R, dx))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    xn = np.empty(dx)
    hn = np.empty(dx)
    yn = np.empty(dy)
    zn = np.empty(dy)
    for t in range(1, T + 1):
        idx = draw_idx(rng, P, False, R)
        call_grad_y_g(P, noise, rng, idx, X, Y, DY, act)
        call_hvp(P, noise, rng, idx, X, Y, Z, HZ, act)
        call_jvp(P, noise, rng, idx, X, Y, Z, CZ, act)
        call_outer(P, noise, rng, X, Y, FY, FX, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                hn[i] = H[r, i] + theta * ((FX[r, i] - CZ[r, i]) - H[r, i])
                xn[i] = X[r, i] - alpha * (hn[i] if updated_h else H[r, i])
            nrm2 = 0.0
            for i in range(dy):
                yn[i] = Y[r, i] - beta * DY[r, i]
                zn[i] = Z[r, i] - gamma * (HZ[r, i] - FY[r, i])
                nrm2 += zn[i] * zn[i]
            if radius >= 0.0:
                nrm = math.sqrt(nrm2)
                f = min(1.0, radius / (nrm if nrm > 0.0 else 1.0))
                for i in range(dy):
                    zn[i] = zn[i] * f
            if all_finite(xn) and all_finite(yn) and all_finite(zn) and all_finite(hn):
                X[r] = xn
                Y[r] = yn
                Z[r] = zn
                H[r] = hn
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


@register("algorithm", "ma_soba", "numba")
def run_ma_soba_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_y: float = 0.1,
                      step_z: float = 0.1, step_x: float = 0.05, theta: float = 0.1,
                      z_radius: float | None = None, use_updated_h: bool = False,
                      theory_constants: dict | None = None, record_every: int = 1,
                      seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.ma_soba.run_ma_soba` (same arguments, same
    random numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    beta, gamma, alpha, th, rad, params = ma_soba_params(
        oracle, mode, T, step_y, step_z, step_x, theta, z_radius, theory_constants)
    params["use_updated_h"] = bool(use_updated_h)
    x, y, R = B.start_points(oracle, x0, y0)
    z = np.zeros((R, oracle.problem.d_y))
    h = np.zeros((R, oracle.problem.d_x))
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "ma_soba", R, draws=T > 0)
    steps = MASobaSteps(float(beta), float(gamma), float(alpha), float(th),
                        -1.0 if rad is None else float(rad), bool(use_updated_h))
    Xr, Yr, div = ma_soba_kernel(k.P, k.noise, oracle.rng, x, y, z, h, RunLength(T, every),
                                 steps)
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": 2 if k.finite_sum else 5}
    return finish_trace(oracle, "ma_soba", params, seed, T, every, Xr, Yr, div, per, z=z, h=h)
