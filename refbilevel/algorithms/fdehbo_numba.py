"""FdeHBO and FMBO as one explicit Numba kernel (docs/fdehbo.rst §3, §4; docs/design.rst §Backends).

Same algorithm, conventions and random-number order as the NumPy reference
:func:`refbilevel.algorithms.fdehbo.storm_bilevel`: per iteration five samples drawn from the
oracle's Generator in the order ζ_t, ψ_f, ψ_g, ξ_f, ξ_g — with a
:class:`~refbilevel.oracles.gaussian.GaussianOracle` five (R, dim) standard-normal blocks
(nothing for an exact kind), with a :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`
five minibatches (inner, outer, inner, outer, inner; either sampler) — then the STORM
arithmetic replica by replica, operation by operation as in the reference, every sample
evaluated at both points (x_t, y_t ± δv_t and x_{t-1}, ...) of the iteration
(:mod:`refbilevel.algorithms._sample_rows_numba`). On the same Generator state the iterates
agree with the reference to rounding (claim X4: ≤ 1e-12 relative; the dot products are
sequential loops here and BLAS/pairwise sums there).

The problem enters as its Numba record (:mod:`refbilevel.backends.numba_problems`: every
registered family) or as the finite-sum record of
:func:`~refbilevel.algorithms._baselines_numba.kernel_inputs`; other problems raise
NotImplementedOnBackendError naming the class. The kernel takes records, not positional
lists (issue #14): the schedule (:class:`StormSteps`), the variant (:class:`StormConfig`),
the noise stds and the run length of :mod:`refbilevel.algorithms._baselines_numba`.

No ``prange``: one Generator feeds all replicas in a fixed order (the parity contract), and
the per-replica work at the test dimensions is a few dozen flops, so the kernel is bound by
the random numbers, not the arithmetic (the same reasoning as
:mod:`refbilevel.estimators.sid_numba`).

Divergence: a replica whose new state is non-finite is frozen at its last finite values and
its iteration recorded, exactly as :class:`~refbilevel.algorithms.trace.TraceRecorder` does;
the Trace is assembled by :func:`~refbilevel.algorithms.trace.build_trace`, as the reference's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refbilevel.algorithms._baselines_numba import (
    GRAD_X_F,
    GRAD_X_G,
    GRAD_Y_F,
    GRAD_Y_G,
    HVP,
    JVP,
    RunLength,
    add_noise,
    draw_sample,
    kernel_inputs,
    store_sampler_state,
)
from refbilevel.algorithms._sample_rows_numba import (
    row_grad_x_f,
    row_grad_x_g,
    row_grad_y_f,
    row_grad_y_g,
    row_hvp,
    row_jvp,
)
from refbilevel.algorithms.fdehbo import (
    StormSchedule,
    check_storm_args,
    storm_total_counts,
)
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_rows import borrowed_row as row
from refbilevel.backends.registry import NotImplementedOnBackendError, register
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.oracles.matrix_noise import MatrixNoiseOracle

__all__ = ["fdehbo_numba", "record_iterations", "storm_bilevel_numba"]


class StormSteps(NamedTuple):
    """The schedule arrays of :meth:`StormSchedule.arrays`, t = 0..T-1."""

    alpha: np.ndarray
    beta: np.ndarray
    lam: np.ndarray
    eta_f: np.ndarray
    eta_R: np.ndarray
    eta_g: np.ndarray


class StormConfig(NamedTuple):
    """FdeHBO (``fd``: finite differences of step ``delta``) or FMBO; the v-ball radius."""

    fd: bool
    delta: float
    r_v: float


@njit(cache=True, error_model="numpy")
def _ls_grad(P, cfg, x, y, v, s_f, zf, If, s_g, zg, Ig, out, t1, t2, yy):
    """∇̃_v R = H̃ v − ∇_y F (FdeHBO, eq. (8)) or H v − ∇_y F (FMBO, eq. (5)) into out, on
    the samples (zf, If) of ∇_y F and (zg, Ig) of the lower level."""
    d = y.shape[0]
    delta = cfg.delta
    if cfg.fd:
        for i in range(d):
            yy[i] = y[i] + delta * v[i]
        row_grad_y_g(P, Ig, x, yy, t1)
        add_noise(t1, s_g, zg)
        for i in range(d):
            yy[i] = y[i] - delta * v[i]
        row_grad_y_g(P, Ig, x, yy, t2)
        add_noise(t2, s_g, zg)
        for i in range(d):
            t1[i] = (t1[i] - t2[i]) / (2.0 * delta)
    else:
        row_hvp(P, Ig, x, y, v, t1)
        add_noise(t1, s_g, zg)
    row_grad_y_f(P, If, x, y, t2)
    add_noise(t2, s_f, zf)
    for i in range(d):
        out[i] = t1[i] - t2[i]


@njit(cache=True, error_model="numpy")
def _ul_grad(P, cfg, x, y, v, s_f, zf, If, s_g, zg, Ig, out, t1, t2, yy):
    """∇̃ f = ∇_x F − J̃ (FdeHBO, eq. (11)) or ∇_x F − ∇²_xy G v (FMBO, eq. (3)) into out."""
    d = y.shape[0]
    delta = cfg.delta
    if cfg.fd:
        for i in range(d):
            yy[i] = y[i] + delta * v[i]
        row_grad_x_g(P, Ig, x, yy, t1)
        add_noise(t1, s_g, zg)
        for i in range(d):
            yy[i] = y[i] - delta * v[i]
        row_grad_x_g(P, Ig, x, yy, t2)
        add_noise(t2, s_g, zg)
        for i in range(out.shape[0]):
            t1[i] = (t1[i] - t2[i]) / (2.0 * delta)
    else:
        row_jvp(P, Ig, x, y, v, t1)
        add_noise(t1, s_g, zg)
    row_grad_x_f(P, If, x, y, t2)
    add_noise(t2, s_f, zf)
    for i in range(out.shape[0]):
        out[i] = t2[i] - t1[i]


@njit(cache=True, error_model="numpy")
def _storm_kernel(P, noise, rng, x, y, v, steps, cfg, run, X_rec, Y_rec,
                  div):  # pragma: no cover - compiled
    """Run ``run.T`` iterations in place on (x, y, v) (R rows); fill the records and the
    divergence array; return max ||v_t|| over the run. P: a family record (GaussianOracle,
    stds in ``noise``) or a FiniteSumRecord (minibatches; stds 0)."""
    R, dx = x.shape
    dy = y.shape[1]
    T = run.T
    a, b, lam = steps.alpha, steps.beta, steps.lam
    ef, eR, eg = steps.eta_f, steps.eta_R, steps.eta_g
    r_v = cfg.r_v
    # the five samples' kinds: ζ (∇_y G), ψ = (∇_y F, ∇_y G | HVP), ξ̄ = (∇_x F, ∇_x G | JVP)
    s_gyg, s_gyf, s_gxf = noise.grad_y_g, noise.grad_y_f, noise.grad_x_f
    k_lsg = GRAD_Y_G if cfg.fd else HVP
    k_ulg = GRAD_X_G if cfg.fd else JVP
    s_lsg = noise.grad_y_g if cfg.fd else noise.hvp
    s_ulg = noise.grad_x_g if cfg.fd else noise.jvp
    hg = np.zeros((R, dy))
    hR = np.zeros((R, dy))
    hF = np.zeros((R, dx))
    xp = x.copy()
    yp = y.copy()
    vp = v.copy()
    gg = np.empty(dy)
    ggp = np.empty(dy)
    gR = np.empty(dy)
    gRp = np.empty(dy)
    gF = np.empty(dx)
    gFp = np.empty(dx)
    ty1 = np.empty(dy)
    ty2 = np.empty(dy)
    tx1 = np.empty(dx)
    tx2 = np.empty(dx)
    yy = np.empty(dy)
    nx = np.empty(dx)
    ny = np.empty(dy)
    nv = np.empty(dy)
    nhg = np.empty(dy)
    nhR = np.empty(dy)
    nhF = np.empty(dx)
    vmax = 0.0
    for r in range(R):
        s = 0.0
        for i in range(dy):
            s += v[r, i] * v[r, i]
        vmax = max(vmax, np.sqrt(s))
    X_rec[0] = x
    Y_rec[0] = y
    k = 1
    for t in range(T):
        IZ, Z = draw_sample(GRAD_Y_G, P, noise, rng, R, dy)
        IPF, PF = draw_sample(GRAD_Y_F, P, noise, rng, R, dy)
        IPG, PG = draw_sample(k_lsg, P, noise, rng, R, dy)
        IXF, XF = draw_sample(GRAD_X_F, P, noise, rng, R, dx)
        IXG, XG = draw_sample(k_ulg, P, noise, rng, R, dx)
        for r in range(R):
            if div[r] >= 0:
                continue
            xr, yr, vr, iz, z = row(x, r), row(y, r), row(v, r), row(IZ, r), row(Z, r)
            pf, ipf, pg, ipg = row(PF, r), row(IPF, r), row(PG, r), row(IPG, r)
            xf, ixf, xg, ixg = row(XF, r), row(IXF, r), row(XG, r), row(IXG, r)
            row_grad_y_g(P, iz, xr, yr, gg)
            add_noise(gg, s_gyg, z)
            _ls_grad(P, cfg, xr, yr, vr, s_gyf, pf, ipf, s_lsg, pg, ipg, gR, ty1, ty2, yy)
            _ul_grad(P, cfg, xr, yr, vr, s_gxf, xf, ixf, s_ulg, xg, ixg, gF, tx1, tx2, yy)
            if t == 0:
                for i in range(dy):
                    nhg[i] = gg[i]
                    nhR[i] = gR[i]
                for i in range(dx):
                    nhF[i] = gF[i]
            else:
                xpr, ypr, vpr = row(xp, r), row(yp, r), row(vp, r)
                row_grad_y_g(P, iz, xpr, ypr, ggp)
                add_noise(ggp, s_gyg, z)
                _ls_grad(P, cfg, xpr, ypr, vpr, s_gyf, pf, ipf, s_lsg, pg, ipg, gRp, ty1, ty2,
                         yy)
                _ul_grad(P, cfg, xpr, ypr, vpr, s_gxf, xf, ixf, s_ulg, xg, ixg, gFp, tx1, tx2,
                         yy)
                e1, e2, e3 = eg[t], eR[t], ef[t]
                for i in range(dy):
                    nhg[i] = e1 * gg[i] + (1.0 - e1) * (hg[r, i] + gg[i] - ggp[i])
                    nhR[i] = e2 * gR[i] + (1.0 - e2) * (hR[r, i] + gR[i] - gRp[i])
                for i in range(dx):
                    nhF[i] = e3 * gF[i] + (1.0 - e3) * (hF[r, i] + gF[i] - gFp[i])
            ok = True
            for i in range(dy):
                ny[i] = y[r, i] - b[t] * nhg[i]
                nv[i] = v[r, i] - lam[t] * nhR[i]
            s = 0.0
            for i in range(dy):
                s += nv[i] * nv[i]
            nrm = np.sqrt(s)
            if nrm > r_v:
                sc = r_v / nrm
                for i in range(dy):
                    nv[i] = nv[i] * sc
            for i in range(dx):
                nx[i] = x[r, i] - a[t] * nhF[i]
                ok = ok and np.isfinite(nx[i]) and np.isfinite(nhF[i])
            for i in range(dy):
                ok = (ok and np.isfinite(ny[i]) and np.isfinite(nv[i]) and np.isfinite(nhg[i])
                      and np.isfinite(nhR[i]))
            if not ok:
                div[r] = t
                continue
            for i in range(dx):
                xp[r, i] = x[r, i]
                x[r, i] = nx[i]
                hF[r, i] = nhF[i]
            s = 0.0
            for i in range(dy):
                yp[r, i] = y[r, i]
                vp[r, i] = v[r, i]
                y[r, i] = ny[i]
                v[r, i] = nv[i]
                hg[r, i] = nhg[i]
                hR[r, i] = nhR[i]
                s += nv[i] * nv[i]
            vmax = max(vmax, np.sqrt(s))
        if (t + 1) % run.every == 0 or t + 1 == T:
            X_rec[k] = x
            Y_rec[k] = y
            k += 1
    return vmax


def record_iterations(T: int, record_every: int) -> np.ndarray:
    """The iterations the NumPy reference records: 0, every ``record_every``-th and T."""
    its = [0] + [t for t in range(1, T + 1) if t % record_every == 0 or t == T]
    return np.array(its, dtype=np.int64)


def storm_bilevel_numba(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *, T: int,
                        schedule: StormSchedule,
                        variant: str = "fdehbo", delta: float = 1e-3,
                        r_v: float | None = None, v0=None, record_every: int = 1,
                        seed: int | None = None, diagnostics: bool = False) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.fdehbo.storm_bilevel` (same arguments,
    same random numbers, same Trace; ``trace.backend == "numba"``).

    A :class:`~refbilevel.oracles.matrix_noise.MatrixNoiseOracle` is refused with
    NotImplementedOnBackendError: the kernel draws additive per-kind Gaussian noise itself,
    and the matrix noise of docs/fdehbo.rst §10.1 runs on the NumPy backend only."""
    if diagnostics:
        raise NotImplementedOnBackendError(
            f"{variant} diagnostics (the estimators' exact errors at every step) run on the "
            "NumPy backend only")
    if isinstance(oracle, MatrixNoiseOracle):
        raise NotImplementedOnBackendError(
            f"{variant} on the numba backend draws additive Gaussian noise inside the kernel; "
            "MatrixNoiseOracle (matrix noise, docs/fdehbo.rst §10.1) runs on the NumPy backend: "
            f"use implementation('algorithm', {variant!r}, 'numpy')")
    x, y, v, R, T, delta, r_v, sch = check_storm_args(
        oracle, x0, y0, v0, T, schedule, delta, r_v, variant, record_every)
    problem = oracle.problem
    k_in = kernel_inputs(oracle, variant, R)
    fd = variant == "fdehbo"
    its = record_iterations(T, record_every)
    X_rec = np.empty((its.size, R, problem.d_x))
    Y_rec = np.empty((its.size, R, problem.d_y))
    div = np.full(R, -1, dtype=np.int64)
    base = oracle.counts.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        vmax = _storm_kernel(
            k_in.P, k_in.noise, oracle.rng, x, y, v,
            StormSteps(sch["alpha"], sch["beta"], sch["lambda"], sch["eta_f"], sch["eta_R"],
                       sch["eta_g"]),
            StormConfig(fd, float(delta), float(r_v)), RunLength(T, int(record_every)),
            X_rec, Y_rec, div)
    store_sampler_state(oracle, k_in, R, T > 0)
    counts: dict[str, list[int]] = {k: [] for k in base.as_dict()}
    for t in its:
        c = base.copy()
        for kind, n in storm_total_counts(variant, int(t)).items():
            c.add(kind, n)
        for k, n in c.as_dict().items():
            counts[k].append(n)
    total = storm_total_counts(variant, T)
    for kind, n in total.items():
        oracle.counts.add(kind, n)
    params = {"variant": variant, "T": T, "delta": delta if fd else None, "r_v": r_v,
              **schedule.as_dict()}
    with np.errstate(over="ignore", invalid="ignore"):  # as inside the reference's loop
        return build_trace(problem, variant, "numba", params, seed, its, X_rec, Y_rec,
                           {k: np.array(v_) for k, v_ in counts.items()}, div, y_final=y,
                           v_final=v, v_norm_max=float(vmax), R=R)


@register("algorithm", "fdehbo", "numba")
def fdehbo_numba(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *, T: int,
                 schedule: StormSchedule | None = None, delta: float = 1e-3,
                 r_v: float | None = None, v0=None, record_every: int = 1,
                 seed: int | None = None, diagnostics: bool = False) -> Trace:
    """FdeHBO, Numba backend (see :func:`storm_bilevel_numba`)."""
    return storm_bilevel_numba(oracle, x0, y0, T=T, schedule=schedule or StormSchedule.tuned(),
                               variant="fdehbo", delta=delta, r_v=r_v, v0=v0,
                               record_every=record_every, seed=seed, diagnostics=diagnostics)

