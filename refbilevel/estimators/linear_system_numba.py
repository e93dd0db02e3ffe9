"""Numba kernels of the linear-system estimators (same mathematics as
:mod:`refbilevel.estimators.linear_system`; docs/fdehbo.rst §1, docs/baselines.rst §4, §6, §7).

SGD: per oracle call one (R, dim) noise block from the caller's Generator in the
reference's order (∇_x F, b once or per step, HVP per step, JVP), then replica-by-replica
arithmetic (``prange``; the parallel variant of :func:`jit_pair` for large batches). CG:
deterministic, one replica per ``prange`` iteration, each with its own stopping rule (the
reference freezes stopped replicas).

The SGD kernel takes the parameter records :class:`SgdSettings` and :class:`SgdNoise`
(NamedTuples, cached on disk like any argument type); its per-replica helpers are inlined
(``inline="always"``: a call that is not costs ~50 ns per replica and step,
benchmarks/bench_oracles.py).
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
from refbilevel.backends.registry import register
from refbilevel.estimators._common import (
    add_counts,
    as_2d,
    batch_xy,
    counts,
    parallel_worth_it,
    require_oracle,
)
from refbilevel.estimators.linear_system import (
    LinearSystemEstimate,
    check_cg_args,
    check_sgd_args,
    initial_z,
    sgd_counts,
    z_to_soba,
)

_HELPER = {"cache": True, "error_model": "numpy", "inline": "always"}


class SgdSettings(NamedTuple):
    """The SGD run on the LS quadratic: ``steps`` steps of size ``beta``, projection on the
    ball of ``radius`` (<= 0: none), the variant (``generalized``: F_u and H^T) and
    ``fresh_rhs`` (a new ∇_y F sample per step)."""

    steps: int
    beta: float
    radius: float
    generalized: bool
    fresh_rhs: bool


class SgdNoise(NamedTuple):
    """The oracle's noise std for each call: ∇_x F, the right-hand side (∇_y F or F_u), the
    Hessian product (HVP or H^T v) and the JVP."""

    grad_x_f: float
    rhs: float
    product: float
    jvp: float


@njit(**_HELPER)
def _rhs(P, gen, x, y, b, s_b, zb):
    if gen:
        f_u(P, x, y, b)
    else:
        grad_y_f(P, x, y, b)
    add_noise(b, s_b, zb)


@njit(**_HELPER)
def _sgd_step(P, gen, x, y, z, b, t, beta, s_h, zh, radius):
    """z <- Π(z - beta ((Ĥ z) - b)); Ĥ z = exact + s_h noise."""
    if gen:
        gen_hvp_T(P, x, y, z, t)
    else:
        hvp(P, x, y, z, t)
    add_noise(t, s_h, zh)
    for i in range(z.shape[0]):
        z[i] = z[i] - beta * (t[i] - b[i])
    if radius > 0.0:
        acc = 0.0
        for i in range(z.shape[0]):
            acc += z[i] * z[i]
        nrm = np.sqrt(acc)
        if nrm > radius:
            scale = radius / nrm
            for i in range(z.shape[0]):
                z[i] = z[i] * scale


@njit(**_HELPER)
def _first(P, x, y, g, s, zx):
    grad_x_f(P, x, y, g)
    add_noise(g, s, zx)


@njit(**_HELPER)
def _last(P, x, y, z, g, t, s_j, zj):
    jvp(P, x, y, z, t)
    add_noise(t, s_j, zj)
    for i in range(g.shape[0]):
        g[i] = g[i] - t[i]


def _ls_sgd_kernel(P, rng, X, Y, Z, settings, noise):
    """SGD on the LS quadratic for R replicas (:class:`SgdSettings`, :class:`SgdNoise`); Z
    (R, d_y) is updated in place (+z). Returns the hypergradients (R, d_x)."""
    steps, beta, radius = settings.steps, settings.beta, settings.radius
    gen, fresh = settings.generalized, settings.fresh_rhs
    s_fx, s_b, s_h, s_j = noise.grad_x_f, noise.rhs, noise.product, noise.jvp
    R, dx = X.shape
    dy = Y.shape[1]
    G = np.empty((R, dx))                                    # of arrays into prange bodies
    B = np.empty((R, dy))
    T = np.empty((R, dy))
    zx = draw_block(rng, s_fx, R, dx)
    zb = np.zeros((R, dy))
    if not fresh:
        zb = draw_block(rng, s_b, R, dy)
    for r in prange(R):
        _first(P, X[r], Y[r], G[r], s_fx, zx[r])
        if not fresh:
            _rhs(P, gen, X[r], Y[r], B[r], s_b, zb[r])
    for _ in range(steps):
        if fresh:
            zb = draw_block(rng, s_b, R, dy)
        zh = draw_block(rng, s_h, R, dy)  # drawn after b: the reference calls rhs first
        for r in prange(R):
            if fresh:
                _rhs(P, gen, X[r], Y[r], B[r], s_b, zb[r])
            _sgd_step(P, gen, X[r], Y[r], Z[r], B[r], T[r], beta, s_h, zh[r], radius)
    zj = draw_block(rng, s_j, R, dx)
    T2 = np.empty((R, dx))
    for r in prange(R):
        _last(P, X[r], Y[r], Z[r], G[r], T2[r], s_j, zj[r])
    return G


ls_sgd_kernel, ls_sgd_kernel_parallel = jit_pair(_ls_sgd_kernel)


@njit(cache=True, error_model="numpy")
def _dot(a, b):
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i] * b[i]
    return acc


@njit(cache=True, error_model="numpy")
def _cg_one(P, x, y, z, g, iters, tol):
    """CG for one replica (z in place), then g = ∇_x f - ∇²_xy g z. Returns the products."""
    d = z.shape[0]
    b = np.empty(d)
    grad_y_f(P, x, y, b)
    Ap = np.empty(d)
    hvp(P, x, y, z, Ap)
    n = 1
    r = np.empty(d)
    for i in range(d):
        r[i] = b[i] - Ap[i]
    p = r.copy()
    rr = _dot(r, r)
    bn = np.sqrt(_dot(b, b))
    stop = np.sqrt(rr) <= tol * bn or rr == 0.0
    for _ in range(iters):
        if stop:
            break
        hvp(P, x, y, p, Ap)
        n += 1
        pAp = _dot(p, Ap)
        if not pAp > 0.0:
            break
        a = rr / pAp
        for i in range(d):
            z[i] = z[i] + a * p[i]
            r[i] = r[i] - a * Ap[i]
        rr_new = _dot(r, r)
        beta = rr_new / rr
        for i in range(d):
            p[i] = r[i] + beta * p[i]
        rr = rr_new
        stop = np.sqrt(rr) <= tol * bn or rr == 0.0
    grad_x_f(P, x, y, g)
    t = np.empty(g.shape[0])
    jvp(P, x, y, z, t)
    for i in range(g.shape[0]):
        g[i] = g[i] - t[i]
    return n


def _ls_cg_kernel(P, X, Y, Z, iters, tol):
    R, dx = X.shape
    G = np.empty((R, dx))
    N = np.zeros(R, dtype=np.int64)
    for r in prange(R):
        N[r] = _cg_one(P, X[r], Y[r], Z[r], G[r], iters, tol)
    return G, N


ls_cg_kernel, ls_cg_kernel_parallel = jit_pair(_ls_cg_kernel)


@register("estimator", "linear_system_sgd", "numba")
def linear_system_sgd_numba(oracle, x, y, steps: int, step_size: float, *, z0=None,
                            radius: float | None = None, variant: str = "classical",
                            fresh_rhs: bool = False,
                            convention: str = "+z") -> LinearSystemEstimate:
    """Numba backend of :func:`refbilevel.estimators.linear_system.linear_system_sgd`."""
    require_oracle(oracle)
    problem = oracle.problem
    steps, beta, radius, variant, convention = check_sgd_args(
        steps, step_size, radius, variant, convention)
    P = numba_problem(problem)
    x, y, batch = batch_xy(problem, x, y)
    X, Y = as_2d(x, batch), as_2d(y, batch)
    Z = as_2d(initial_z(problem, z0, batch, convention), batch)
    gen = variant == "generalized"
    fresh = bool(fresh_rhs)
    nz = oracle.noise
    par = parallel_worth_it(X.shape[0], max(X.shape[1], Y.shape[1]))
    settings = SgdSettings(int(steps), float(beta), -1.0 if radius is None else float(radius),
                           gen, fresh)
    noise = SgdNoise(float(nz.grad_x_f), float(nz.f_u if gen else nz.grad_y_f),
                     float(nz.gen_hvp if gen else nz.hvp), float(nz.jvp))
    G = (ls_sgd_kernel_parallel if par else ls_sgd_kernel)(P, oracle.rng, X, Y, Z, settings,
                                                           noise)
    c = sgd_counts(steps, variant, fresh)
    add_counts(oracle.counts, c)  # the oracle's counters, as the reference's oracle
    z = Z.reshape(batch + (problem.d_y,))
    return LinearSystemEstimate(value=G.reshape(batch + (problem.d_x,)), counts=c,
                                z=z_to_soba(z) if convention == "-z" else z)


@register("estimator", "linear_system_cg", "numba")
def linear_system_cg_numba(problem, x, y, iters: int, *, tol: float = 0.0,
                           z0=None) -> LinearSystemEstimate:
    """Numba backend of :func:`refbilevel.estimators.linear_system.linear_system_cg`."""
    iters, tol = check_cg_args(iters, tol)
    P = numba_problem(problem)
    x, y, batch = batch_xy(problem, x, y)
    X, Y = as_2d(x, batch), as_2d(y, batch)
    Z = as_2d(initial_z(problem, z0, batch, "+z"), batch)
    par = parallel_worth_it(X.shape[0], max(X.shape[1], Y.shape[1]))
    G, N = (ls_cg_kernel_parallel if par else ls_cg_kernel)(P, X, Y, Z, iters, tol)
    n = int(N.max()) if N.size else 0
    return LinearSystemEstimate(
        value=G.reshape(batch + (problem.d_x,)), z=Z.reshape(batch + (problem.d_y,)),
        counts=counts(grad_x_f=1, grad_y_f=1, hvp=n, jvp=1, samples=0))
