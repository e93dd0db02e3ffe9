"""MRBO as one explicit Numba kernel (Yang, Ji, Liang 2021; docs/baselines.rst §12;
docs/design.rst §Backends), shared with SUSTAIN (:mod:`refbilevel.algorithms.sustain_numba`,
randomized Neumann series). Same mathematics, parameters and random-number order as the NumPy
reference :func:`refbilevel.algorithms.mrbo.recursive_momentum_bilevel`: per iteration the
∇_y G sample, then the bundle of ĥ, each drawn once and evaluated at z_t and z_{t−1}
(:mod:`refbilevel.algorithms.coupled_hypergradient_numba`). Oracles and divergence handling:
see :mod:`refbilevel.algorithms._baselines_numba`.
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
from refbilevel.algorithms.coupled_hypergradient import NeumannSeries
from refbilevel.algorithms.coupled_hypergradient_numba import (
    coupled_hypergradients,
    coupled_lower_gradients,
)
from refbilevel.algorithms.mrbo import MomentumSchedule, momentum_schedule, mrbo_series
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.registry import register


class MomentumSteps(NamedTuple):
    """The schedule arrays (:class:`~refbilevel.algorithms.mrbo.MomentumSchedule`) and the
    Neumann series (randomized or truncated, its length, step and number of averaged
    randomized draws) of one run."""

    lr_y: np.ndarray
    lr_x: np.ndarray
    a_x: np.ndarray
    a_y: np.ndarray
    randomized: bool
    length: int
    eta: float
    draws: int


@njit(cache=True, error_model="numpy")
def recursive_momentum_kernel(P, noise, rng, X, Y, run, steps):
    """T MRBO/SUSTAIN iterations in place on X (R, d_x), Y (R, d_y).
    Returns (X records, Y records, diverged_at, realized p (T, R), HVP calls per point (T,))."""
    T, every = run.T, run.every
    R, dx = X.shape
    dy = Y.shape[1]
    Xr, Yr, div = start_records(T, every, X, Y)
    k = 1
    act = np.ones(R, dtype=np.bool_)
    XP = X.copy()
    YP = Y.copy()
    U = np.zeros((R, dy))
    V = np.zeros((R, dx))
    G0 = np.zeros((R, dy))
    G1 = np.zeros((R, dy))
    H0 = np.zeros((R, dx))
    H1 = np.zeros((R, dx))
    ps = np.zeros((T, R), dtype=np.int64)
    hvps = np.zeros(T, dtype=np.int64)
    xn = np.empty(dx)
    yn = np.empty(dy)
    un = np.empty(dy)
    vn = np.empty(dx)
    no_idx = np.zeros((R, 1), dtype=np.int64)
    for t in range(1, T + 1):
        two = t > 1
        coupled_lower_gradients(P, noise, rng, X, Y, XP, YP, two, G0, G1, act, False, no_idx)
        hvps[t - 1] = coupled_hypergradients(P, noise, rng, X, Y, XP, YP, two,
                                             steps.randomized, steps.length, steps.eta,
                                             H0, H1, ps[t - 1], act, False, no_idx, no_idx,
                                             steps.draws)
        ly, lx = steps.lr_y[t - 1], steps.lr_x[t - 1]
        by, bx = 1.0 - steps.a_y[t - 1], 1.0 - steps.a_x[t - 1]
        for r in range(R):
            if not act[r]:
                continue
            for i in range(dy):
                un[i] = G0[r, i] + by * (U[r, i] - G1[r, i]) if two else G0[r, i]
                yn[i] = Y[r, i] - ly * un[i]
            for i in range(dx):
                vn[i] = H0[r, i] + bx * (V[r, i] - H1[r, i]) if two else H0[r, i]
                xn[i] = X[r, i] - lx * vn[i]
            if all_finite(xn) and all_finite(yn) and all_finite(un) and all_finite(vn):
                XP[r] = X[r]
                YP[r] = Y[r]
                X[r] = xn
                Y[r] = yn
                U[r] = un
                V[r] = vn
            else:
                act[r] = False
                div[r] = t
        k = store_record(t, T, every, k, Xr, Yr, X, Y)
    return Xr, Yr, div, ps, hvps


def run_recursive_momentum_numba(oracle, x0, y0, *, T: int, series: NeumannSeries,
                                 sched: MomentumSchedule, params: dict, name: str,
                                 record_every: int, seed) -> Trace:
    """The Numba twin of :func:`refbilevel.algorithms.mrbo.recursive_momentum_bilevel`."""
    x, y, R = B.start_points(oracle, x0, y0)
    every = B.recorder(oracle, R, record_every).record_every
    k = kernel_inputs(oracle, name, R, draws=T > 0)
    lr_y, lr_x, a_x, a_y = (np.ascontiguousarray(a, dtype=np.float64) for a in sched)
    steps = MomentumSteps(lr_y, lr_x, a_x, a_y, series.randomized, series.length,
                          float(series.eta), int(series.draws))
    Xr, Yr, div, ps, hvps = recursive_momentum_kernel(k.P, k.noise, oracle.rng, x, y,
                                                      RunLength(T, every), steps)
    store_sampler_state(oracle, k, R, T > 0)
    points = np.full(T, 2, dtype=np.int64)
    if T:
        points[0] = 1
    # samples per iteration: ∇_y G, the outer sample (two noise blocks on a Gaussian oracle),
    # one per HVP step, the JVP sample
    samples = 1 + (1 if k.finite_sum else 2) + hvps + 1
    per = {"grad_y_g": points, "grad_y_f": points, "grad_x_f": points, "jvp": points,
           "hvp": points * hvps, "samples": samples}
    extra = {"hia_p": ps} if series.randomized else {}
    return finish_trace(oracle, name, params, seed, T, every, Xr, Yr, div, per, **extra)


@register("algorithm", "mrbo", "numba")
def run_mrbo_numba(oracle, x0, y0, *, T: int, step_size: float = 0.1, outer_ratio: float = 1.0,
                   offset: float = 0.0, momentum_x: float = 0.5, momentum_y: float = 0.5,
                   neumann_step: float = 0.1, n_neumann_steps: int = 10,
                   record_every: int = 1, seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.mrbo.run_mrbo` (same arguments, same random
    numbers from ``oracle.rng``, same Trace with ``backend == "numba"``)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    series = mrbo_series(neumann_step, n_neumann_steps)
    sched, params = momentum_schedule(T, step_size, outer_ratio, offset, momentum_x,
                                      momentum_y)
    params.update(neumann_step=series.eta, n_neumann_steps=series.length)
    return run_recursive_momentum_numba(oracle, x0, y0, T=T, series=series, sched=sched,
                                        params=params, name="mrbo",
                                        record_every=record_every, seed=seed)
