"""PZOBO as one explicit Numba kernel (Sow, Ji, Liang, NeurIPS 2022; docs/baselines.rst §16;
docs/design.rst §Backends). Same mathematics, schedule and random-number order as the NumPy
reference :func:`refbilevel.algorithms.pzobo.run_pzobo`: per iteration the Q directions
(one ``standard_normal((Q, R, d_x))``), then per lower-level step one sample shared by the
main path and the Q perturbed paths, then the outer sample(s) for ∇_y F, ∇_x F. Oracles and
divergence handling: see :mod:`refbilevel.algorithms._baselines_numba`.

The shared lower-level sample: drawn once per step (``draw_sample``: one minibatch or one noise
block, as ``GaussianOracle.draw``) and evaluated on all Q + 1 paths of a replica at once
(``rows_grad_y_g`` of :mod:`refbilevel.algorithms._sample_rows_numba`: for a finite sum each
block of samples is read once for every path, bit for bit the one-path arithmetic).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms._baselines_numba import (
    GRAD_Y_G,
    RunLength,
    all_finite,
    call_outer,
    draw_sample,
    finish_trace,
    fixed_x_sums,
    kernel_inputs,
    replica_sums,
    start_records,
    store_record,
    store_sampler_state,
)
from refbilevel.algorithms._sample_rows_numba import rows_grad_y_g
from refbilevel.algorithms.pzobo import outer_step, pzobo_params
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class PzoboSteps(NamedTuple):
    """The lower-level step alpha, N steps per path, Q directions, the smoothing mu and the
    outer steps betas (T,)."""

    alpha: float
    n_inner_steps: int
    n_directions: int
    smoothing: float
    betas: np.ndarray


@njit(cache=True, error_model="numpy")
def pzobo_kernel(P, noise, rng, X, Y, run, steps, sums):
    """T PZOBO iterations in place on X (R, d_x), Y (R, d_y). Replica r's main path and its
    Q perturbed paths are the rows of XA[r], YA[r] (Q + 1, d), row 0 the main path: at each
    lower-level step they are evaluated together on the replica's shared sample
    (``rows_grad_y_g``, which reads the finite sum's data once for all of them and keeps
    the y-independent sums of the replica's paths in ``sums``, a ``FixedXSums``, over the N
    steps at one x while the minibatch repeats). Returns (X records, Y records,
    diverged_at)."""
    T, every = run.T, run.every
    alpha, N, Q, mu = steps.alpha, steps.n_inner_steps, steps.n_directions, steps.smoothing
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    paths = np.ones(Q + 1, dtype=np.bool_)
    XA = np.empty((R, Q + 1, dx))
    YA = np.empty((R, Q + 1, dy))
    G = np.zeros((Q + 1, dy))
    FY = np.zeros((R, dy))
    FX = np.zeros((R, dx))
    YM = np.empty((R, dy))
    xn = np.empty(dx)
    for t in range(1, T + 1):
        U = rng.standard_normal((Q, R, dx))
        for r in range(R):
            sums.valid[r] = False  # x_k moved: the paths' points are new
            for j in range(Q + 1):
                for i in range(dx):
                    XA[r, j, i] = X[r, i] if j == 0 else X[r, i] + mu * U[j - 1, r, i]
                for i in range(dy):
                    YA[r, j, i] = Y[r, i]
        for _ in range(N):
            idx, Z = draw_sample(GRAD_Y_G, P, noise, rng, R, dy)
            for r in range(R):
                if not act[r]:
                    continue
                rows_grad_y_g(P, noise.grad_y_g, idx[r], Z[r], XA[r], YA[r], G, paths,
                              replica_sums(sums, r))
                for j in range(Q + 1):
                    for i in range(dy):
                        YA[r, j, i] = YA[r, j, i] - alpha * G[j, i]
        for r in range(R):
            YM[r] = YA[r, 0]
        call_outer(P, noise, rng, X, YM, FY, FX, act)
        beta = steps.betas[t - 1]
        for r in range(R):
            if not act[r]:
                continue
            ok = all_finite(YM[r])
            for i in range(dx):
                xn[i] = FX[r, i]
            for j in range(1, Q + 1):
                ok = ok and all_finite(YA[r, j])
                c = 0.0
                for i in range(dy):
                    c += (YA[r, j, i] - YM[r, i]) / mu * FY[r, i]
                for i in range(dx):
                    xn[i] += c * U[j - 1, r, i] / Q
            for i in range(dx):
                xn[i] = X[r, i] - beta * xn[i]
            if ok and all_finite(xn):
                X[r] = xn
                Y[r] = YM[r]
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div


@register("algorithm", "pzobo", "numba")
def run_pzobo_numba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
                    outer_ratio: float = 1.0, n_inner_steps: int = 10, n_directions: int = 1,
                    smoothing: float = 0.1, outer_exponent: float = 0.0,
                    outer_decay_start: float = 1.0, record_every: int = 1,
                    seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.pzobo.run_pzobo` (same arguments, same
    random numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = pzobo_params(mode, step_size, outer_ratio, n_inner_steps, n_directions,
                          smoothing, outer_exponent, outer_decay_start)
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, "pzobo", R, draws=T > 0)
    betas = np.array([outer_step(params, t) for t in range(1, T + 1)], dtype=np.float64)
    steps = PzoboSteps(params["step_size"], params["n_inner_steps"], params["n_directions"],
                       params["smoothing"], betas)
    batch = k.P.batch_size if k.finite_sum else 1
    sums = fixed_x_sums(R, params["n_directions"] + 1, y.shape[1], batch)
    Xr, Yr, div = pzobo_kernel(k.P, k.noise, oracle.rng, x, y, RunLength(T, every), steps,
                               sums)
    store_sampler_state(oracle, k, R, T > 0)
    N = params["n_inner_steps"]
    per = {"grad_y_g": params["lower_level_gradients"], "grad_y_f": 1, "grad_x_f": 1,
           "samples": N + (1 if k.finite_sum else 2)}
    return finish_trace(oracle, "pzobo", params, seed, T, every, Xr, Yr, div, per)
