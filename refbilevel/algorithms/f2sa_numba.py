"""F2SA as one explicit Numba kernel (Kwon, Kwon, Wright, Nowak 2023; docs/baselines.rst §8;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.f2sa.run_f2sa`: per inner step ∇_y G(y), ∇_y F(y),
∇_y G(z), then ∇_x F, ∇_x G(y), ∇_x G(z) (one shared sample for the last two in
``mode="theory"`` with a FiniteSumOracle). The schedule (a_k, c_k, ξ_k, λ_k) is evaluated
in Python by the reference's schedule function. Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_X_F,
    GRAD_X_G,
    GRAD_Y_F,
    GRAD_Y_G,
    RunLength,
    all_finite,
    draw_call_into,
    draw_idx,
    draw_noise,
    empty_calls,
    finish_trace,
    is_finite_sum,
    is_record,
    kernel_inputs,
    oracle_row,
    start_records,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.f2sa import f2sa_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.numba_rows import borrowed_subrow as subrow
from refbilevel.backends.registry import register


class F2SASteps(NamedTuple):
    """F2SA's schedule (T, 4) of (a_k, c_k, ξ_k, λ_k), n inner steps, and whether the two
    ∇_x G calls share one sample (theory mode on a finite sum)."""

    sched: np.ndarray
    n: int
    share_x: bool

class F2SADraws(NamedTuple):
    """One F2SA iteration's random numbers for all replicas, in the reference's order: per
    inner step j the samples of ∇_y G at y, ∇_y F at y and ∇_y G at z (``y_*``, ``fy_*``,
    ``z_*`` as in :class:`~refbilevel.algorithms._baselines_numba.Calls`), then those of
    ∇_x F, ∇_x G at y and ∇_x G at z (the last shares the previous minibatch when
    ``share_x`` on a finite sum)."""

    y_idx: np.ndarray
    y_z: np.ndarray
    fy_idx: np.ndarray
    fy_z: np.ndarray
    z_idx: np.ndarray
    z_z: np.ndarray
    fx_idx: np.ndarray
    fx_z: np.ndarray
    gxy_idx: np.ndarray
    gxy_z: np.ndarray
    gxz_idx: np.ndarray
    gxz_z: np.ndarray


class F2SARows(NamedTuple):
    """The replicas' state (X, Y, Z, act, diverged_at) and per-replica workspace rows."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    act: np.ndarray
    div: np.ndarray
    YN: np.ndarray
    ZN: np.ndarray
    GY: np.ndarray
    FY: np.ndarray
    GZ: np.ndarray
    FX: np.ndarray
    GXY: np.ndarray
    GXZ: np.ndarray
    XN: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def f2sa_draws(rng, P, noise, R, dx, dy, n, share_x):
    gy = empty_calls(P, n, R, dy)
    fy = empty_calls(P, n, R, dy)
    gz = empty_calls(P, n, R, dy)
    for j in range(n):
        draw_call_into(rng, P, noise, GRAD_Y_G, gy, j)
        draw_call_into(rng, P, noise, GRAD_Y_F, fy, j)
        draw_call_into(rng, P, noise, GRAD_Y_G, gz, j)
    fx_idx = draw_idx(rng, P, True, R)
    fx_z = draw_noise(rng, P, noise, GRAD_X_F, R, dx)
    gxy_idx = draw_idx(rng, P, False, R)
    gxy_z = draw_noise(rng, P, noise, GRAD_X_G, R, dx)
    gxz_idx = gxy_idx
    if not (share_x and is_finite_sum(P)):
        gxz_idx = draw_idx(rng, P, False, R)
    gxz_z = draw_noise(rng, P, noise, GRAD_X_G, R, dx)
    return F2SADraws(gy.idx, gy.z, fy.idx, fy.z, gz.idx, gz.z, fx_idx, fx_z, gxy_idx, gxy_z,
                     gxz_idx, gxz_z)


