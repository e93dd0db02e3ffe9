"""TTSA as one explicit Numba kernel (Hong, Wai, Wang, Yang 2023; docs/baselines.rst §3;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.ttsa.run_ttsa`: per iteration ∇_y G (its minibatch is
reused by the cross product with a FiniteSumOracle), ∇_y F, ∇_x F, p (one
``rng.integers(0, N_k, R)``), max p HVPs, JVP. The schedule (β_k, α_k, N_k) is evaluated in
Python by the reference's schedule function. Oracles and divergence handling: see
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
    call_jvp,
    call_outer,
    draw_idx,
    finish_trace,
    hia_kernel,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.trace import Trace
from refbilevel.algorithms.ttsa import ttsa_params
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class TTSASteps(NamedTuple):
    """TTSA's per-iteration LL steps betas (T,), outer steps alphas (T,), HIA lengths Ns (T,)
    and the HIA step eta."""

    betas: np.ndarray
    alphas: np.ndarray
    Ns: np.ndarray
    eta: float

@njit(cache=True, error_model="numpy")
def ttsa_kernel(P, noise, rng, X, Y, run, steps):
    """T TTSA iterations in place on X (R, d_x), Y (R, d_y).
    Returns (X records, Y records, diverged_at, p (T, R), HVP steps per iteration (T,))."""
    T, every = run.T, run.every
    betas, alphas, Ns, eta = steps.betas, steps.alphas, steps.Ns, steps.eta
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
    for t in range(1, T + 1):
        beta = betas[t - 1]
        idx = draw_idx(rng, P, False, R)  # shared with the cross product (finite sum)
        call_grad_y_g(P, noise, rng, idx, X, Y, G, act)
        for r in range(R):
            for i in range(dy):
                YN[r, i] = Y[r, i] - beta * G[r, i]
        call_outer(P, noise, rng, X, YN, FY, FX, act)
        steps[t - 1] = hia_kernel(P, noise, rng, X, YN, FY, HV, Ns[t - 1],
                                  eta, act, ps[t - 1])
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


@register("algorithm", "ttsa", "numba")
def run_ttsa_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                   outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.4, 0.6),
                   n_hia_steps: int = 10, theory_constants: dict | None = None,
                   record_every: int = 1, seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.ttsa.run_ttsa` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, eta, params = ttsa_params(oracle, mode, T, step_size, outer_ratio, exponents,
                                        n_hia_steps, theory_constants)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    sch = [schedule(t) for t in range(1, T + 1)]
    betas = np.array([s[0] for s in sch], dtype=np.float64)
    alphas = np.array([s[1] for s in sch], dtype=np.float64)
    Ns = np.array([s[2] for s in sch], dtype=np.int64)
    k = kernel_inputs(oracle, "ttsa", R, draws=T > 0)
    Xr, Yr, div, ps, steps = ttsa_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                         TTSASteps(betas, alphas, Ns, float(eta)))
    store_sampler_state(oracle, k, R, T > 0)
    ones = np.ones(T, dtype=np.int64)
    per = {"grad_y_g": ones, "hvp": steps, "jvp": ones, "grad_y_f": ones, "grad_x_f": ones,
           "samples": steps + (2 if k.finite_sum else 4)}
    return finish_trace(oracle, "ttsa", params, seed, T, every, Xr, Yr, div, per, hia_p=ps)
