"""BO-REP as an explicit Numba kernel (docs/borep.rst §4, Algorithms 1-3; docs/design.rst
§Backends).

Same algorithm, parameters and random-number order as the NumPy reference
:func:`refbilevel.algorithms.borep.borep`: Epoch-SGD draws one (R, d_y) ∇_y G block per step;
each outer iteration draws, on an update iteration, N ∇_y G blocks, then the ∇_x F, ∇_y F,
HVP and JVP blocks, each as :class:`~refbilevel.oracles.gaussian.GaussianOracle` draws them
(nothing for an exact kind). With a :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`
(either sampler) every block is a minibatch instead, and lines 4-5 share one outer and one
inner minibatch, as the reference does with an oracle that ``shares_samples``
(:mod:`refbilevel.algorithms._sample_rows_numba` evaluates a drawn sample per replica). On
the same Generator the iterates agree with the reference to rounding (claim X4; the matrix
products are sequential loops here and BLAS there).

Problems: any family of :mod:`refbilevel.backends.numba_problems` that provides ∇_y G,
∇_x F, ∇_y F, HVP and JVP, among them BO-REP's own test problems P1 (both variants) and P2 of
docs/borep.rst §8 (their records and primitives are in
:mod:`refbilevel.backends.numba_families`), and the finite-sum quadratic; a problem without a
family raises NotImplementedOnBackendError naming the class.

The kernels take records, not positional lists (issue #14): the noise stds
(``OracleNoise``) and run length of :mod:`refbilevel.algorithms._baselines_numba`,
:class:`BorepSteps` and :class:`EpochSchedule`.

No ``prange``: one Generator feeds all replicas in a fixed order (the parity contract).

``variant="code"`` (docs/borep.rst §7, the released code's iteration; see the module docstring of
:mod:`refbilevel.algorithms.borep`) runs its own kernel, :func:`_borep_code_kernel`, with the
reference's random-number order for that variant: per iteration the HVP block, on an update
iteration ((t − 1) mod I == 0, the first included) 1 + N ∇_y G blocks, then ∇_y F, ∇_x F,
JVP; no Epoch-SGD.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from refbilevel.algorithms._baselines_numba import (
    GRAD_X_F,
    GRAD_Y_F,
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    add_noise,
    draw_sample_into,
    is_finite_sum,
    kernel_inputs,
    record_iterations,
    sample_buffers,
    store_sampler_state,
)
from refbilevel.algorithms._sample_rows_numba import (
    row_grad_x_f,
    row_grad_y_f,
    row_grad_y_g,
    row_hvp,
    row_jvp,
)
from refbilevel.algorithms.borep import (
    CODE_EPS,
    BOREPParams,
    BOREPTheoryConstants,
    _batch,
    _counts_through,
    borep_params,
    require_borep_oracle,
)
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import register
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.validation import as_vector_batch, require_int

__all__ = ["borep_numba"]

_JIT = {"cache": True, "error_model": "numpy"}


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


@njit(**_JIT, inline="always")
def _commit(r, t, x, y, z, m, xn, zn, mn, div):  # pragma: no cover - compiled
    """Accept replica r's step t (x, m, z ← xn, mn, zn) if it and y are finite; otherwise
    freeze the replica at its last finite state and record div[r] = t − 1 (the convention
    of TraceRecorder.check_finite). Inlined into the replica loop (Numba IR): no early
    return and element loops only, the forms the inliner keeps (see ``_baselines_numba``;
    the paper kernel's divergence record is compared with NumPy's in the parity tests).
    Measured on P2 (d_y = 6, R = 32, one thread): 428 -> 412 ns per replica-iteration."""
    ok = True
    for i in range(x.shape[1]):
        ok = ok and np.isfinite(xn[i]) and np.isfinite(mn[i])
    for i in range(y.shape[1]):
        ok = ok and np.isfinite(zn[i]) and np.isfinite(y[r, i])
    if ok:
        for i in range(x.shape[1]):
            x[r, i] = xn[i]
            m[r, i] = mn[i]
        for i in range(y.shape[1]):
            z[r, i] = zn[i]
    else:
        div[r] = t - 1


class BorepSteps(NamedTuple):
    """Algorithms 1-2's step parameters (:class:`~refbilevel.algorithms.borep.BOREPParams`
    names; ``eps`` is the code variant's ε in the normalization, unused by the paper's)."""

    eta: float
    beta: float
    I: int
    N: int
    gamma: float
    nu: float
    R_ball: float
    rho: float
    normalize: bool
    project: bool
    eps: float


class EpochSchedule(NamedTuple):
    """Algorithm 3's Epoch-SGD: k† epochs, T_1, θ_1, D_1 (docs/borep.rst §4)."""

    k: int
    T1: int
    theta1: float
    D1: float


