"""VRBO as one explicit Numba kernel (Yang, Ji, Liang 2021; docs/baselines.rst §13;
docs/design.rst §Backends). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.vrbo.run_vrbo`: the checkpoint refresh (the whole data
set on a finite-sum oracle, one draw on a Gaussian one), then m + 1 coupled-pair steps, each
sample drawn once and evaluated at both points
(:mod:`refbilevel.algorithms.coupled_hypergradient_numba`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    RunLength,
    all_finite,
    finish_trace,
    kernel_inputs,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms.coupled_hypergradient_numba import (
    coupled_hypergradients,
    coupled_lower_gradients,
)
from refbilevel.algorithms.trace import Trace
from refbilevel.algorithms.vrbo import vrbo_params
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class VRBOSteps(NamedTuple):
    """VRBO's y step beta, x step alpha, period q, inner steps m (m + 1 per outer
    iteration), Neumann length Q and step eta, the lag-free indexing flag, and whether the
    refresh runs on the whole data set (finite-sum oracle)."""

    beta: float
    alpha: float
    q: int
    m: int
    Q: int
    eta: float
    lag_free: bool
    full: bool


@njit(cache=True, error_model="numpy")
def vrbo_kernel(P, noise, rng, X, Y, run, steps, full_inner, full_outer):
    """T VRBO outer iterations in place on X (R, d_x), Y (R, d_y).
    Returns (X records, Y records, diverged_at)."""
    T, every = run.T, run.every
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    U = np.zeros((R, dy))
    V = np.zeros((R, dx))
    YL = Y.copy()
    UN = np.zeros((R, dy))
    VN = np.zeros((R, dx))
    XN = np.zeros((R, dx))
    XQ = np.zeros((R, dx))
    YQ = np.zeros((R, dy))
    YT = np.zeros((R, dy))
    G0 = np.zeros((R, dy))
    G1 = np.zeros((R, dy))
    H0 = np.zeros((R, dx))
    H1 = np.zeros((R, dx))
    p = np.zeros(R, dtype=np.int64)
    no_idx = np.zeros((R, 1), dtype=np.int64)
    for it in range(1, T + 1):
        UN[:] = U
        VN[:] = V
        if (it - 1) % steps.q == 0:
            coupled_lower_gradients(P, noise, rng, X, Y, X, Y, False, G0, G1, act, steps.full,
                                    full_inner)
            coupled_hypergradients(P, noise, rng, X, Y, X, Y, False, False, steps.Q,
                                   steps.eta, H0, H1, p, act, steps.full, full_inner,
                                   full_outer, 1)
            UN[:] = G0
            VN[:] = H0
            YQ[:] = Y
        elif steps.lag_free:
            YQ[:] = YL
        else:
            YQ[:] = Y
        for r in range(R):
            for i in range(dx):
                XN[r, i] = X[r, i] - steps.alpha * VN[r, i]
        XQ[:] = X
        YT[:] = Y
        for _ in range(steps.m + 1):
            coupled_lower_gradients(P, noise, rng, XN, YT, XQ, YQ, True, G0, G1, act, False,
                                    no_idx)
            coupled_hypergradients(P, noise, rng, XN, YT, XQ, YQ, True, False, steps.Q,
                                   steps.eta, H0, H1, p, act, False, no_idx, no_idx, 1)
            for r in range(R):
                if not act[r]:
                    continue
                for i in range(dy):
                    UN[r, i] = UN[r, i] + G0[r, i] - G1[r, i]
                for i in range(dx):
                    VN[r, i] = VN[r, i] + H0[r, i] - H1[r, i]
                for i in range(dx):
                    XQ[r, i] = XN[r, i]
                for i in range(dy):
                    YQ[r, i] = YT[r, i]
                    YT[r, i] = YT[r, i] - steps.beta * UN[r, i]
        for r in range(R):
            if not act[r]:
                continue
            if (all_finite(XN[r]) and all_finite(YT[r]) and all_finite(UN[r])
                    and all_finite(VN[r])):
                X[r] = XN[r]
                Y[r] = YT[r]
                U[r] = UN[r]
                V[r] = VN[r]
                YL[r] = YQ[r]
            else:
                act[r] = False
                div[r] = it
        k = store_record(it, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


@register("algorithm", "vrbo", "numba")
def run_vrbo_numba(oracle, x0, y0, *, T: int, step_size: float = 0.1, outer_ratio: float = 1.0,
                   period: int = 5, n_inner_steps: int = 10, neumann_step: float = 0.1,
                   n_neumann_steps: int = 10, lag_free: bool = False, record_every: int = 1,
                   seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.vrbo.run_vrbo` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    beta, alpha, q, m, series, params = vrbo_params(
        step_size, outer_ratio, period, n_inner_steps, neumann_step, n_neumann_steps, lag_free)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "vrbo", R, draws=T > 0)
    if k.finite_sum:
        n_in, n_out = int(oracle.problem.n_inner), int(oracle.problem.n_outer)
        full_inner = np.ascontiguousarray(np.broadcast_to(np.arange(n_in), (R, n_in)))
        full_outer = np.ascontiguousarray(np.broadcast_to(np.arange(n_out), (R, n_out)))
    else:
        full_inner = full_outer = np.zeros((R, 1), dtype=np.int64)
    steps = VRBOSteps(float(beta), float(alpha), q, m, series.length, float(series.eta),
                      bool(params["lag_free"]), bool(k.finite_sum))
    Xr, Yr, div = vrbo_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every), steps,
                              full_inner, full_outer)
    store_sampler_state(oracle, k, R, T > 0)
    its = np.arange(1, T + 1)
    refresh = ((its - 1) % q == 0).astype(np.int64)
    calls = 2 * (m + 1) + refresh
    bundle = 1 + (1 if k.finite_sum else 2) + series.length + 1  # ∇_y G, outer, Q HVP, JVP
    samples = (m + 1) * bundle + (0 if k.finite_sum else refresh * bundle)
    per = {"grad_y_g": calls, "grad_y_f": calls, "grad_x_f": calls, "jvp": calls,
           "hvp": series.length * calls, "samples": samples}
    return finish_trace(oracle, "vrbo", params, seed, T, every, Xr, Yr, div, per)
