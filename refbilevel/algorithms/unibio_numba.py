"""UniBiO as one explicit Numba kernel (same mathematics and random-number order as
:mod:`refbilevel.algorithms.unibio`; docs/unibio.rst §4.1-4.2).

The problem enters as its Numba record (:mod:`refbilevel.backends.numba_problems`; the
kernel is compiled per family, cached on disk). Per oracle call
the kernel draws one (R, dim) standard-normal block from the caller's Generator, exactly
where the NumPy reference's GaussianOracle draws it, then updates the replicas one by one;
so both backends give the same trajectory on the same seed (claim X4). Diverged replicas are
frozen and their iteration recorded, as in the reference.

Two kernels: :func:`unibio_kernel` works for every registered family;
:func:`unibio_example3_kernel` is a scalar specialization for UniBiO Example 3 (the Section
6 benchmark): it works on scalars instead of length-1 arrays, which keeps the LL step within
a small factor of the random-number floor. It computes the even integer power by repeated
multiplication instead of pow(), so it matches the reference to rounding, not bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from refbilevel.algorithms.epoch_sgd_numba import ipow, scalar_power_epoch_sgd
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.algorithms.unibio import UniBiOParams, unibio_cumulative_counts
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_problems import draw_block, grad_y_g, numba_problem
from refbilevel.backends.registry import NotImplementedOnBackendError, register
from refbilevel.estimators.neumann_numba import _first, _hvp_step, _last
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.validation import as_vector_batch


@njit(cache=True, error_model="numpy")
def _epoch_sgd(P, rng, X, W, active, lengths, radii, steps, pre_avg, s_gy):
    """Epoch-SGD with shrinking balls on every active replica (in place on W)."""
    R, dy = W.shape
    C = np.empty(dy)
    A = np.empty((R, dy))
    G = np.empty(dy)
    for k in range(lengths.shape[0]):
        L, rad, gam = lengths[k], radii[k], steps[k]
        Cs = W.copy()
        A[:] = 0.0
        for _ in range(L):
            Z = draw_block(rng, s_gy, R, dy)
            for r in range(R):
                if not active[r]:
                    continue
                w = W[r]
                if pre_avg:
                    for i in range(dy):
                        A[r, i] += w[i]
                grad_y_g(P, X[r], w, G)
                nrm = 0.0
                for i in range(dy):
                    gi = G[i] + s_gy * Z[r, i] if s_gy != 0.0 else G[i]
                    C[i] = w[i] - gam * gi - Cs[r, i]
                    nrm += C[i] * C[i]
                nrm = np.sqrt(nrm)
                scale = min(1.0, rad / max(nrm, 2.2250738585072014e-308))
                for i in range(dy):
                    w[i] = Cs[r, i] + scale * C[i]
                    if not pre_avg:
                        A[r, i] += w[i]
        for r in range(R):
            if active[r]:
                for i in range(dy):
                    W[r, i] = A[r, i] / L


@njit(cache=True, error_model="numpy")
def unibio_kernel(P, rng, X, Y, warm, periodic, T, I, eta, beta, Q, alpha, pre_avg, norm_eps,
                  s_gy, s_fx, s_fu, s_h, s_j, record_every):
    R, dx = X.shape
    dy = Y.shape[1]
    n_rec = (T - 1) // record_every + 1
    XR = np.empty((n_rec, R, dx))
    YR = np.empty((n_rec, R, dy))
    div = np.full(R, -1, dtype=np.int64)
    active = np.ones(R, dtype=np.bool_)
    M = np.zeros((R, dx))
    g = np.empty(dx)
    s = np.empty(dy)
    tmp = np.empty(dy)
    tx = np.empty(dx)
    _epoch_sgd(P, rng, X, Y, active, warm[0].astype(np.int64), warm[1], warm[2], pre_avg, s_gy)
    lens = periodic[0].astype(np.int64)
    for t in range(T):
        if t > 0 and t % I == 0:
            _epoch_sgd(P, rng, X, Y, active, lens, periodic[1], periodic[2], pre_avg, s_gy)
        if t % record_every == 0:
            XR[t // record_every] = X
            YR[t // record_every] = Y
        zx = draw_block(rng, s_fx, R, dx)
        zv = draw_block(rng, s_fu, R, dy)
        G = np.empty((R, dx))
        V = np.empty((R, dy))
        S = np.empty((R, dy))
        for r in range(R):
            _first(P, True, X[r], Y[r], G[r], V[r], s_fx, zx[r], s_fu, zv[r])
            S[r] = V[r]
        for _ in range(Q):
            zh = draw_block(rng, s_h, R, dy)
            for r in range(R):
                _hvp_step(P, True, X[r], Y[r], V[r], tmp, alpha, s_h, zh[r])
                for i in range(dy):
                    S[r, i] = S[r, i] + V[r, i]
        zj = draw_block(rng, s_j, R, dx)
        for r in range(R):
            if not active[r]:
                continue
            for i in range(dy):
                s[i] = alpha * S[r, i]
            g[:] = G[r]
            _last(P, X[r], Y[r], s, g, tx, s_j, zj[r])
            nrm = 0.0
            ok = True
            for i in range(dx):
                mi = beta * M[r, i] + (1.0 - beta) * g[i]
                tx[i] = mi
                nrm += mi * mi
            nrm = np.sqrt(nrm) + norm_eps
            for i in range(dx):
                xi = X[r, i] - eta * tx[i] / nrm
                if not (np.isfinite(xi) and np.isfinite(tx[i])):
                    ok = False
            for i in range(dy):
                if not np.isfinite(Y[r, i]):
                    ok = False
            if not ok:
                active[r] = False
                div[r] = t + 1
                continue
            for i in range(dx):
                X[r, i] = X[r, i] - eta * tx[i] / nrm
                M[r, i] = tx[i]
    return XR, YR, div, X, Y


@njit(cache=True, error_model="numpy")
def unibio_example3_kernel(rng, X, Y, p, warm, periodic, T, I, eta, beta, Q, alpha, pre_avg,
                           norm_eps, s_gy, s_fx, s_fu, s_h, s_j, record_every):
    """UniBiO on UniBiO Example 3 with scalar state (H = 1, ∇_x f = 0, ∇²_xy g = -cos x;
    docs/unibio.rst §6.1): the Section 6 benchmark path. Same oracle calls and draw order as
    the NumPy reference."""
    R = X.shape[0]
    q = p - 1.0  # Example 3: p is an even integer
    qi = int(q)
    n_rec = (T - 1) // record_every + 1
    XR = np.empty((n_rec, R, 1))
    YR = np.empty((n_rec, R, 1))
    div = np.full(R, -1, dtype=np.int64)
    active = np.ones(R, dtype=np.bool_)
    x = X[:, 0].copy()
    y = Y[:, 0].copy()
    m = np.zeros(R)
    sinx = np.sin(x)
    G = np.empty(R)
    V = np.empty(R)
    S = np.empty(R)
    half_pi = 0.5 * np.pi
    scalar_power_epoch_sgd(rng, sinx, y, active, warm[0].astype(np.int64), warm[1], warm[2],
                           pre_avg, s_gy, q)
    lens = periodic[0].astype(np.int64)
    for t in range(T):
        if t > 0 and t % I == 0:
            for r in range(R):
                sinx[r] = np.sin(x[r])
            scalar_power_epoch_sgd(rng, sinx, y, active, lens, periodic[1], periodic[2],
                                   pre_avg, s_gy, q)
        if t % record_every == 0:
            XR[t // record_every, :, 0] = x
            YR[t // record_every, :, 0] = y
        for r in range(R):  # ∇_x F = 0 + noise
            G[r] = s_fx * rng.standard_normal() if s_fx != 0.0 else 0.0
        for r in range(R):  # F_u = cos(u) 1{|u| <= pi/2} + noise
            u = np.sign(y[r]) * ipow(abs(y[r]), qi)
            fu = np.cos(u) if abs(u) <= half_pi else 0.0
            V[r] = fu + s_fu * rng.standard_normal() if s_fu != 0.0 else fu
            S[r] = V[r]
        for _ in range(Q):  # v <- v - alpha (H^T v + noise), H = 1
            for r in range(R):
                hv = V[r] + s_h * rng.standard_normal() if s_h != 0.0 else V[r]
                V[r] = V[r] - alpha * hv
                S[r] = S[r] + V[r]
        for r in range(R):
            zj = rng.standard_normal() if s_j != 0.0 else 0.0
            if not active[r]:
                continue
            jv = -np.cos(x[r]) * (alpha * S[r])
            if s_j != 0.0:
                jv = jv + s_j * zj
            g = G[r] - jv
            mi = beta * m[r] + (1.0 - beta) * g
            xi = x[r] - eta * mi / (abs(mi) + norm_eps)
            if not (np.isfinite(xi) and np.isfinite(mi) and np.isfinite(y[r])):
                active[r] = False
                div[r] = t + 1
                continue
            x[r] = xi
            m[r] = mi
    return XR, YR, div, x.reshape(R, 1), y.reshape(R, 1)


def _epochs_array(epochs) -> np.ndarray:
    return np.array([[e.length for e in epochs], [e.radius for e in epochs],
                     [e.step for e in epochs]], dtype=np.float64).reshape(3, len(epochs))


@register("algorithm", "unibio", "numba")
def run_unibio_numba(oracle, x0, y0, params: UniBiOParams, *, record_every: int = 1,
                     seed: int | None = None, restart_rng=None,
                     record_final: bool = False) -> Trace:
    """Numba backend of :func:`refbilevel.algorithms.unibio.run_unibio` (same arguments and
    random numbers; fixed Neumann truncation, warm restarts)."""
    problem = oracle.problem
    params = params.validated()
    if params.restart != "warm" or params.truncation != "fixed":
        raise NotImplementedOnBackendError(
            "the numba UniBiO kernel implements restart='warm' and truncation='fixed'; use "
            "the numpy backend for the code-compatibility restarts or randomized truncation")
    if record_every < 1:
        raise ValueError(f"record_every must be an integer >= 1, got {record_every}")
    P = numba_problem(problem)
    X = as_vector_batch("x0", x0, problem.d_x).reshape(-1, problem.d_x).copy()
    Y = np.array(np.broadcast_to(as_vector_batch("y0", y0, problem.d_y),
                                 X.shape[:1] + (problem.d_y,)), dtype=np.float64)
    C = problem.constants.C
    alpha = params.alpha if params.alpha is not None else (1.0 / C if C else None)
    if alpha is None:
        raise ValueError("alpha must be given when the problem has no bound C on ||H||")
    nz = oracle.noise
    common = (_epochs_array(params.epochs(True, problem.p)),
              _epochs_array(params.epochs(False, problem.p)), params.T, params.I, params.eta,
              params.beta, params.Q, float(alpha), params.average == "pre", params.norm_eps,
              nz.grad_y_g, nz.grad_x_f, nz.f_u, nz.gen_hvp, nz.jvp, record_every)
    if type(problem) is UniBiOExample3:
        XR, YR, div, Xf, Yf = unibio_example3_kernel(oracle.rng, X, Y, problem.p, *common)
    else:
        XR, YR, div, Xf, Yf = unibio_kernel(P, oracle.rng, X, Y, *common)
    its = np.arange(0, params.T, record_every)
    if record_final:  # the kernel's returned final state is x_T (as the NumPy reference)
        its = np.append(its, params.T)
        XR = np.concatenate([XR, Xf[None]])
        YR = np.concatenate([YR, Yf[None]])
    counts = unibio_cumulative_counts(params, problem.p, its)
    total = unibio_cumulative_counts(params, problem.p, np.array([params.T]))
    for k, v in total.items():
        oracle.counts.add(k, int(v[0]))
    return build_trace(problem, "unibio", "numba", asdict(params), seed, its, XR, YR, counts,
                       div, x_final=Xf, y_final=Yf)
