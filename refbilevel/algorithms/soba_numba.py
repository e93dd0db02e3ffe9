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
    GRAD_X_F,
    GRAD_Y_F,
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    all_finite,
    batch_width,
    draw_idx_into,
    draw_noise_into,
    finish_trace,
    is_finite_sum,
    kernel_inputs,
    oracle_row,
    outer_row,
    start_records,
    store_record,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.soba import initial_z, soba_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register


class SobaSteps(NamedTuple):
    """SOBA's step sizes ρ_t = rho / t^rho_exponent (y, z) and γ_t = gamma / t^gamma_exponent
    (x); exponent 0 means constant."""

    rho: float
    rho_exponent: float
    gamma: float
    gamma_exponent: float

class SobaDraws(NamedTuple):
    """One SOBA iteration's random numbers for all replicas, in the reference's order: the
    inner sample (one minibatch, or the noise of ∇_y G, HVP, JVP) and the outer sample."""

    inner: np.ndarray
    z_grad_y_g: np.ndarray
    z_hvp: np.ndarray
    z_jvp: np.ndarray
    outer: np.ndarray
    z_grad_y_f: np.ndarray
    z_grad_x_f: np.ndarray


class SobaRows(NamedTuple):
    """The replicas' state (X, Y, Z, act, diverged_at) and per-replica workspace rows."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    act: np.ndarray
    div: np.ndarray
    DY: np.ndarray
    HZ: np.ndarray
    CZ: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    XN: np.ndarray
    YN: np.ndarray
    ZN: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def soba_draw_buffers(P, R, dx, dy):
    """A :class:`SobaDraws` to be refilled each iteration by :func:`soba_draws` (built in
    the kernel's own code: see ``_baselines_numba`` on records entering a region)."""
    w = batch_width(P)
    ny = 0 if is_finite_sum(P) else dy  # a finite sum draws no noise
    nx = 0 if is_finite_sum(P) else dx
    return SobaDraws(np.zeros((R, w), dtype=np.int64), np.zeros((R, ny)), np.zeros((R, ny)),
                     np.zeros((R, nx)), np.zeros((R, w), dtype=np.int64), np.zeros((R, ny)),
                     np.zeros((R, nx)))


@njit(cache=True, error_model="numpy")
def soba_draws(rng, P, noise, d):
    """Refill d with one iteration's random numbers, in the reference's order."""
    draw_idx_into(rng, P, False, d.inner)
    draw_noise_into(rng, P, noise, GRAD_Y_G, d.z_grad_y_g)
    draw_noise_into(rng, P, noise, HVP, d.z_hvp)
    draw_noise_into(rng, P, noise, JVP, d.z_jvp)
    draw_idx_into(rng, P, True, d.outer)
    draw_noise_into(rng, P, noise, GRAD_Y_F, d.z_grad_y_f)
    draw_noise_into(rng, P, noise, GRAD_X_F, d.z_grad_x_f)


def _soba_kernel(P, noise, rng, X, Y, Z, run, steps):
    """T SOBA iterations in place on X (R, d_x), Y, Z (R, d_y) (+z convention): per
    iteration the draws, then one region over replicas (docs: _baselines_numba), in which
    replica r makes its five oracle rows, then the update (or the freeze).
    Returns (X records, Y records, diverged_at).

    The replica's iteration is written in the loop body, not in a row function: a call
    passes the ~20 arrays of the rows and draws records field by field, which doubled an
    iteration at small d (Example 3, d = 1: 207 -> 101 ns per replica-iteration, the same
    numbers bit for bit); Numba's ``inline="always"`` on a row changed results (see
    ``_baselines_numba``). The rows are borrowed (:mod:`refbilevel.backends.numba_rows`: no
    reference counting; 99 -> 82 ns on the same instance)."""
    T, every = run.T, run.every
    rc, re, gc, ge = steps.rho, steps.rho_exponent, steps.gamma, steps.gamma_exponent
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    s = SobaRows(X, Y, Z, np.ones(R, dtype=np.bool_), div, np.zeros((R, dy)),
                 np.zeros((R, dy)), np.zeros((R, dx)), np.zeros((R, dy)), np.zeros((R, dx)),
                 np.empty((R, dx)), np.empty((R, dy)), np.empty((R, dy)))
    d = soba_draw_buffers(P, R, dx, dy)
    for t in range(1, T + 1):
        rho = rc if re == 0.0 else rc / t**re
        gamma = gc if ge == 0.0 else gc / t**ge
        soba_draws(rng, P, noise, d)
        for r in prange(R):
            if not s.act[r]:
                continue
            x, y, z = row(s.X, r), row(s.Y, r), row(s.Z, r)
            gy, hz, cz = row(s.DY, r), row(s.HZ, r), row(s.CZ, r)
            fy, fx = row(s.FY, r), row(s.FX, r)
            xn, yn, zn = row(s.XN, r), row(s.YN, r), row(s.ZN, r)
            inner = row(d.inner, r)
            oracle_row(GRAD_Y_G, P, noise, inner, row(d.z_grad_y_g, r), x, y, y, gy)
            oracle_row(HVP, P, noise, inner, row(d.z_hvp, r), x, y, z, hz)
            oracle_row(JVP, P, noise, inner, row(d.z_jvp, r), x, y, z, cz)
            outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r),
                      x, y, fy, fx)
            for i in range(xn.shape[0]):
                xn[i] = x[i] - gamma * (fx[i] - cz[i])
            for i in range(yn.shape[0]):
                yn[i] = y[i] - rho * gy[i]
                zn[i] = z[i] - rho * (hz[i] - fy[i])
            if all_finite(xn) and all_finite(yn) and all_finite(zn):
                # element loops, not x[:] = xn: in a prange body the parfor pass turns a
                # slice assignment into a nested parfor whose writes were lost
                for i in range(xn.shape[0]):
                    x[i] = xn[i]
                for i in range(yn.shape[0]):
                    y[i] = yn[i]
                    z[i] = zn[i]
            else:
                s.act[r] = False
                s.div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


soba_kernel, soba_kernel_parallel = jit_pair(_soba_kernel)


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
    kernel = (soba_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else soba_kernel)
    Xr, Yr, div = kernel(k.P, k.noise, oracle.rng, x, y, z, RunLength(T, every),
                         SobaSteps(float(rc), float(re), float(gc), float(ge)))
    store_sampler_state(oracle, k, R, T > 0)
    per = {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1, "grad_x_f": 1,
           "samples": 2 if k.finite_sum else 5}
    return finish_trace(oracle, "soba", params, seed, T, every, Xr, Yr, div, per, v=-z)
