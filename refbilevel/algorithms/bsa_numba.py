"""BSA as one explicit Numba kernel (Ghadimi & Wang 2018; docs/baselines.rst §1;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.bsa.run_bsa`: per iteration n_k × ∇_y G, ∇_y F, ∇_x F,
the HIA lengths (``_baselines.hia_draws``, B = ``n_hia_draws``), max p HVPs, JVP.
The schedule (n_k, β's, α_k) is evaluated in Python by the reference's own schedule function
and passed as arrays, so the step sizes are bit-identical. Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.
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
    draw_calls,
    draw_hia,
    draw_outer,
    finish_trace,
    hia_row,
    kernel_inputs,
    oracle_row,
    outer_row,
    sgd_steps_row,
    start_records,
    store_record,
    store_sampler_state,
    use_threads,
)
from refbilevel.algorithms.bsa import bsa_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import jit_pair
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.numba_rows import borrowed_subrow as subrow
from refbilevel.backends.registry import register


class BSASteps(NamedTuple):
    """BSA's LL steps per iteration nk (T,), their step sizes betas (concatenated), outer
    steps alphas (T,), the HIA step eta, length N and number of averaged draws n_draws."""

    nk: np.ndarray
    betas: np.ndarray
    alphas: np.ndarray
    eta: float
    N: int
    n_draws: int

class BSADraws(NamedTuple):
    """One BSA iteration's random numbers for all replicas, in the reference's order: n_k
    lower-level calls, the outer sample, HIA's chain lengths, weights and HVP calls, the JVP
    call."""

    sgd_idx: np.ndarray
    sgd_z: np.ndarray
    outer: np.ndarray
    z_grad_y_f: np.ndarray
    z_grad_x_f: np.ndarray
    hia_p: np.ndarray
    hia_w: np.ndarray
    hia_idx: np.ndarray
    hia_z: np.ndarray
    jvp_idx: np.ndarray
    jvp_z: np.ndarray


class BSARows(NamedTuple):
    """The replicas' state (X, Y, act, diverged_at) and per-replica workspace rows (TTSA's
    kernel uses the same record: both run an HIA chain after their y-steps)."""

    X: np.ndarray
    Y: np.ndarray
    act: np.ndarray
    div: np.ndarray
    YN: np.ndarray
    G: np.ndarray
    FY: np.ndarray
    FX: np.ndarray
    HV: np.ndarray
    ACC: np.ndarray
    CZ: np.ndarray
    XN: np.ndarray


@njit(cache=True, error_model="numpy", inline="always")
def bsa_draws(rng, P, noise, R, dx, dy, n_sgd, N, n_draws):
    sgd = draw_calls(rng, P, noise, GRAD_Y_G, n_sgd, R, dy)
    o = draw_outer(rng, P, noise, R, dx, dy)
    h = draw_hia(rng, P, noise, N, n_draws, R, dy)
    jv = draw_calls(rng, P, noise, JVP, 1, R, dx)
    return BSADraws(sgd.idx, sgd.z, o.idx, o.z_y, o.z_x, h.p, h.w, h.idx, h.z, jv.idx, jv.z)


@njit(cache=True, error_model="numpy")
def bsa_row(P, noise, d, s, r, t, betas, alpha, N, eta):
    """Replica r's BSA iteration t: n_k SGD steps (step sizes ``betas``), the outer sample,
    HIA on ∇_y F, the JVP and the x-update (or the freeze)."""
    x, yn, g, fy, fx = row(s.X, r), row(s.YN, r), row(s.G, r), row(s.FY, r), row(s.FX, r)
    hv, acc, cz, xn = row(s.HV, r), row(s.ACC, r), row(s.CZ, r), row(s.XN, r)
    yn[:] = row(s.Y, r)
    sgd_steps_row(P, noise, d.sgd_idx, d.sgd_z, r, x, yn, g, betas)
    outer_row(P, noise, row(d.outer, r), row(d.z_grad_y_f, r), row(d.z_grad_x_f, r), x, yn, fy, fx)
    hia_row(P, noise, d.hia_p[r], row(d.hia_w, r), d.hia_idx, d.hia_z, r, x, yn, fy, hv, acc,
            N, eta)
    oracle_row(JVP, P, noise, subrow(d.jvp_idx, 0, r), subrow(d.jvp_z, 0, r), x, yn, fy, cz)
    for i in range(xn.shape[0]):
        xn[i] = x[i] - alpha * (fx[i] - cz[i])
    if all_finite(xn) and all_finite(yn):
        x[:] = xn
        s.Y[r] = yn
    else:
        s.act[r] = False
        s.div[r] = t


def _bsa_kernel(P, noise, rng, X, Y, run, steps):
    """T BSA iterations in place on X (R, d_x), Y (R, d_y); iteration t runs nk[t-1] LL
    steps with the next entries of ``betas`` and the outer step alphas[t-1]. Per iteration
    the draws, then one region over replicas (docs: _baselines_numba).
    Returns (X records, Y records, diverged_at, p (T, R), HVP steps per iteration (T,))."""
    T, every = run.T, run.every
    nk, betas, alphas, eta, N = steps.nk, steps.betas, steps.alphas, steps.eta, steps.N
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
    off = 0
    for t in range(1, T + 1):
        n_sgd = nk[t - 1]
        d = bsa_draws(rng, P, noise, R, dx, dy, n_sgd, N, n_draws)
        ps[t - 1] = d.hia_p
        n_hvp[t - 1] = d.hia_idx.shape[0]
        b = betas[off:off + n_sgd]
        off += n_sgd
        for r in prange(R):
            if s.act[r]:
                bsa_row(P, noise, d, s, r, t, b, alphas[t - 1], N, eta)
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, ps, n_hvp


bsa_kernel, bsa_kernel_parallel = jit_pair(_bsa_kernel)


@register("algorithm", "bsa", "numba")
def run_bsa_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                  outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
                  n_inner_steps: int = 10, n_hia_steps: int = 10, n_hia_draws: int = 1,
                  theory_constants: dict | None = None, record_every: int = 1,
                  seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.bsa.run_bsa` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, eta, N, params = bsa_params(oracle, mode, T, step_size, outer_ratio, exponents,
                                          n_inner_steps, n_hia_steps, theory_constants,
                                          n_hia_draws)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    sch = [schedule(t) for t in range(1, T + 1)]
    nk = np.array([s[0] for s in sch], dtype=np.int64)
    betas = np.array([b for s in sch for b in s[1]], dtype=np.float64)
    alphas = np.array([s[2] for s in sch], dtype=np.float64)
    k = kernel_inputs(oracle, "bsa", R, draws=T > 0)
    kernel = (bsa_kernel_parallel if use_threads(k, x.shape[0], x.shape[1], y.shape[1])
              else bsa_kernel)
    Xr, Yr, div, ps, steps = kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                    BSASteps(nk, betas, alphas, float(eta), int(N),
                                             int(params["n_hia_draws"])))
    store_sampler_state(oracle, k, R, T > 0)
    ones = np.ones(T, dtype=np.int64)
    per = {"grad_y_g": nk, "hvp": steps, "jvp": ones, "grad_y_f": ones, "grad_x_f": ones,
           "samples": nk + steps + (2 if k.finite_sum else 3)}
    return finish_trace(oracle, "bsa", params, seed, T, every, Xr, Yr, div, per, hia_p=ps)