@njit(**_JIT)
def _ll_sgd_step(P, noise, rng, x, u, c, step, radius, project, g, IZ, Z):
    """One projected SGD step u ← Π_{B(c, radius)}(u − step ∇_y G(x, u; fresh sample)) on
    every row (Algorithms 2 and 3); IZ, Z: the sample's buffers (:func:`sample_buffers`)."""
    R, dy = u.shape
    s_gyg = noise.grad_y_g
    draw_sample_into(GRAD_Y_G, P, noise, rng, IZ, Z)
    for r in range(R):
        row_grad_y_g(P, row(IZ, r), row(x, r), row(u, r), g)
        add_noise(g, s_gyg, row(Z, r))
        for i in range(dy):
            u[r, i] = u[r, i] - step * g[i]
        if project:
            _project(row(u, r), row(c, r), radius)


@njit(**_JIT)
def _borep_kernel(P, noise, rng, x, y, z, run, steps, epoch, X_rec, Y_rec,
                  div):  # pragma: no cover - compiled
    """The paper variant: Epoch-SGD at x_1, then ``run.T`` outer iterations in place on
    (x, y, z); fills the records and div, returns the number of lower-level updates.
    Lines 4-5 draw one outer and one inner minibatch for a FiniteSumRecord (a shared
    sample, as the reference with an oracle that ``shares_samples``), one block per kind
    otherwise."""
    R, dx = x.shape
    dy = y.shape[1]
    shared = is_finite_sum(P)
    s_gxf, s_gyf = noise.grad_x_f, noise.grad_y_f
    s_h, s_j = noise.hvp, noise.jvp
    eta, beta, gamma, nu = steps.eta, steps.beta, steps.gamma, steps.nu
    project, normalize = steps.project, steps.normalize
    g = np.empty(dy)
    gxf = np.empty(dx)
    gyf = np.empty(dy)
    hz = np.empty(dy)
    jz = np.empty(dx)
    zn = np.empty(dy)
    mn = np.empty(dx)
    xn = np.empty(dx)
    zero = np.zeros(dy)
    # the samples' buffers, refilled (draw_sample_into); with a shared sample (finite sum)
    # ∇_y F reads ξ_t's minibatch IX and the JVP ζ_t's IH, and their noise rows stay zeros
    IZ, Z = sample_buffers(P, R, dy)
    IX, SX = sample_buffers(P, R, dx)
    IH, SH = sample_buffers(P, R, dy)
    IY, SY = sample_buffers(P, R, dy)
    IJ, SJ = sample_buffers(P, R, dx)
    if shared:
        IY = IX
        IJ = IH
    # ---- Algorithm 3: Epoch-SGD at x_1
    u = np.empty((R, dy))
    acc = np.empty((R, dy))
    for k in range(1, epoch.k + 1):
        Tk = epoch.T1 * 2 ** (k - 1)
        th = epoch.theta1 * 2.0 ** (-(k - 1))
        Dk = epoch.D1 * 2.0 ** (-(k - 1) / 2.0)
        for r in range(R):
            for i in range(dy):
                u[r, i] = y[r, i]
                acc[r, i] = 0.0
        for _ in range(Tk):
            _ll_sgd_step(P, noise, rng, x, u, y, th, Dk, project, g, IZ, Z)
            for r in range(R):
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
    for t in range(1, run.T + 1):
        if t >= 2 and (t - 1) % steps.I == 0:  # Algorithm 2, periodic projected SGD
            n_upd += 1
            for r in range(R):
                for i in range(dy):
                    u[r, i] = y[r, i]
            for _ in range(steps.N):
                _ll_sgd_step(P, noise, rng, x, u, y, gamma, steps.R_ball, project, g, IZ, Z)
            for r in range(R):
                if div[r] < 0:
                    for i in range(dy):
                        y[r, i] = u[r, i]
        draw_sample_into(GRAD_X_F, P, noise, rng, IX, SX)
        if not shared:  # shared: one outer sample ξ_t
            draw_sample_into(GRAD_Y_F, P, noise, rng, IY, SY)
        draw_sample_into(HVP, P, noise, rng, IH, SH)
        if not shared:  # shared: one inner sample ζ_t
            draw_sample_into(JVP, P, noise, rng, IJ, SJ)
        for r in range(R):
            if div[r] >= 0:
                continue
            row_grad_x_f(P, row(IX, r), row(x, r), row(y, r), gxf)
            add_noise(gxf, s_gxf, row(SX, r))
            row_grad_y_f(P, row(IY, r), row(x, r), row(y, r), gyf)
            add_noise(gyf, s_gyf, row(SY, r))
            row_hvp(P, row(IH, r), row(x, r), row(y, r), row(z, r), hz)
            add_noise(hz, s_h, row(SH, r))
            row_jvp(P, row(IJ, r), row(x, r), row(y, r), row(z, r), jz)
            add_noise(jz, s_j, row(SJ, r))
            for i in range(dy):
                zn[i] = z[r, i] - nu * (hz[i] - gyf[i])
            if project:
                _project(zn, zero, steps.rho)
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
        if t % run.every == 0 or t == run.T:
            X_rec[kr] = x
            Y_rec[kr] = y
            kr += 1
    return n_upd


