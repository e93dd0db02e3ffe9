"""Numba kernels of the Neumann-series estimators (same mathematics as
:mod:`refbilevel.estimators.neumann`, docs/unibio.rst §3.5, docs/baselines.rst §1-§3).

One kernel covers both truncations and both variants; the problem enters as its Numba record
(:mod:`refbilevel.backends.numba_problems`; compiled per family, cached on disk). Per oracle
call the kernel draws one (R, dim) standard-normal block from the caller's Generator, in the
reference's order ([q̂], ∇_x F, v_0, HVPs, JVP), then does the arithmetic replica by replica
(``prange`` when the batch is large enough), so it reproduces the NumPy reference to
rounding on the same Generator (claim X4).

The kernel takes two parameter records, :class:`NeumannSettings` and :class:`NeumannNoise`
(NamedTuples: cached on disk like any argument type; their unboxing costs the same as the
scalars they hold). Its helpers are inlined (``inline="always"``): a call that is not costs
~50 ns per replica and step, more than the step's own work at small d
(benchmarks/bench_oracles.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import (
    add_noise,
    draw_block,
    f_u,
    gen_hvp_T,
    grad_x_f,
    grad_y_f,
    hvp,
    jit_pair,
    jvp,
    numba_problem,
)
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register
from refbilevel.estimators._common import (
    as_2d,
    batch_xy,
    parallel_worth_it,
    require_oracle,
)
from refbilevel.estimators.neumann import check_neumann_args, neumann_counts
from refbilevel.estimators.result import Estimate

_HELPER = {"cache": True, "error_model": "numpy", "inline": "always"}


class NeumannSettings(NamedTuple):
    """One estimate's schedule: Q terms (the truncation level), step alpha, the truncation
    (``randomized``: q̂ ~ U{0..Q-1} per replica), the variant (``generalized``: F_u and H^T,
    docs/unibio.rst §3.5) and the first summed term ``start``."""

    Q: int
    alpha: float
    randomized: bool
    generalized: bool
    start: int


class NeumannNoise(NamedTuple):
    """The oracle's noise std for each call the estimator makes: ∇_x F, the start vector
    v_0 (∇_y F, or F_u in the generalized variant), the Hessian product (HVP or H^T v) and
    the JVP."""

    grad_x_f: float
    v0: float
    product: float
    jvp: float


@njit(**_HELPER)
def _first(P, gen, x, y, gx, v, s_fx, zx, s_v, zv):
    """∇_x F and v_0 (∇_y F or F_u) of one replica, noise added as GaussianOracle does."""
    grad_x_f(P, x, y, gx)
    add_noise(gx, s_fx, zx)
    if gen:
        f_u(P, x, y, v)
    else:
        grad_y_f(P, x, y, v)
    add_noise(v, s_v, zv)


@njit(**_HELPER)
def _hvp_step(P, gen, x, y, v, t, alpha, s_h, zh):
    """v <- v - alpha (Ĥ v) with Ĥ v = exact product + s_h z (t is scratch)."""
    if gen:
        gen_hvp_T(P, x, y, v, t)
    else:
        hvp(P, x, y, v, t)
    if s_h != 0.0:
        for i in range(v.shape[0]):
            v[i] = v[i] - alpha * (t[i] + s_h * zh[i])
    else:
        for i in range(v.shape[0]):
            v[i] = v[i] - alpha * t[i]


@njit(**_HELPER)
def _last(P, x, y, z, gx, t, s_j, zj):
    """gx <- gx - (∇²_xy G z) with the JVP's noise."""
    jvp(P, x, y, z, t)
    if s_j != 0.0:
        for i in range(gx.shape[0]):
            gx[i] = gx[i] - (t[i] + s_j * zj[i])
    else:
        for i in range(gx.shape[0]):
            gx[i] = gx[i] - t[i]


