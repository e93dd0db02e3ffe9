"""BO-REP as an explicit Numba kernel (docs/borep.rst §4, Algorithms 1-3; docs/design.rst
§Backends).

Same algorithm, parameters and random-number order as the NumPy reference
:func:`refbilevel.algorithms.borep.borep`: Epoch-SGD draws one (R, d_y) ∇_y G block per step;
each outer iteration draws, on an update iteration, N ∇_y G blocks, then the ∇_x F, ∇_y F,
HVP and JVP blocks, each as :class:`~refbilevel.oracles.gaussian.GaussianOracle` draws them
(nothing for an exact kind). On the same Generator the iterates agree with the reference to
rounding (claim X4; the matrix products are sequential loops here and BLAS there).

Problems: any family of :mod:`refbilevel.backends.numba_problems` that provides ∇_y G,
∇_x F, ∇_y F, HVP and JVP, among them BO-REP's own test problems P1 (both variants) and P2 of
docs/borep.rst §8 (their records and primitives are in
:mod:`refbilevel.backends.numba_families`); a problem without a family raises
NotImplementedOnBackendError naming the class.

No ``prange``: one Generator feeds all replicas in a fixed order (the parity contract).

``variant="code"`` (docs/borep.rst §7, the released code's iteration; see the module docstring of
:mod:`refbilevel.algorithms.borep`) runs its own kernel, :func:`_borep_code_kernel`, with the
reference's random-number order for that variant: per iteration the HVP block, on an update
iteration ((t − 1) mod I == 0, the first included) 1 + N ∇_y G blocks, then ∇_y F, ∇_x F,
JVP; no Epoch-SGD. The paper variant's kernel is untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refbilevel.algorithms.borep import (
    CODE_EPS,
    BOREPParams,
    BOREPTheoryConstants,
    _batch,
    borep_params,
)
from refbilevel.algorithms.fdehbo_numba import record_iterations
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_problems import (
    draw_block,
    grad_x_f,
    grad_y_f,
    grad_y_g,
    hvp,
    jvp,
    numba_problem,
)
from refbilevel.backends.registry import register
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.validation import as_vector_batch, require_int

__all__ = ["borep_numba"]

_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _noise(out, std, z):
    if std != 0.0:
        for i in range(out.shape[0]):
            out[i] = out[i] + std * z[i]


@njit(**_JIT)
def _project(u, c, r):
    """In place: u ← c + (u − c) min(1, r/||u − c||) (the reference's exact operation order)."""
    s = 0.0
    for i in range(u.shape[0]):
        d = u[i] - c[i]
        s += d * d
    nrm = np.sqrt(s)
    sc = r / nrm if nrm > r else 1.0
    for i in range(u.shape[0]):
        u[i] = c[i] + (u[i] - c[i]) * sc


@njit(**_JIT)
def _commit(r, t, x, y, z, m, xn, zn, mn, div):  # pragma: no cover - compiled
    """Accept replica r's step t (x, m, z ← xn, mn, zn) if it and y are finite; otherwise
    freeze the replica at its last finite state and record div[r] = t − 1 (the convention
    of TraceRecorder.check_finite)."""
    ok = True
    for i in range(x.shape[1]):
        ok = ok and np.isfinite(xn[i]) and np.isfinite(mn[i])
    for i in range(y.shape[1]):
        ok = ok and np.isfinite(zn[i]) and np.isfinite(y[r, i])
    if not ok:
        div[r] = t - 1
        return
    for i in range(x.shape[1]):
        x[r, i] = xn[i]
        m[r, i] = mn[i]
    for i in range(y.shape[1]):
        z[r, i] = zn[i]


@njit(**_JIT)
def _borep_kernel(P, rng, x, y, z, T, eta, beta, I, N, gamma, nu,
                  R_ball, rho, k_dag, T1, theta1, D1, normalize, project, stds, rec_every,
                  X_rec, Y_rec, div):  # pragma: no cover - compiled
    R, dx = x.shape
    dy = y.shape[1]
    s_gyg, s_gxf, s_gyf, s_h, s_j = stds[0], stds[1], stds[2], stds[3], stds[4]
    g = np.empty(dy)
    gxf = np.empty(dx)
    gyf = np.empty(dy)
    hz = np.empty(dy)
    jz = np.empty(dx)
    zn = np.empty(dy)
    mn = np.empty(dx)
    xn = np.empty(dx)
    zero = np.zeros(dy)
    # ---- Algorithm 3: Epoch-SGD at x_1
    u = np.empty((R, dy))
    acc = np.empty((R, dy))
    for k in range(1, k_dag + 1):
        Tk = T1 * 2 ** (k - 1)
        th = theta1 * 2.0 ** (-(k - 1))
        Dk = D1 * 2.0 ** (-(k - 1) / 2.0)
        for r in range(R):
            for i in range(dy):
                u[r, i] = y[r, i]
                acc[r, i] = 0.0
        for _ in range(Tk):
            Z = draw_block(rng, s_gyg, R, dy)
            for r in range(R):
                grad_y_g(P, x[r], u[r], g)
                _noise(g, s_gyg, Z[r])
                for i in range(dy):
                    u[r, i] = u[r, i] - th * g[i]
                if project:
                    _project(u[r], y[r], Dk)
                for i in range(dy):
                    acc[r, i] += u[r, i]
        for r in range(R):
            for i in range(dy):
                y[r, i] = acc[r, i] / Tk
    m = np.zeros((R, dx))
    X_rec[0] = x
    Y_rec[0] = y
    kr = 1
    n_upd = 0
    for t in range(1, T + 1):
        if t >= 2 and (t - 1) % I == 0:  # Algorithm 2, periodic projected SGD
            n_upd += 1
            for r in range(R):
                for i in range(dy):
                    u[r, i] = y[r, i]
            for _ in range(N):
                Z = draw_block(rng, s_gyg, R, dy)
                for r in range(R):
                    grad_y_g(P, x[r], u[r], g)
                    _noise(g, s_gyg, Z[r])
                    for i in range(dy):
                        u[r, i] = u[r, i] - gamma * g[i]
                    if project:
                        _project(u[r], y[r], R_ball)
            for r in range(R):
                if div[r] < 0:
                    for i in range(dy):
                        y[r, i] = u[r, i]
        SX = draw_block(rng, s_gxf, R, dx)
        SY = draw_block(rng, s_gyf, R, dy)
        SH = draw_block(rng, s_h, R, dy)
        SJ = draw_block(rng, s_j, R, dx)
        for r in range(R):
            if div[r] >= 0:
                continue
            grad_x_f(P, x[r], y[r], gxf)
            _noise(gxf, s_gxf, SX[r])
            grad_y_f(P, x[r], y[r], gyf)
            _noise(gyf, s_gyf, SY[r])
            hvp(P, x[r], y[r], z[r], hz)
            _noise(hz, s_h, SH[r])
            jvp(P, x[r], y[r], z[r], jz)
            _noise(jz, s_j, SJ[r])
            for i in range(dy):
                zn[i] = z[r, i] - nu * (hz[i] - gyf[i])
            if project:
                _project(zn, zero, rho)
            s = 0.0
            for i in range(dx):
                mn[i] = beta * m[r, i] + (1.0 - beta) * (gxf[i] - jz[i])
                s += mn[i] * mn[i]
            nm = np.sqrt(s)
            for i in range(dx):
                if not normalize:
                    xn[i] = x[r, i] - eta * mn[i]
                elif nm > 0:
                    xn[i] = x[r, i] - eta * mn[i] / nm
                else:
                    xn[i] = x[r, i]
            _commit(r, t, x, y, z, m, xn, zn, mn, div)
        if t % rec_every == 0 or t == T:
            X_rec[kr] = x
            Y_rec[kr] = y
            kr += 1
    return n_upd


@njit(**_JIT)
def _borep_code_kernel(P, rng, x, y, z, T, eta, beta, I, N, gamma, nu,
                       normalize, eps, stds, rec_every, X_rec, Y_rec,
                       div):  # pragma: no cover - compiled
    """variant="code" (docs/borep.rst §7 items 1-5), the operations of borep._borep_code."""
    R, dx = x.shape
    dy = y.shape[1]
    s_gyg, s_gxf, s_gyf, s_h, s_j = stds[0], stds[1], stds[2], stds[3], stds[4]
    g = np.empty(dy)
    gxf = np.empty(dx)
    gyf = np.empty(dy)
    hz = np.empty((R, dy))
    jz = np.empty(dx)
    zn = np.empty(dy)
    mn = np.empty(dx)
    xn = np.empty(dx)
    u = np.empty((R, dy))
    acc = np.empty((R, dy))
    m = np.zeros((R, dx))
    X_rec[0] = x
    Y_rec[0] = y
    kr = 1
    n_upd = 0
    for t in range(1, T + 1):
        # item 1: HVP at the current y, before the update
        SH = draw_block(rng, s_h, R, dy)
        for r in range(R):
            hvp(P, x[r], y[r], z[r], hz[r])
            _noise(hz[r], s_h, SH[r])
        # item 2: 1 + N SGD steps with accumulated gradients, no projection
        if (t - 1) % I == 0:
            n_upd += 1
            for r in range(R):
                for i in range(dy):
                    u[r, i] = y[r, i]
                    acc[r, i] = 0.0
            for _ in range(1 + N):
                Z = draw_block(rng, s_gyg, R, dy)
                for r in range(R):
                    grad_y_g(P, x[r], u[r], g)
                    _noise(g, s_gyg, Z[r])
                    for i in range(dy):
                        acc[r, i] = acc[r, i] + g[i]
                        u[r, i] = u[r, i] - gamma * acc[r, i]
            for r in range(R):
                if div[r] < 0:
                    for i in range(dy):
                        y[r, i] = u[r, i]
        SY = draw_block(rng, s_gyf, R, dy)
        SX = draw_block(rng, s_gxf, R, dx)
        SJ = draw_block(rng, s_j, R, dx)
        for r in range(R):
            if div[r] >= 0:
                continue
            # item 3: z from ∇_y F at the updated y
            grad_y_f(P, x[r], y[r], gyf)
            _noise(gyf, s_gyf, SY[r])
            for i in range(dy):
                zn[i] = z[r, i] - nu * (hz[r, i] - gyf[i])
            # item 4: hypergradient with z_{t+1} and a third batch
            grad_x_f(P, x[r], y[r], gxf)
            _noise(gxf, s_gxf, SX[r])
            jvp(P, x[r], y[r], zn, jz)
            _noise(jz, s_j, SJ[r])
            # item 5: momentum and the ε-normalized step
            s = 0.0
            for i in range(dx):
                mn[i] = beta * m[r, i] + (1.0 - beta) * (gxf[i] - jz[i])
                s += mn[i] * mn[i]
            nm = np.sqrt(s)
            for i in range(dx):
                if normalize:
                    xn[i] = x[r, i] - eta * mn[i] / (nm + eps)
                else:
                    xn[i] = x[r, i] - eta * mn[i]
            _commit(r, t, x, y, z, m, xn, zn, mn, div)
        if t % rec_every == 0 or t == T:
            X_rec[kr] = x
            Y_rec[kr] = y
            kr += 1
    return n_upd


def _counts_until(p: BOREPParams, t: int) -> dict[str, int]:
    """Cumulative calls after Epoch-SGD and t outer iterations (borep_oracle_counts at T=t);
    for variant="code" no Epoch-SGD and ⌈t/I⌉ updates of 1 + N ∇_y G each."""
    if p.variant == "code":
        out = {"grad_x_f": t, "grad_y_f": t, "hvp": t, "jvp": t,
               "grad_y_g": (-(-t // p.I)) * (1 + p.N)}
        out["samples"] = sum(out.values())
        return out
    ll = p.epoch_T1 * (2**p.epoch_k - 1) + (max(t - 1, 0) // p.I) * p.N
    out = {"grad_x_f": t, "grad_y_f": t, "hvp": t, "jvp": t, "grad_y_g": ll}
    out["samples"] = sum(out.values())
    return out


@register("algorithm", "borep", "numba")
def borep_numba(oracle: GaussianOracle, x0, y0, *, params: BOREPParams | None = None,
                mode: str = "tuned", T: int | None = None, eps: float | None = None,
                theory: BOREPTheoryConstants | None = None, z0=None, record_every: int = 1,
                seed: int | None = None, **overrides: Any) -> Trace:
    """BO-REP, Numba backend; same arguments and Trace as
    :func:`refbilevel.algorithms.borep.borep` (same ``extra`` keys)."""
    if not isinstance(oracle, GaussianOracle):
        raise ValueError(f"oracle must be a GaussianOracle, got {type(oracle).__name__}")
    problem = oracle.problem
    P = numba_problem(problem)
    if params is None:
        params = borep_params(problem, mode=mode, T=T, eps=eps, theory=theory, **overrides)
    elif overrides or T is not None or eps is not None or theory is not None:
        raise ValueError("give either params or (mode, T, eps, theory, overrides), not both")
    if not isinstance(params, BOREPParams):
        raise ValueError(f"params must be a BOREPParams, got {type(params).__name__}")
    require_int("record_every", record_every, low=1)
    p = params
    x, y, R = _batch(problem, x0, y0)
    z = np.zeros((R, problem.d_y)) if z0 is None else np.array(
        np.broadcast_to(np.atleast_2d(as_vector_batch("z0", z0, problem.d_y)),
                        (R, problem.d_y)), order="C")
    nz = oracle.noise
    stds = np.array([nz.grad_y_g, nz.grad_x_f, nz.grad_y_f, nz.hvp, nz.jvp])
    its = record_iterations(p.T, record_every)
    X_rec = np.empty((its.size, R, problem.d_x))
    Y_rec = np.empty((its.size, R, problem.d_y))
    div = np.full(R, -1, dtype=np.int64)
    base = oracle.counts.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if p.variant == "code":
            n_upd = _borep_code_kernel(P, oracle.rng, x, y, z, p.T,
                                       p.eta, p.beta, p.I, p.N, p.gamma, p.nu, p.normalize,
                                       CODE_EPS, stds, record_every, X_rec, Y_rec, div)
        else:
            n_upd = _borep_kernel(P, oracle.rng, x, y, z, p.T, p.eta,
                                  p.beta, p.I, p.N, p.gamma, p.nu, p.R_ball, p.rho, p.epoch_k,
                                  p.epoch_T1, p.epoch_theta1, p.epoch_D1, p.normalize,
                                  p.project, stds, record_every, X_rec, Y_rec, div)
        y_init_err = np.linalg.norm(Y_rec[0] - problem.y_star(X_rec[0]), axis=-1)
    counts: dict[str, list[int]] = {k: [] for k in base.as_dict()}
    for t in its:
        cc = base.copy()
        for kind_, n in _counts_until(p, int(t)).items():
            cc.add(kind_, n)
        for k, n in cc.as_dict().items():
            counts[k].append(n)
    for kind_, n in _counts_until(p, p.T).items():
        oracle.counts.add(kind_, n)
    with np.errstate(over="ignore", invalid="ignore"):
        return build_trace(problem, "borep", "numba", p.as_dict(), seed, its, X_rec, Y_rec,
                           {k: np.array(v) for k, v in counts.items()}, div,
                           y_init_error=y_init_err, n_lower_updates=int(n_upd), y=y, z=z)