@njit(**_JIT)
def _borep_code_kernel(P, noise, rng, x, y, z, run, steps, X_rec, Y_rec,
                       div):  # pragma: no cover - compiled
    """variant="code" (docs/borep.rst §7 items 1-5), the operations of borep._borep_code
    (one sample per oracle kind, a minibatch for a FiniteSumRecord)."""
    R, dx = x.shape
    dy = y.shape[1]
    s_gyg, s_gxf, s_gyf = noise.grad_y_g, noise.grad_x_f, noise.grad_y_f
    s_h, s_j = noise.hvp, noise.jvp
    eta, beta, gamma, nu = steps.eta, steps.beta, steps.gamma, steps.nu
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
    IH, SH = sample_buffers(P, R, dy)
    IZ, Z = sample_buffers(P, R, dy)
    IY, SY = sample_buffers(P, R, dy)
    IX, SX = sample_buffers(P, R, dx)
    IJ, SJ = sample_buffers(P, R, dx)
    X_rec[0] = x
    Y_rec[0] = y
    kr = 1
    n_upd = 0
    for t in range(1, run.T + 1):
        # item 1: HVP at the current y, before the update
        draw_sample_into(HVP, P, noise, rng, IH, SH)
        for r in range(R):
            row_hvp(P, row(IH, r), row(x, r), row(y, r), row(z, r), row(hz, r))
            add_noise(row(hz, r), s_h, row(SH, r))
        # item 2: 1 + N SGD steps with accumulated gradients, no projection
        if (t - 1) % steps.I == 0:
            n_upd += 1
            for r in range(R):
                for i in range(dy):
                    u[r, i] = y[r, i]
                    acc[r, i] = 0.0
            for _ in range(1 + steps.N):
                draw_sample_into(GRAD_Y_G, P, noise, rng, IZ, Z)
                for r in range(R):
                    row_grad_y_g(P, row(IZ, r), row(x, r), row(u, r), g)
                    add_noise(g, s_gyg, row(Z, r))
                    for i in range(dy):
                        acc[r, i] = acc[r, i] + g[i]
                        u[r, i] = u[r, i] - gamma * acc[r, i]
            for r in range(R):
                if div[r] < 0:
                    for i in range(dy):
                        y[r, i] = u[r, i]
        draw_sample_into(GRAD_Y_F, P, noise, rng, IY, SY)
        draw_sample_into(GRAD_X_F, P, noise, rng, IX, SX)
        draw_sample_into(JVP, P, noise, rng, IJ, SJ)
        for r in range(R):
            if div[r] >= 0:
                continue
            # item 3: z from ∇_y F at the updated y
            row_grad_y_f(P, row(IY, r), row(x, r), row(y, r), gyf)
            add_noise(gyf, s_gyf, row(SY, r))
            for i in range(dy):
                zn[i] = z[r, i] - nu * (hz[r, i] - gyf[i])
            # item 4: hypergradient with z_{t+1} and a third batch
            row_grad_x_f(P, row(IX, r), row(x, r), row(y, r), gxf)
            add_noise(gxf, s_gxf, row(SX, r))
            row_jvp(P, row(IJ, r), row(x, r), row(y, r), zn, jz)
            add_noise(jz, s_j, row(SJ, r))
            # item 5: momentum and the ε-normalized step
            s = 0.0
            for i in range(dx):
                mn[i] = beta * m[r, i] + (1.0 - beta) * (gxf[i] - jz[i])
                s += mn[i] * mn[i]
            nm = np.sqrt(s)
            for i in range(dx):
                if steps.normalize:
                    xn[i] = x[r, i] - eta * mn[i] / (nm + steps.eps)
                else:
                    xn[i] = x[r, i] - eta * mn[i]
            _commit(r, t, x, y, z, m, xn, zn, mn, div)
        if t % run.every == 0 or t == run.T:
            X_rec[kr] = x
            Y_rec[kr] = y
            kr += 1
    return n_upd