def _neumann_kernel(P, rng, X, Y, settings, noise):
    """Neumann estimate for R replicas (rows of X, Y) with :class:`NeumannSettings` and
    :class:`NeumannNoise`. Returns (values (R, d_x), HVP steps evaluated on the batch). Each
    oracle call: one noise block for all replicas (serial, the reference's order), then the
    arithmetic replica by replica (prange)."""
    Q, alpha, randomized = settings.Q, settings.alpha, settings.randomized
    gen, start = settings.generalized, settings.start
    s_fx, s_v, s_h, s_j = noise.grad_x_f, noise.v0, noise.product, noise.jvp
    R, dx = X.shape
    dy = Y.shape[1]
    fixed = not randomized
    qhat = np.zeros(R, dtype=np.int64)
    n_steps = Q
    if randomized:
        n_steps = 0
        for r in range(R):
            qhat[r] = rng.integers(0, Q)
            if qhat[r] > n_steps:
                n_steps = qhat[r]
    G = np.empty((R, dx))
    V = np.empty((R, dy))
    T = np.empty((R, dy))
    S = np.zeros((R, dy))
    zx = draw_block(rng, s_fx, R, dx)
    zv = draw_block(rng, s_v, R, dy)
    for r in prange(R):
        _first(P, gen, row(X, r), row(Y, r), row(G, r), row(V, r), s_fx, row(zx, r), s_v,
               row(zv, r))
        if randomized or start == 0:
            for i in range(dy):
                S[r, i] = V[r, i]
    for j in range(1, n_steps + 1):
        zh = draw_block(rng, s_h, R, dy)
        for r in prange(R):
            if fixed or qhat[r] >= j:
                _hvp_step(P, gen, row(X, r), row(Y, r), row(V, r), row(T, r), alpha, s_h,
                          row(zh, r))
                if fixed:
                    for i in range(dy):
                        S[r, i] = S[r, i] + V[r, i]
    zj = draw_block(rng, s_j, R, dx)
    T2 = np.empty((R, dx))
    scale = Q * alpha  # the reference computes Q * alpha * v left to right
    for r in prange(R):
        for i in range(dy):  # T[r] <- z, the Neumann vector
            T[r, i] = alpha * S[r, i] if fixed else scale * V[r, i]
        _last(P, row(X, r), row(Y, r), row(T, r), row(G, r), row(T2, r), s_j, row(zj, r))
    return G, n_steps


neumann_kernel, neumann_kernel_parallel = jit_pair(_neumann_kernel)


@register("estimator", "neumann", "numba")
def neumann_hypergradient_numba(oracle, x, y, Q: int, *, alpha: float | None = None,
                                truncation: str = "fixed", variant: str = "classical",
                                start: int = 0) -> Estimate:
    """Numba backend of :func:`refbilevel.estimators.neumann.neumann_hypergradient`
    (same arguments, same random numbers from ``oracle.rng``, same counts)."""
    require_oracle(oracle)
    problem = oracle.problem
    Q, alpha, truncation, variant, start = check_neumann_args(
        problem, Q, alpha, truncation, variant, start)
    P = numba_problem(problem)
    x, y, batch = batch_xy(problem, x, y)
    X, Y = as_2d(x, batch), as_2d(y, batch)
    gen = variant == "generalized"
    nz = oracle.noise
    par = parallel_worth_it(X.shape[0], max(X.shape[1], Y.shape[1]))
    settings = NeumannSettings(int(Q), float(alpha), truncation == "randomized", gen,
                               int(start))
    noise = NeumannNoise(float(nz.grad_x_f), float(nz.f_u if gen else nz.grad_y_f),
                         float(nz.gen_hvp if gen else nz.hvp), float(nz.jvp))
    G, n_steps = (neumann_kernel_parallel if par else neumann_kernel)(
        P, oracle.rng, X, Y, settings, noise)
    # the oracle's counters record the calls the kernel made, as the reference's oracle would
    c = oracle.counts
    c.add("grad_x_f")
    c.add("f_u" if gen else "grad_y_f")
    c.add("gen_hvp" if gen else "hvp", int(n_steps))
    c.add("jvp")
    c.add("samples", 3 + int(n_steps))
    return Estimate(value=G.reshape(batch + (problem.d_x,)), counts=neumann_counts(Q, variant))
