"""Numba kernels of the finite-difference products and estimators (same mathematics as
:mod:`refbilevel.estimators.finite_difference`; FdeHBO eqs. (8), (9), (11), spec
docs/fdehbo.rst §2).

One kernel, four modes (HVP, JVP, hypergradient, LS gradient). The shared sample of the two
gradient calls is one (R, dim) block drawn once and added to both evaluations, exactly as
``GaussianOracle.draw`` + ``sample=`` does in the reference.

The kernel takes the parameter record :class:`FdSettings` (a NamedTuple, cached on disk like
any argument type); the per-replica helpers are inlined (``inline="always"``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import (
    add_noise,
    draw_block,
    grad_x_f,
    grad_x_g,
    grad_y_f,
    grad_y_g,
    jit_pair,
    numba_problem,
)
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register
from refbilevel.estimators._common import (
    add_counts,
    as_2d,
    parallel_worth_it,
    require_oracle,
)
from refbilevel.estimators.finite_difference import check_fd_args
from refbilevel.estimators.result import Estimate
from refbilevel.oracles.counters import OracleCounts

MODE_HVP, MODE_JVP, MODE_HYPERGRADIENT, MODE_LS_GRADIENT = 0, 1, 2, 3

_HELPER = {"cache": True, "error_model": "numpy", "inline": "always"}


class FdSettings(NamedTuple):
    """One finite-difference estimate: the mode (``MODE_*``), the step ``delta``, the noise
    std of the differenced gradient (``s_diff``, one shared sample for both evaluations) and
    of the combined gradient (``s_combined``: ∇_x F for the hypergradient, ∇_y F for the LS
    gradient)."""

    mode: int
    delta: float
    s_diff: float
    s_combined: float


@njit(**_HELPER)
def _fd_one(P, fd, x, y, v, zg, zf, out, yp, ym, gp, gm):
    """One replica of :class:`FdSettings` ``fd``: the central difference (same noise zg in
    both calls), then the mode's combination with ∇_x F or ∇_y F (noise zf). yp, ym, gp, gm
    are scratch rows (gm also holds ∇_y F in the LS-gradient mode, after the difference is
    taken)."""
    mode, delta, s_g, s_f = fd.mode, fd.delta, fd.s_diff, fd.s_combined
    d = y.shape[0]
    for i in range(d):
        yp[i] = y[i] + delta * v[i]
        ym[i] = y[i] - delta * v[i]
    m = out.shape[0]
    if mode == MODE_HVP or mode == MODE_LS_GRADIENT:
        grad_y_g(P, x, yp, gp)
        grad_y_g(P, x, ym, gm)
    else:
        grad_x_g(P, x, yp, gp)
        grad_x_g(P, x, ym, gm)
    add_noise(gp, s_g, zg)
    add_noise(gm, s_g, zg)
    two_delta = 2.0 * delta
    if mode == MODE_HVP or mode == MODE_JVP:
        for i in range(m):
            out[i] = (gp[i] - gm[i]) / two_delta
    elif mode == MODE_HYPERGRADIENT:  # ∇_x F was written into out by the caller
        for i in range(m):
            out[i] = out[i] - (gp[i] - gm[i]) / two_delta
    else:
        for i in range(m):
            out[i] = (gp[i] - gm[i]) / two_delta
        grad_y_f(P, x, y, gm)
        add_noise(gm, s_f, zf)
        for i in range(m):
            out[i] = out[i] - gm[i]


@njit(**_HELPER)
def _grad_x_f_noisy(P, x, y, out, s, z):
    grad_x_f(P, x, y, out)
    add_noise(out, s, z)


def _fd_kernel(P, rng, X, Y, V, fd):
    """Finite-difference estimates for R replicas (:class:`FdSettings` ``fd``)."""
    mode, s_g, s_f = fd.mode, fd.s_diff, fd.s_combined
    R, dx = X.shape
    dy = Y.shape[1]
    m = dy if (mode == MODE_HVP or mode == MODE_LS_GRADIENT) else dx
    out = np.empty((R, m))
    zf = np.zeros((R, m))
    if mode == MODE_HYPERGRADIENT:  # ∇_x F is drawn before the JVP's shared sample
        zf = draw_block(rng, s_f, R, dx)
        for r in range(R):
            _grad_x_f_noisy(P, row(X, r), row(Y, r), row(out, r), s_f, row(zf, r))
    zg = draw_block(rng, s_g, R, m)
    if mode == MODE_LS_GRADIENT:  # ∇_y F is drawn after H̃'s shared sample
        zf = draw_block(rng, s_f, R, dy)
    YP = np.empty((R, dy))  # scratch rows: no allocation inside the replica loop
    YM = np.empty((R, dy))
    GP = np.empty((R, m))
    GM = np.empty((R, m))
    for r in prange(R):
        _fd_one(P, fd, row(X, r), row(Y, r), row(V, r), row(zg, r), row(zf, r), row(out, r),
                row(YP, r), row(YM, r), row(GP, r), row(GM, r))
    return out


fd_kernel, fd_kernel_parallel = jit_pair(_fd_kernel)


_MODES = {
    "fd_hvp": (MODE_HVP, "grad_y_g", None),
    "fd_jvp": (MODE_JVP, "grad_x_g", None),
    "fd_hypergradient": (MODE_HYPERGRADIENT, "grad_x_g", "grad_x_f"),
    "fd_ls_gradient": (MODE_LS_GRADIENT, "grad_y_g", "grad_y_f"),
}


def _run(name, oracle, x, y, v, delta) -> Estimate:
    require_oracle(oracle)
    problem = oracle.problem
    x, y, v, batch, delta = check_fd_args(problem, x, y, v, delta)
    P = numba_problem(problem)
    mode, g_kind, f_kind = _MODES[name]
    X, Y, Vv = as_2d(x, batch), as_2d(y, batch), as_2d(v, batch)
    nz = oracle.noise
    par = parallel_worth_it(X.shape[0], max(X.shape[1], Y.shape[1]))
    fd = FdSettings(mode, float(delta), float(getattr(nz, g_kind)),
                    0.0 if f_kind is None else float(getattr(nz, f_kind)))
    out = (fd_kernel_parallel if par else fd_kernel)(P, oracle.rng, X, Y, Vv, fd)
    c = OracleCounts()
    c.add(g_kind, 2)
    c.add("samples")
    if f_kind is not None:
        c.add(f_kind)
        c.add("samples")
    add_counts(oracle.counts, c)  # the oracle's counters, as the reference's oracle
    return Estimate(value=out.reshape(batch + (out.shape[1],)), counts=c)


@register("estimator", "fd_hvp", "numba")
def fd_hvp_numba(oracle, x, y, v, delta: float) -> Estimate:
    """Numba backend of :func:`refbilevel.estimators.finite_difference.fd_hvp`."""
    return _run("fd_hvp", oracle, x, y, v, delta)


@register("estimator", "fd_jvp", "numba")
def fd_jvp_numba(oracle, x, y, v, delta: float) -> Estimate:
    """Numba backend of :func:`refbilevel.estimators.finite_difference.fd_jvp`."""
    return _run("fd_jvp", oracle, x, y, v, delta)


@register("estimator", "fd_hypergradient", "numba")
def fd_hypergradient_numba(oracle, x, y, v, delta: float) -> Estimate:
    """Numba backend of :func:`refbilevel.estimators.finite_difference.fd_hypergradient`."""
    return _run("fd_hypergradient", oracle, x, y, v, delta)


@register("estimator", "fd_ls_gradient", "numba")
def fd_ls_gradient_numba(oracle, x, y, v, delta: float) -> Estimate:
    """Numba backend of :func:`refbilevel.estimators.finite_difference.fd_ls_gradient`."""
    return _run("fd_ls_gradient", oracle, x, y, v, delta)
