"""MA-SOBA as one explicit Numba kernel (Chen, Xu, Zhang 2023; docs/baselines.rst §6;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.ma_soba.run_ma_soba`: per iteration ∇_y G, HVP, JVP
(one inner sample), then ∇_y F, ∇_x F (one outer sample): exactly SOBA's draws, so the
kernel reuses SOBA's draw buffers and :func:`refbilevel.algorithms.soba_numba.soba_draws`.
Oracles and divergence handling: see :mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    all_finite,
    finish_trace,
    kernel_inputs,
    oracle_row,
    outer_row,
    start_records,
    store_record,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.ma_soba import ma_soba_params
from refbilevel.algorithms.soba_numba import soba_draw_buffers, soba_draws
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
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

class MASobaRows(NamedTuple):
    """The replicas' state (X, Y, Z, H, act, diverged_at) and per-replica workspace rows."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    H: np.ndarray
    act: np.ndarray
    div: np.ndarray
    DY: np.ndarray
    HZ: np.ndarray
    CZ: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    XN: np.ndarray
    HN: np.ndarray
    YN: np.ndarray
    ZN: np.ndarray


@njit(cache=True, error_model="numpy")
def ma_soba_row(P, noise, d, s, r, t, steps):
    """Replica r's MA-SOBA iteration t: its five oracle rows, the moving average h, the
    (projected) updates (or the freeze)."""
    beta, gamma, alpha, theta = steps.beta, steps.gamma, steps.alpha, steps.theta
    radius, updated_h = steps.radius, steps.updated_h
    x, y, z, h = row(s.X, r), row(s.Y, r), row(s.Z, r), row(s.H, r)
    dyr, hz, cz, fy, fx = row(s.DY, r), row(s.HZ, r), row(s.CZ, r), row(s.FY, r), row(s.FX, r)
    xn, hn, yn, zn = row(s.XN, r), row(s.HN, r), row(s.YN, r), row(s.ZN, r)
    oracle_row(GRAD_Y_G, P, noise, row(d.inner, r), row(d.z_grad_y_g, r), x, y, y, dyr)
    oracle_row(HVP, P, noise, row(d.inner, r), row(d.z_hvp, r), x, y, z, hz)
    oracle_row(JVP, P, noise, row(d.inner, r), row(d.z_jvp, r), x, y, z, cz)
    outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r), x, y, fy, fx)
    for i in range(xn.shape[0]):
        hn[i] = h[i] + theta * ((fx[i] - cz[i]) - h[i])
        xn[i] = x[i] - alpha * (hn[i] if updated_h else h[i])
    nrm2 = 0.0
    for i in range(yn.shape[0]):
        yn[i] = y[i] - beta * dyr[i]
        zn[i] = z[i] - gamma * (hz[i] - fy[i])
        nrm2 += zn[i] * zn[i]
    if radius >= 0.0:
        nrm = math.sqrt(nrm2)
        f = min(1.0, radius / (nrm if nrm > 0.0 else 1.0))
        for i in range(zn.shape[0]):
            zn[i] = zn[i] * f
    if all_finite(xn) and all_finite(yn) and all_finite(zn) and all_finite(hn):
        x[:] = xn
        y[:] = yn
        z[:] = zn
        h[:] = hn
    else:
        s.act[r] = False
        s.div[r] = t


def _ma_soba_kernel(P, noise, rng, X, Y, Z, H, run, steps):
    """T MA-SOBA iterations in place on X, H (R, d_x), Y, Z (R, d_y); radius < 0 means no
    projection. Per iteration the draws, then one region over replicas (docs:
    _baselines_numba). Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    s = MASobaRows(X, Y, Z, H, np.ones(R, dtype=np.bool_), div, np.zeros((R, dy)),
                   np.zeros((R, dy)), np.zeros((R, dx)), np.zeros((R, dy)), np.zeros((R, dx)),
                   np.empty((R, dx)), np.empty((R, dx)), np.empty((R, dy)), np.empty((R, dy)))
    d = soba_draw_buffers(P, R, dx, dy)
    for t in range(1, T + 1):
        soba_draws(rng, P, noise, d)
        for r in prange(R):
            if s.act[r]:
                ma_soba_row(P, noise, d, s, r, t, steps)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


ma_soba_kernel, ma_soba_kernel_parallel = jit_pair(_ma_soba_kernel)


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
    kernel = (ma_soba_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else ma_soba_kernel)
    Xr, Yr, div = kernel(k.P, k.noise, oracle.rng, x, y, z, h, RunLength(T, every),
                         steps)
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": 2 if k.finite_sum else 5}
    return finish_trace(oracle, "ma_soba", params, seed, T, every, Xr, Yr, div, per, z=z, h=h)
