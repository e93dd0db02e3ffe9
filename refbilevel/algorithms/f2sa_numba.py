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
    RunLength,
    all_finite,
    call_grad_x_f,
    call_grad_x_g,
    call_grad_y_f,
    call_grad_y_g,
    draw_idx,
    finish_trace,
    is_finite_sum,
    is_record,
    kernel_inputs,
    start_records,
    store_sampler_state,
)
from refbilevel.algorithms.f2sa import f2sa_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class F2SASteps(NamedTuple):
    """F2SA's schedule (T, 4) of (a_k, c_k, ξ_k, λ_k), n inner steps, and whether the two
    ∇_x G calls share one sample (theory mode on a finite sum)."""

    sched: np.ndarray
    n: int
    share_x: bool

@njit(cache=True, error_model="numpy")
def f2sa_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T F2SA iterations in place on X (R, d_x), Y, Z (R, d_y); sched (T, 4) holds
    (a_k, c_k, ξ_k, λ_k). Returns (X records, Z records, diverged_at)."""
    T, every = run.T, run.every
    sched, n, share_x = steps.sched, steps.n, steps.share_x
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Zr, div = start_records(T, every, X, Z)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    YN = np.empty((R, dy))
    ZN = np.empty((R, dy))
    GY = np.zeros((R, dy))
    FY = np.zeros((R, dy))
    GZ = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    GXY = np.zeros((R, dx))
    GXZ = np.zeros((R, dx))
    xn = np.empty(dx)
    for t in range(1, T + 1):
        a = sched[t - 1, 0]
        c = sched[t - 1, 1]
        xs = sched[t - 1, 2]
        lam = sched[t - 1, 3]
        YN[:] = Y
        ZN[:] = Z
        for _ in range(n):
            idx = draw_idx(rng, P, False, R)
            call_grad_y_g(P, noise, rng, idx, X, YN, GY, act)
            idx = draw_idx(rng, P, True, R)
            call_grad_y_f(P, noise, rng, idx, X, YN, FY, act)
            for r in range(R):
                if act[r]:
                    for i in range(dy):
                        YN[r, i] = YN[r, i] - a * (lam * GY[r, i] + FY[r, i])
            idx = draw_idx(rng, P, False, R)
            call_grad_y_g(P, noise, rng, idx, X, ZN, GZ, act)
            for r in range(R):
                if act[r]:
                    for i in range(dy):
                        ZN[r, i] = ZN[r, i] - c * GZ[r, i]
        idx = draw_idx(rng, P, True, R)
        call_grad_x_f(P, noise, rng, idx, X, YN, FX, act)
        idx = draw_idx(rng, P, False, R)
        call_grad_x_g(P, noise, rng, idx, X, YN, GXY, act)
        if not (share_x and is_finite_sum(P)):
            idx = draw_idx(rng, P, False, R)
        call_grad_x_g(P, noise, rng, idx, X, ZN, GXZ, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - xs * (FX[r, i] + lam * (GXY[r, i] - GXZ[r, i]))
            if all_finite(xn) and all_finite(YN[r]) and all_finite(ZN[r]):
                X[r] = xn
                Y[r] = YN[r]
                Z[r] = ZN[r]
            else:
                act[r] = False
                div[r] = t
        if is_record(t, T, every):
            Xr[k] = X
            Zr[k] = Z
            k += 1
    return Xr, Zr, div


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
    Xr, Zr, div = f2sa_kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                              F2SASteps(sched, n, mode == "theory"))
    store_sampler_state(oracle, k, R, T > 0)
    share = mode == "theory" and k.finite_sum
    per = {"grad_y_g": 2 * n, "grad_y_f": n, "grad_x_f": 1, "grad_x_g": 2,
           "samples": 3 * n + (2 if share else 3)}
    lam = float(sched[-1, 3]) if T else None
    return finish_trace(oracle, "f2sa", params, seed, T, every, Xr, Zr, div, per, y=y, z=z,
                        lmbda=lam)