@register("algorithm", "borep", "numba")
def borep_numba(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *,
                params: BOREPParams | None = None, mode: str = "tuned", T: int | None = None,
                eps: float | None = None, theory: BOREPTheoryConstants | None = None, z0=None,
                record_every: int = 1, seed: int | None = None, **overrides: Any) -> Trace:
    """BO-REP, Numba backend; same arguments and Trace as
    :func:`refbilevel.algorithms.borep.borep` (same ``extra`` keys)."""
    require_borep_oracle(oracle)
    problem = oracle.problem
    if params is None:
        params = borep_params(problem, mode=mode, T=T, eps=eps, theory=theory, **overrides)
    elif overrides or T is not None or eps is not None or theory is not None:
        raise ValueError("give either params or (mode, T, eps, theory, overrides), not both")
    if not isinstance(params, BOREPParams):
        raise ValueError(f"params must be a BOREPParams, got {type(params).__name__}")
    require_int("record_every", record_every, low=1)
    p = params
    x, y, R = _batch(problem, x0, y0)
    k_in = kernel_inputs(oracle, "borep", R)
    z = np.zeros((R, problem.d_y)) if z0 is None else np.array(
        np.broadcast_to(np.atleast_2d(as_vector_batch("z0", z0, problem.d_y)),
                        (R, problem.d_y)), order="C")
    its = record_iterations(p.T, record_every)
    X_rec = np.empty((its.size, R, problem.d_x))
    Y_rec = np.empty((its.size, R, problem.d_y))
    div = np.full(R, -1, dtype=np.int64)
    run = RunLength(p.T, record_every)
    steps = BorepSteps(p.eta, p.beta, p.I, p.N, p.gamma, p.nu, p.R_ball, p.rho, p.normalize,
                       p.project, CODE_EPS)
    base = oracle.counts.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if p.variant == "code":
            shared = False
            n_upd = _borep_code_kernel(k_in.P, k_in.noise, oracle.rng, x, y, z, run, steps,
                                       X_rec, Y_rec, div)
        else:
            shared = k_in.finite_sum  # the kernel shares ξ_t, ζ_t for a FiniteSumRecord
            epoch = EpochSchedule(p.epoch_k, p.epoch_T1, p.epoch_theta1, p.epoch_D1)
            n_upd = _borep_kernel(k_in.P, k_in.noise, oracle.rng, x, y, z, run, steps, epoch,
                                  X_rec, Y_rec, div)
        y_init_err = np.linalg.norm(Y_rec[0] - problem.y_star(X_rec[0]), axis=-1)
    store_sampler_state(oracle, k_in, R, True)
    counts: dict[str, list[int]] = {k: [] for k in base.as_dict()}
    for t in its:
        cc = base.copy()
        for kind_, n in _counts_through(p, int(t), shared).items():
            cc.add(kind_, n)
        for k, n in cc.as_dict().items():
            counts[k].append(n)
    for kind_, n in _counts_through(p, p.T, shared).items():
        oracle.counts.add(kind_, n)
    with np.errstate(over="ignore", invalid="ignore"):
        return build_trace(problem, "borep", "numba", p.as_dict(), seed, its, X_rec, Y_rec,
                           {k: np.array(v) for k, v in counts.items()}, div,
                           y_init_error=y_init_err, n_lower_updates=int(n_upd), y=y, z=z,
                           shared_samples=shared)
