"""BSA as one explicit Numba kernel (Ghadimi & Wang 2018; docs/baselines.rst §1;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.bsa.run_bsa`: per iteration n_k × ∇_y G, ∇_y F, ∇_x F,
p (one ``rng.integers(0, N, R)``), max p HVPs, JVP. The schedule (n_k, β's, α_k) is
evaluated in Python by the reference's own schedule function and passed as arrays, so the
step sizes are bit-identical. Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    RunLength,
    all_finite,
    call_jvp,
    call_outer,
    draw_idx,
    finish_trace,
    hia_kernel,
    inner_sgd_step,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.bsa import bsa_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class BSASteps(NamedTuple):
    """BSA's LL steps per iteration nk (T,), their step sizes betas (concatenated), outer
    steps alphas (T,), and the HIA step eta and length N."""

    nk: np.ndarray
    betas: np.ndarray
    alphas: np.ndarray
    eta: float
    N: int

@njit(cache=True, error_model="numpy")
def bsa_kernel(P, noise, rng, X, Y, run, steps):
    """T BSA iterations in place on X (R, d_x), Y (R, d_y); iteration t runs nk[t-1] LL
    steps with the next entries of ``betas`` and the outer step alphas[t-1].
    Returns (X records, Y records, diverged_at, p (T, R), HVP steps per iteration (T,))."""
    T, every = run.T, run.every
    nk, betas, alphas, eta, N = steps.nk, steps.betas, steps.alphas, steps.eta, steps.N
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    ps = np.zeros((T, R), dtype=np.int64)
    steps = np.zeros(T, dtype=np.int64)
    YN = np.empty((R, dy))
    G = np.zeros((R, dy))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    HV = np.zeros((R, dy))
    CZ = np.zeros((R, dx))
    xn = np.empty(dx)
    off = 0
    for t in range(1, T + 1):
        YN[:] = Y
        for j in range(nk[t - 1]):
            inner_sgd_step(P, noise, rng, X, YN, G, betas[off + j], act)
        off += nk[t - 1]
        call_outer(P, noise, rng, X, YN, FY, FX, act)
        steps[t - 1] = hia_kernel(P, noise, rng, X, YN, FY, HV, N, eta,
                                  act, ps[t - 1])
        idx = draw_idx(rng, P, False, R)
        call_jvp(P, noise, rng, idx, X, YN, FY, CZ, act)
        alpha = alphas[t - 1]
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - alpha * (FX[r, i] - CZ[r, i])
            if all_finite(xn) and all_finite(YN[r]):
                X[r] = xn
                Y[r] = YN[r]
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, ps, steps


@register("algorithm", "bsa", "numba")
def run_bsa_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                  outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
                  n_inner_steps: int = 10, n_hia_steps: int = 10,
                  theory_constants: dict | None = None, record_every: int = 1,
                  seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.bsa.run_bsa` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, eta, N, params = bsa_params(oracle, mode, T, step_size, outer_ratio, exponents,
                                          n_inner_steps, n_hia_steps, theory_constants)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    sch = [schedule(t) for t in range(1, T + 1)]
    nk = np.array([s[0] for s in sch], dtype=np.int64)
    betas = np.array([b for s in sch for b in s[1]], dtype=np.float64)
    alphas = np.array([s[2] for s in sch], dtype=np.float64)
    k = kernel_inputs(oracle, "bsa", R, draws=T > 0)
    Xr, Yr, div, ps, steps = bsa_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                        BSASteps(nk, betas, alphas, float(eta), int(N)))
    store_sampler_state(oracle, k, R, T > 0)
    ones = np.ones(T, dtype=np.int64)
    per = {"grad_y_g": nk, "hvp": steps, "jvp": ones, "grad_y_f": ones, "grad_x_f": ones,
           "samples": nk + steps + (2 if k.finite_sum else 3)}
    return finish_trace(oracle, "bsa", params, seed, T, every, Xr, Yr, div, per, hia_p=ps)
