"""SOBA as one explicit Numba kernel (Dagréou et al. 2022; docs/baselines.rst §4;
docs/design.rst §Backends). Same mathematics, schedule, sign conventions and random-number order as
the NumPy reference :func:`refbilevel.algorithms.soba.run_soba`: per iteration ∇_y G, HVP,
JVP (one inner minibatch, or three noise blocks), then ∇_y F, ∇_x F (one outer minibatch, or
two noise blocks). Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

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
from refbilevel.algorithms.soba import initial_z, soba_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class SobaSteps(NamedTuple):
    """SOBA's step sizes ρ_t = rho / t^rho_exponent (y, z) and γ_t = gamma / t^gamma_exponent
    (x); exponent 0 means constant."""

    rho: float
    rho_exponent: float
    gamma: float
    gamma_exponent: float

@njit(cache=True, error_model="numpy")
def soba_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T SOBA iterations in place on X (R, d_x), Y, Z (R, d_y) (+z convention).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    rc, re, gc, ge = steps.rho, steps.rho_exponent, steps.gamma, steps.gamma_exponent
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
    yn = np.empty(dy)
    zn = np.empty(dy)
    for t in range(1, T + 1):
        rho = rc if re == 0.0 else rc / t**re
        gamma = gc if ge == 0.0 else gc / t**ge
        idx = draw_idx(rng, P, False, R)
        call_grad_y_g(P, noise, rng, idx, X, Y, DY, act)
        call_hvp(P, noise, rng, idx, X, Y, Z, HZ, act)
        call_jvp(P, noise, rng, idx, X, Y, Z, CZ, act)
        call_outer(P, noise, rng, X, Y, FY, FX, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - gamma * (FX[r, i] - CZ[r, i])
            for i in range(dy):
                yn[i] = Y[r, i] - rho * DY[r, i]
                zn[i] = Z[r, i] - rho * (HZ[r, i] - FY[r, i])
            if all_finite(xn) and all_finite(yn) and all_finite(zn):
                X[r] = xn
                Y[r] = yn
                Z[r] = zn
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


@register("algorithm", "soba", "numba")
def run_soba_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                   outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
                   v0=None, theory_constants: dict | None = None, record_every: int = 1,
                   seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.soba.run_soba` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    rc, re, gc, ge, params = soba_params(oracle, mode, step_size, outer_ratio, exponents,
                                         theory_constants)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = initial_z(oracle, v0, R)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "soba", R, draws=T > 0)
    Xr, Yr, div = soba_kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                              SobaSteps(float(rc), float(re), float(gc), float(ge)))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": 2 if k.finite_sum else 5}
    return finish_trace(oracle, "soba", params, seed, T, every, Xr, Yr, div, per, v=-z)
