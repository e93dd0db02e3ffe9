"""TTSA as one explicit Numba kernel (Hong, Wai, Wang, Yang 2023; docs/baselines.rst §3;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.ttsa.run_ttsa`: per iteration ∇_y G (its minibatch is
reused by the cross product with a FiniteSumOracle), ∇_y F, ∇_x F, the HIA lengths
(``_baselines.hia_draws``, B = ``n_hia_draws``), max p HVPs, JVP. The schedule
(β_k, α_k, N_k) is evaluated in Python by the reference's schedule function. Oracles and
divergence handling: see :mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_Y_G,
    JVP,
    RunLength,
    all_finite,
    draw_hia,
    draw_idx,
    draw_noise,
    draw_outer,
    finish_trace,
    hia_row,
    kernel_inputs,
    oracle_row,
    outer_row,
    start_records,
    store_record,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.bsa_numba import BSARows
from refbilevel.algorithms.trace import Trace
from refbilevel.algorithms.ttsa import ttsa_params
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register


class TTSASteps(NamedTuple):
    """TTSA's per-iteration LL steps betas (T,), outer steps alphas (T,), HIA lengths Ns (T,)
    the HIA step eta and the number of averaged HIA draws n_draws."""

    betas: np.ndarray
    alphas: np.ndarray
    Ns: np.ndarray
    eta: float
    n_draws: int

class TTSADraws(NamedTuple):
    """One TTSA iteration's random numbers for all replicas, in the reference's order: the
    inner sample (shared by ∇_y G and the JVP for a finite sum), the noise of ∇_y G, the
    outer sample, HIA's lengths and HVP calls, the noise of the JVP."""

    inner: np.ndarray
    z_grad_y_g: np.ndarray
    outer: np.ndarray
    z_grad_y_f: np.ndarray
    z_grad_x_f: np.ndarray
    hia_p: np.ndarray
    hia_w: np.ndarray
    hia_idx: np.ndarray
    hia_z: np.ndarray
    z_jvp: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def ttsa_draws(rng, P, noise, R, dx, dy, N, n_draws):
    inner = draw_idx(rng, P, False, R)  # shared with the cross product (finite sum)
    z_gy = draw_noise(rng, P, noise, GRAD_Y_G, R, dy)
    o = draw_outer(rng, P, noise, R, dx, dy)
    h = draw_hia(rng, P, noise, N, n_draws, R, dy)
    z_jv = draw_noise(rng, P, noise, JVP, R, dx)
    return TTSADraws(inner, z_gy, o.idx, o.z_y, o.z_x, h.p, h.w, h.idx, h.z, z_jv)


@njit(cache=True, error_model="numpy")
def ttsa_row(P, noise, d, s, r, t, beta, alpha, N, eta):
    """Replica r's TTSA iteration t: one y-step, the outer sample, HIA on ∇_y F, the JVP and
    the x-update (or the freeze)."""
    x, y, yn = row(s.X, r), row(s.Y, r), row(s.YN, r)
    g, fy, fx = row(s.G, r), row(s.FY, r), row(s.FX, r)
    hv, acc, cz, xn = row(s.HV, r), row(s.ACC, r), row(s.CZ, r), row(s.XN, r)
    oracle_row(GRAD_Y_G, P, noise, row(d.inner, r), row(d.z_grad_y_g, r), x, y, y, g)
    for i in range(yn.shape[0]):
        yn[i] = y[i] - beta * g[i]
    outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r), x, yn, fy, fx)
    hia_row(P, noise, d.hia_p[r], row(d.hia_w, r), d.hia_idx, d.hia_z, r, x, yn, fy, hv, acc,
            N, eta)
    oracle_row(JVP, P, noise, row(d.inner, r), row(d.z_jvp, r), x, yn, fy, cz)
    for i in range(xn.shape[0]):
        xn[i] = x[i] - alpha * (fx[i] - cz[i])
    if all_finite(xn) and all_finite(yn):
        x[:] = xn
        y[:] = yn
    else:
        s.act[r] = False
        s.div[r] = t


def _ttsa_kernel(P, noise, rng, X, Y, run, steps):
    """T TTSA iterations in place on X (R, d_x), Y (R, d_y): per iteration the draws, then
    one region over replicas (docs: _baselines_numba).
    Returns (X records, Y records, diverged_at, p (T, R), HVP steps per iteration (T,))."""
    T, every = run.T, run.every
    betas, alphas, Ns, eta = steps.betas, steps.alphas, steps.Ns, steps.eta
    n_draws = steps.n_draws
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    ps = np.zeros((T, R), dtype=np.int64)
    n_hvp = np.zeros(T, dtype=np.int64)
    s = BSARows(X, Y, np.ones(R, dtype=np.bool_), div, np.empty((R, dy)), np.zeros((R, dy)),
                 np.zeros((R, dy)), np.zeros((R, dx)), np.zeros((R, dy)), np.zeros((R, dy)),
                 np.zeros((R, dx)), np.empty((R, dx)))
    for t in range(1, T + 1):
        N = Ns[t - 1]
        d = ttsa_draws(rng, P, noise, R, dx, dy, N, n_draws)
        ps[t - 1] = d.hia_p
        n_hvp[t - 1] = d.hia_idx.shape[0]
        for r in prange(R):
            if s.act[r]:
                ttsa_row(P, noise, d, s, r, t, betas[t - 1], alphas[t - 1], N, eta)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, ps, n_hvp


ttsa_kernel, ttsa_kernel_parallel = jit_pair(_ttsa_kernel)


@register("algorithm", "ttsa", "numba")
def run_ttsa_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                   outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.4, 0.6),
                   n_hia_steps: int = 10, n_hia_draws: int = 1,
                   theory_constants: dict | None = None, record_every: int = 1,
                   seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.ttsa.run_ttsa` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, eta, params = ttsa_params(oracle, mode, T, step_size, outer_ratio, exponents,
                                        n_hia_steps, theory_constants, n_hia_draws)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    sch = [schedule(t) for t in range(1, T + 1)]
    betas = np.array([s[0] for s in sch], dtype=np.float64)
    alphas = np.array([s[1] for s in sch], dtype=np.float64)
    Ns = np.array([s[2] for s in sch], dtype=np.int64)
    k = kernel_inputs(oracle, "ttsa", R, draws=T > 0)
    kernel = (ttsa_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else ttsa_kernel)
    Xr, Yr, div, ps, steps = kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                    TTSASteps(betas, alphas, Ns, float(eta),
                                              int(params["n_hia_draws"])))
    store_sampler_state(oracle, k, R, T > 0)
    ones = np.ones(T, dtype=np.int64)
    per = {"grad_y_g": ones, "hvp": steps, "jvp": ones, "grad_y_f": ones, "grad_x_f": ones,
           "samples": steps + (2 if k.finite_sum else 4)}
    return finish_trace(oracle, "ttsa", params, seed, T, every, Xr, Yr, div, per, hia_p=ps)
