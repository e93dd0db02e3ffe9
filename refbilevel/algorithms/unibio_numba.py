"""UniBiO as one explicit Numba kernel (same mathematics and random-number order as
:mod:`refbilevel.algorithms.unibio`; docs/unibio.rst §4.1-4.2).

The problem enters as its Numba record (:mod:`refbilevel.backends.numba_problems`; the
kernel is compiled per family, cached on disk), or, with a
:class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`, as the finite-sum record of
:func:`~refbilevel.algorithms._baselines_numba.kernel_inputs` (either sampler). Per oracle
call the kernel draws one (R, dim) standard-normal block (or one minibatch) from the
caller's Generator, exactly where the NumPy reference's oracle draws it, then updates the
replicas one by one through :mod:`refbilevel.algorithms._sample_rows_numba`; so both
backends give the same trajectory on the same seed (claim X4). Diverged replicas are frozen
and their iteration recorded, as in the reference. The kernels take records, not long
positional lists (issue #14): :class:`UniBiOSteps`, :class:`UniBiONoise`,
:class:`EpochArrays`.

Two kernels: :func:`unibio_kernel` works for every registered family;
:func:`unibio_example3_kernel` is a scalar specialization for UniBiO Example 3 (the Section
6 benchmark): it works on scalars instead of length-1 arrays, which keeps the LL step within
a small factor of the random-number floor. It computes the even integer power by repeated
multiplication instead of pow(), so it matches the reference to rounding, not bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import NamedTuple

import numpy as np

from refbilevel.algorithms._baselines_numba import (
    add_noise,
    draw_idx,
    fixed_x_sums,
    kernel_inputs,
    replica_sums,
    store_sampler_state,
)
from refbilevel.algorithms._sample_rows_numba import (
    row_f_u,
    row_gen_hvp_T,
    row_grad_x_f,
    row_jvp,
    rows_grad_y_g,
)
from refbilevel.algorithms.epoch_sgd_numba import ipow, scalar_power_epoch_sgd
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.algorithms.unibio import UniBiOParams, unibio_cumulative_counts
from refbilevel.algorithms.unibio import step_halvings as _step_halvings_py
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_problems import draw_block
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import NotImplementedOnBackendError, register
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.validation import as_vector_batch


class UniBiOSteps(NamedTuple):
    """The UL loop of :class:`~refbilevel.algorithms.unibio.UniBiOParams` (T iterations,
    restarts every I, step η, momentum β, Q Neumann terms of step α, pre-averaging, the
    normalisation's ε) and the record interval."""

    T: int
    I: int
    eta: float
    beta: float
    Q: int
    alpha: float
    pre_avg: bool
    norm_eps: float
    record_every: int
    eta_hold: int  # the geometric step schedule (UniBiOParams.eta_hold; -1: none)
    eta_halving: int


class UniBiONoise(NamedTuple):
    """The Gaussian oracle's std per kind UniBiO calls (all 0 for a finite sum)."""

    grad_y_g: float
    grad_x_f: float
    f_u: float
    gen_hvp: float
    jvp: float


class EpochArrays(NamedTuple):
    """Epoch-SGD's epochs (docs/unibio.rst §4.1): lengths, ball radii, steps."""

    lengths: np.ndarray
    radii: np.ndarray
    steps: np.ndarray


@njit(cache=True, error_model="numpy")
def _epoch_sgd(P, rng, X, W, active, epochs, pre_avg, s_gy, sums):
    """Epoch-SGD with shrinking balls on every active replica (in place on W); one ∇_y G
    sample per step (a noise block, or an inner minibatch for a FiniteSumRecord). x is
    fixed during the call, so a finite sum's y-independent sums of ∇_y G (C̄ᵀx, ā) are kept
    in ``sums`` (a ``FixedXSums``) from step to step while the minibatch repeats (always for
    the full batch; ``rows_grad_y_g``, bit for bit the same gradients)."""
    R, dy = W.shape
    C = np.empty(dy)
    A = np.empty((R, dy))
    G2 = np.empty((1, dy))
    G = G2[0]
    one = np.ones(1, dtype=np.bool_)
    for r in range(R):
        sums.valid[r] = False  # x moved since the last call
    for k in range(epochs.lengths.shape[0]):
        L, rad, gam = epochs.lengths[k], epochs.radii[k], epochs.steps[k]
        Cs = W.copy()
        A[:] = 0.0
        for _ in range(L):
            Z = draw_block(rng, s_gy, R, dy)
            IZ = draw_idx(rng, P, False, R)
            for r in range(R):
                if not active[r]:
                    continue
                w = W[r]
                if pre_avg:
                    for i in range(dy):
                        A[r, i] += w[i]
                rows_grad_y_g(P, 0.0, IZ[r], Z[r], X[r:r + 1], W[r:r + 1], G2, one,
                              replica_sums(sums, r))  # the noise is added below
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


step_halvings = njit(cache=True)(_step_halvings_py)


@njit(cache=True, error_model="numpy")
def unibio_kernel(P, rng, X, Y, warm, periodic, steps, noise, sums):
    """UniBiO (docs/unibio.rst §4.1-4.2) on every registered family (GaussianOracle noise)
    or a FiniteSumRecord (minibatches): per UL iteration ∇_x F, F_u, Q H^T-products, the
    JVP, each on a fresh sample, in the reference's order."""
    R, dx = X.shape
    dy = Y.shape[1]
    T, I, every = steps.T, steps.I, steps.record_every
    beta, Q, alpha = steps.beta, steps.Q, steps.alpha
    s_gy, s_fx, s_fu, s_h, s_j = (noise.grad_y_g, noise.grad_x_f, noise.f_u, noise.gen_hvp,
                                  noise.jvp)
    n_rec = (T - 1) // every + 1
    XR = np.empty((n_rec, R, dx))
    YR = np.empty((n_rec, R, dy))
    div = np.full(R, -1, dtype=np.int64)
    active = np.ones(R, dtype=np.bool_)
    M = np.zeros((R, dx))
    g = np.empty(dx)
    s = np.empty(dy)
    tmp = np.empty(dy)
    tx = np.empty(dx)
    _epoch_sgd(P, rng, X, Y, active, warm, steps.pre_avg, s_gy, sums)
    for t in range(T):
        eta = math.ldexp(steps.eta, -step_halvings(t, steps.eta_hold, steps.eta_halving))
        if t > 0 and t % I == 0:
            _epoch_sgd(P, rng, X, Y, active, periodic, steps.pre_avg, s_gy, sums)
        if t % every == 0:
            XR[t // every] = X
            YR[t // every] = Y
        zx = draw_block(rng, s_fx, R, dx)
        ix = draw_idx(rng, P, True, R)
        zv = draw_block(rng, s_fu, R, dy)
        iv = draw_idx(rng, P, True, R)
        G = np.empty((R, dx))
        V = np.empty((R, dy))
        S = np.empty((R, dy))
        for r in range(R):
            row_grad_x_f(P, row(ix, r), row(X, r), row(Y, r), row(G, r))
            add_noise(row(G, r), s_fx, row(zx, r))
            row_f_u(P, row(iv, r), row(X, r), row(Y, r), row(V, r))
            add_noise(row(V, r), s_fu, row(zv, r))
            S[r] = row(V, r)
        for _ in range(Q):
            zh = draw_block(rng, s_h, R, dy)
            ih = draw_idx(rng, P, False, R)
            for r in range(R):  # v <- v - α (Ĥ^T v), Ĥ^T v = exact product + noise
                row_gen_hvp_T(P, row(ih, r), row(X, r), row(Y, r), row(V, r), tmp)
                if s_h != 0.0:
                    for i in range(dy):
                        V[r, i] = V[r, i] - alpha * (tmp[i] + s_h * zh[r, i])
                else:
                    for i in range(dy):
                        V[r, i] = V[r, i] - alpha * tmp[i]
                for i in range(dy):
                    S[r, i] = S[r, i] + V[r, i]
        zj = draw_block(rng, s_j, R, dx)
        ij = draw_idx(rng, P, False, R)
        for r in range(R):
            if not active[r]:
                continue
            for i in range(dy):
                s[i] = alpha * S[r, i]
            g[:] = row(G, r)
            row_jvp(P, row(ij, r), row(X, r), row(Y, r), s, tx)  # g <- g - (∇²_xy G s + noise)
            if s_j != 0.0:
                for i in range(dx):
                    g[i] = g[i] - (tx[i] + s_j * zj[r, i])
            else:
                for i in range(dx):
                    g[i] = g[i] - tx[i]
            nrm = 0.0
            ok = True
            for i in range(dx):
                mi = beta * M[r, i] + (1.0 - beta) * g[i]
                tx[i] = mi
                nrm += mi * mi
            nrm = np.sqrt(nrm) + steps.norm_eps
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
def unibio_example3_kernel(rng, X, Y, p, warm, periodic, steps, noise):
    """UniBiO on UniBiO Example 3 with scalar state (H = 1, ∇_x f = 0, ∇²_xy g = -cos x;
    docs/unibio.rst §6.1): the Section 6 benchmark path. Same oracle calls and draw order as
    the NumPy reference."""
    T, I, beta, Q, alpha = steps.T, steps.I, steps.beta, steps.Q, steps.alpha
    pre_avg, norm_eps, record_every = steps.pre_avg, steps.norm_eps, steps.record_every
    s_gy, s_fx, s_fu, s_h, s_j = (noise.grad_y_g, noise.grad_x_f, noise.f_u, noise.gen_hvp,
                                  noise.jvp)
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
    scalar_power_epoch_sgd(rng, sinx, y, active, warm.lengths, warm.radii, warm.steps,
                           pre_avg, s_gy, q)
    for t in range(T):
        eta = math.ldexp(steps.eta, -step_halvings(t, steps.eta_hold, steps.eta_halving))
        if t > 0 and t % I == 0:
            for r in range(R):
                sinx[r] = np.sin(x[r])
            scalar_power_epoch_sgd(rng, sinx, y, active, periodic.lengths, periodic.radii,
                                   periodic.steps, pre_avg, s_gy, q)
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


def _epochs_array(epochs) -> EpochArrays:
    return EpochArrays(np.array([e.length for e in epochs], dtype=np.int64),
                       np.array([e.radius for e in epochs], dtype=np.float64),
                       np.array([e.step for e in epochs], dtype=np.float64))


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
    X = as_vector_batch("x0", x0, problem.d_x).reshape(-1, problem.d_x).copy()
    Y = np.array(np.broadcast_to(as_vector_batch("y0", y0, problem.d_y),
                                 X.shape[:1] + (problem.d_y,)), dtype=np.float64)
    R = X.shape[0]
    C = problem.constants.C
    alpha = params.alpha if params.alpha is not None else (1.0 / C if C else None)
    if alpha is None:
        raise ValueError("alpha must be given when the problem has no bound C on ||H||")
    k_in = kernel_inputs(oracle, "unibio", R)
    if k_in.finite_sum:
        noise = UniBiONoise(0.0, 0.0, 0.0, 0.0, 0.0)
    else:
        nz = oracle.noise
        noise = UniBiONoise(float(nz.grad_y_g), float(nz.grad_x_f), float(nz.f_u),
                            float(nz.gen_hvp), float(nz.jvp))
    warm = _epochs_array(params.epochs(True, problem.p))
    periodic = _epochs_array(params.epochs(False, problem.p))
    steps = UniBiOSteps(int(params.T), int(params.I), float(params.eta), float(params.beta),
                        int(params.Q), float(alpha), params.average == "pre",
                        float(params.norm_eps), int(record_every),
                        -1 if params.eta_hold is None else int(params.eta_hold),
                        int(params.eta_halving))
    if type(problem) is UniBiOExample3 and not k_in.finite_sum:
        XR, YR, div, Xf, Yf = unibio_example3_kernel(oracle.rng, X, Y, problem.p, warm,
                                                     periodic, steps, noise)
    else:
        batch = k_in.P.batch_size if k_in.finite_sum else 1
        XR, YR, div, Xf, Yf = unibio_kernel(k_in.P, oracle.rng, X, Y, warm, periodic, steps,
                                            noise, fixed_x_sums(R, 1, Y.shape[1], batch))
    store_sampler_state(oracle, k_in, R, True)
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