@njit(cache=True, error_model="numpy")
def f2sa_row(P, noise, d, s, r, t, a, c, xs, lam):
    """Replica r's F2SA iteration t: n steps on y (penalized) and z (lower level), the three
    x-gradients and the x-update (or the freeze)."""
    x, yn, zn = row(s.X, r), row(s.YN, r), row(s.ZN, r)
    gy, fy, gz = row(s.GY, r), row(s.FY, r), row(s.GZ, r)
    fx, gxy, gxz, xn = row(s.FX, r), row(s.GXY, r), row(s.GXZ, r), row(s.XN, r)
    yn[:] = row(s.Y, r)
    zn[:] = row(s.Z, r)
    for j in range(d.y_idx.shape[0]):
        oracle_row(GRAD_Y_G, P, noise, subrow(d.y_idx, j, r), subrow(d.y_z, j, r), x, yn, yn, gy)
        oracle_row(GRAD_Y_F, P, noise, subrow(d.fy_idx, j, r), subrow(d.fy_z, j, r), x, yn, yn, fy)
        for i in range(yn.shape[0]):
            yn[i] = yn[i] - a * (lam * gy[i] + fy[i])
        oracle_row(GRAD_Y_G, P, noise, subrow(d.z_idx, j, r), subrow(d.z_z, j, r), x, zn, zn, gz)
        for i in range(zn.shape[0]):
            zn[i] = zn[i] - c * gz[i]
    oracle_row(GRAD_X_F, P, noise, row(d.fx_idx, r), row(d.fx_z, r), x, yn, yn, fx)
    oracle_row(GRAD_X_G, P, noise, row(d.gxy_idx, r), row(d.gxy_z, r), x, yn, yn, gxy)
    oracle_row(GRAD_X_G, P, noise, row(d.gxz_idx, r), row(d.gxz_z, r), x, zn, zn, gxz)
    for i in range(xn.shape[0]):
        xn[i] = x[i] - xs * (fx[i] + lam * (gxy[i] - gxz[i]))
    if all_finite(xn) and all_finite(yn) and all_finite(zn):
        x[:] = xn
        s.Y[r] = yn
        s.Z[r] = zn
    else:
        s.act[r] = False
        s.div[r] = t


def _f2sa_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T F2SA iterations in place on X (R, d_x), Y, Z (R, d_y); sched (T, 4) holds
    (a_k, c_k, ξ_k, λ_k). Per iteration the draws, then one region over replicas (docs:
    _baselines_numba). Returns (X records, Z records, diverged_at)."""
    T, every = run.T, run.every
    sched, n, share_x = steps.sched, steps.n, steps.share_x
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Zr, div = start_records(T, every, X, Z)
    k = 1
    s = F2SARows(X, Y, Z, np.ones(R, dtype=np.bool_), div, np.empty((R, dy)),
                 np.empty((R, dy)), np.zeros((R, dy)), np.zeros((R, dy)), np.zeros((R, dy)),
                 np.zeros((R, dx)), np.zeros((R, dx)), np.zeros((R, dx)), np.empty((R, dx)))
    for t in range(1, T + 1):
        a = sched[t - 1, 0]
        c = sched[t - 1, 1]
        xs = sched[t - 1, 2]
        lam = sched[t - 1, 3]
        d = f2sa_draws(rng, P, noise, R, dx, dy, n, share_x)
        for r in prange(R):
            if s.act[r]:
                f2sa_row(P, noise, d, s, r, t, a, c, xs, lam)
        if is_record(t, T, every):
            Xr[k] = X
            Zr[k] = Z
            k += 1
    return Xr, Zr, div


f2sa_kernel, f2sa_kernel_parallel = jit_pair(_f2sa_kernel)


@register("algorithm", "f2sa", "numba")
def run_f2sa_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.01,
                   outer_ratio: float = 1.0, delta_lambda: float = 0.1, lmbda0: float = 1.0,
                   n_inner_steps: int = 10, z0=None, theory_constants: dict | None = None,
                   record_every: int = 1, seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.f2sa.run_f2sa` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, n, params = f2sa_params(oracle, mode, step_size, outer_ratio, delta_lambda,
                                      lmbda0, n_inner_steps, theory_constants)
    x, y, R = B.start_points(oracle, x0, y0)
    z = y.copy() if z0 is None else B.start_points(oracle, x, z0)[1]
    every = B.recorder(oracle, R, record_every).record_every
    sched = np.array([schedule(t) for t in range(1, T + 1)], dtype=np.float64).reshape(T, 4)
    k = kernel_inputs(oracle, "f2sa", R, draws=T > 0)
    kernel = (f2sa_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else f2sa_kernel)
    Xr, Zr, div = kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                         F2SASteps(sched, n, mode == "theory"))
    store_sampler_state(oracle, k, R, T > 0)
    share = mode == "theory" and k.finite_sum
    per = {"grad_y_g": 2 * n, "grad_y_f": n, "grad_x_f": 1, "grad_x_g": 2,
           "samples": 3 * n + (2 if share else 3)}
    lam = float(sched[-1, 3]) if T else None
    return finish_trace(oracle, "f2sa", params, seed, T, every, Xr, Zr, div, per, y=y, z=z,
                        lmbda=lam)
