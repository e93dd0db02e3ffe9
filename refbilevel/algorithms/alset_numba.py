"""ALSET as one explicit Numba kernel (Chen, Sun, Yin, NeurIPS 2021; docs/baselines.rst §17;
docs/design.rst §Backends). Same mathematics, steps and random-number order as the NumPy
reference :func:`refbilevel.algorithms.alset.run_alset`: per iteration T_ll lower-level SGD
steps, the outer sample(s) (∇_y F, ∇_x F), N' (randomized estimate only), the HVPs, the JVP,
each on a fresh sample. Oracles and divergence handling: see
:mod:`refbilevel.algorithms._baselines_numba`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    RunLength,
    all_finite,
    call_hvp,
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
from refbilevel.algorithms.alset import alset_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class AlsetSteps(NamedTuple):
    """ALSET's constant steps: lower-level β, outer α, Neumann η; T_ll lower-level steps, N
    Neumann length, and the estimator (randomized N' or fixed length N)."""

    lower_step: float
    outer_step: float
    eta: float
    n_inner_steps: int
    n_hia_steps: int
    randomized: bool


@njit(cache=True, error_model="numpy")
def fixed_neumann_kernel(P, noise, rng, X, Y, V, U, HU, N, eta, act):
    """V ← NS_{N−1}(V) = η Σ_{q<N} u_q in place (the reference's ``alset.fixed_neumann``);
    U, HU: workspaces."""
    R, dy = V.shape
    U[:] = V
    for _ in range(N - 1):
        idx = draw_idx(rng, P, False, R)
        call_hvp(P, noise, rng, idx, X, Y, U, HU, act)
        for r in range(R):
            if act[r]:
                for i in range(dy):
                    U[r, i] = U[r, i] - eta * HU[r, i]
                    V[r, i] = V[r, i] + U[r, i]
    for r in range(R):
        for i in range(dy):
            V[r, i] = eta * V[r, i]


@njit(cache=True, error_model="numpy")
def alset_kernel(P, noise, rng, X, Y, run, steps):
    """T ALSET iterations in place on X (R, d_x), Y (R, d_y).
    Returns (X records, Y records, diverged_at, N' (T, R), HVPs per iteration (T,))."""
    T, every = run.T, run.every
    beta, alpha, eta = steps.lower_step, steps.outer_step, steps.eta
    N = steps.n_hia_steps
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    ps = np.zeros((T, R), dtype=np.int64)
    hvps = np.zeros(T, dtype=np.int64)
    YN = np.empty((R, dy))
    G = np.zeros((R, dy))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    HV = np.zeros((R, dy))
    U = np.zeros((R, dy))
    CZ = np.zeros((R, dx))
    xn = np.empty(dx)
    for t in range(1, T + 1):
        YN[:] = Y
        for _ in range(steps.n_inner_steps):
            inner_sgd_step(P, noise, rng, X, YN, G, beta, act)
        call_outer(P, noise, rng, X, YN, FY, FX, act)
        if steps.randomized:
            hvps[t - 1] = hia_kernel(P, noise, rng, X, YN, FY, HV, N, eta, act, ps[t - 1])
        else:
            fixed_neumann_kernel(P, noise, rng, X, YN, FY, U, HV, N, eta, act)
            hvps[t - 1] = N - 1
        idx = draw_idx(rng, P, False, R)
        call_jvp(P, noise, rng, idx, X, YN, FY, CZ, act)
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dx):
                xn[i] = X[r, i] - alpha * (FX[r, i] - CZ[r, i])
            if all_finite(xn) and all_finite(YN[r]) and all_finite(FY[r]):
                X[r] = xn
                Y[r] = YN[r]
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, ps, hvps


@register("algorithm", "alset", "numba")
def run_alset_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                    outer_ratio: float = 1.0, n_inner_steps: int = 1, n_hia_steps: int = 10,
                    neumann_step: float | None = None, neumann: str = "randomized",
                    theory_constants: dict | None = None, record_every: int = 1,
                    seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.alset.run_alset` (same arguments, same
    random numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = alset_params(oracle, mode, T, step_size, outer_ratio, n_inner_steps, n_hia_steps,
                          neumann_step, neumann, theory_constants)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "alset", R, draws=T > 0)
    steps = AlsetSteps(params["lower_step"], params["outer_step"], float(params["eta"]),
                       params["n_inner_steps"], params["n_hia_steps"],
                       params["randomized_neumann"])
    Xr, Yr, div, ps, hvps = alset_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every),
                                         steps)
    store_sampler_state(oracle, k, R, T > 0)
    T_ll = params["n_inner_steps"]
    ones = np.ones(T, dtype=np.int64)
    # samples: T_ll lower-level, the outer one(s), one per HVP, one for the JVP
    outer_samples = 1 if k.finite_sum else 2
    per = {"grad_y_g": T_ll, "grad_y_f": 1, "grad_x_f": 1, "jvp": ones, "hvp": hvps,
           "samples": hvps + T_ll + outer_samples + 1}
    extra = {"hia_p": ps} if params["randomized_neumann"] else {}
    return finish_trace(oracle, "alset", params, seed, T, every, Xr, Yr, div, per, **extra)
