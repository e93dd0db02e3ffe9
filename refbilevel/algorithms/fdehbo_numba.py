"""FdeHBO and FMBO as one explicit Numba kernel (docs/fdehbo.rst §3, §4; docs/design.rst §Backends).

Same algorithm, conventions and random-number order as the NumPy reference
:func:`refbilevel.algorithms.fdehbo.storm_bilevel`: per iteration five (R, dim) standard-normal
blocks drawn from the oracle's Generator in the order ζ_t, ψ_f, ψ_g, ξ_f, ξ_g (nothing for an
exact kind, as :class:`~refbilevel.oracles.gaussian.GaussianOracle` does), then the STORM
arithmetic replica by replica, operation by operation as in the reference. On the same
Generator state the iterates agree with the reference to rounding (claim X4: ≤ 1e-12
relative; the dot products are sequential loops here and BLAS/pairwise sums there).

The problem enters as its Numba record (:mod:`refbilevel.backends.numba_problems`: every
registered family); other problems raise NotImplementedOnBackendError naming the class.

No ``prange``: one Generator feeds all replicas in a fixed order (the parity contract), and
the per-replica work at the test dimensions is a few dozen flops, so the kernel is bound by
the random numbers, not the arithmetic (the same reasoning as
:mod:`refbilevel.estimators.sid_numba`).

Divergence: a replica whose new state is non-finite is frozen at its last finite values and
its iteration recorded, exactly as :class:`~refbilevel.algorithms.trace.TraceRecorder` does;
the Trace is assembled by :func:`~refbilevel.algorithms.trace.build_trace`, as the reference's.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms.fdehbo import (
    StormSchedule,
    check_storm_args,
    storm_total_counts,
)
from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_problems import (
    draw_block,
    grad_x_f,
    grad_x_g,
    grad_y_f,
    grad_y_g,
    hvp,
    jvp,
    numba_problem,
)
from refbilevel.backends.registry import NotImplementedOnBackendError, register
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.oracles.matrix_noise import MatrixNoiseOracle

__all__ = ["fdehbo_numba", "record_iterations", "storm_bilevel_numba"]


@njit(cache=True, error_model="numpy")
def _add_noise(out, std, z):
    if std != 0.0:
        for i in range(out.shape[0]):
            out[i] = out[i] + std * z[i]


@njit(cache=True, error_model="numpy")
def _ls_grad(P, fd, x, y, v, delta, s_f, zf, s_g, zg, out, t1, t2, yy):
    """∇̃_v R = H̃ v − ∇_y F (FdeHBO, eq. (8)) or H v − ∇_y F (FMBO, eq. (5)) into out."""
    d = y.shape[0]
    if fd:
        for i in range(d):
            yy[i] = y[i] + delta * v[i]
        grad_y_g(P, x, yy, t1)
        _add_noise(t1, s_g, zg)
        for i in range(d):
            yy[i] = y[i] - delta * v[i]
        grad_y_g(P, x, yy, t2)
        _add_noise(t2, s_g, zg)
        for i in range(d):
            t1[i] = (t1[i] - t2[i]) / (2.0 * delta)
    else:
        hvp(P, x, y, v, t1)
        _add_noise(t1, s_g, zg)
    grad_y_f(P, x, y, t2)
    _add_noise(t2, s_f, zf)
    for i in range(d):
        out[i] = t1[i] - t2[i]


@njit(cache=True, error_model="numpy")
def _ul_grad(P, fd, x, y, v, delta, s_f, zf, s_g, zg, out, t1, t2, yy):
    """∇̃ f = ∇_x F − J̃ (FdeHBO, eq. (11)) or ∇_x F − ∇²_xy G v (FMBO, eq. (3)) into out."""
    d = y.shape[0]
    if fd:
        for i in range(d):
            yy[i] = y[i] + delta * v[i]
        grad_x_g(P, x, yy, t1)
        _add_noise(t1, s_g, zg)
        for i in range(d):
            yy[i] = y[i] - delta * v[i]
        grad_x_g(P, x, yy, t2)
        _add_noise(t2, s_g, zg)
        for i in range(out.shape[0]):
            t1[i] = (t1[i] - t2[i]) / (2.0 * delta)
    else:
        jvp(P, x, y, v, t1)
        _add_noise(t1, s_g, zg)
    grad_x_f(P, x, y, t2)
    _add_noise(t2, s_f, zf)
    for i in range(out.shape[0]):
        out[i] = t2[i] - t1[i]


@njit(cache=True, error_model="numpy")
def _storm_kernel(P, rng, x, y, v, a, b, lam, ef, eR, eg, delta, r_v, fd, stds, rec_every,
                  X_rec, Y_rec, div):  # pragma: no cover - compiled
    """Run T = len(a) iterations in place on (x, y, v) (R rows); fill the records and the
    divergence array; return max ||v_t|| over the run."""
    R, dx = x.shape
    dy = y.shape[1]
    T = a.shape[0]
    s_gyg, s_gyf, s_lsg, s_gxf, s_ulg = stds[0], stds[1], stds[2], stds[3], stds[4]
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
        Z = draw_block(rng, s_gyg, R, dy)
        PF = draw_block(rng, s_gyf, R, dy)
        PG = draw_block(rng, s_lsg, R, dy)
        XF = draw_block(rng, s_gxf, R, dx)
        XG = draw_block(rng, s_ulg, R, dx)
        for r in range(R):
            if div[r] >= 0:
                continue
            grad_y_g(P, x[r], y[r], gg)
            _add_noise(gg, s_gyg, Z[r])
            _ls_grad(P, fd, x[r], y[r], v[r], delta, s_gyf, PF[r], s_lsg, PG[r], gR, ty1,
                     ty2, yy)
            _ul_grad(P, fd, x[r], y[r], v[r], delta, s_gxf, XF[r], s_ulg, XG[r], gF, tx1,
                     tx2, yy)
            if t == 0:
                for i in range(dy):
                    nhg[i] = gg[i]
                    nhR[i] = gR[i]
                for i in range(dx):
                    nhF[i] = gF[i]
            else:
                grad_y_g(P, xp[r], yp[r], ggp)
                _add_noise(ggp, s_gyg, Z[r])
                _ls_grad(P, fd, xp[r], yp[r], vp[r], delta, s_gyf, PF[r], s_lsg, PG[r], gRp,
                         ty1, ty2, yy)
                _ul_grad(P, fd, xp[r], yp[r], vp[r], delta, s_gxf, XF[r], s_ulg, XG[r], gFp,
                         tx1, tx2, yy)
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
        if (t + 1) % rec_every == 0 or t + 1 == T:
            X_rec[k] = x
            Y_rec[k] = y
            k += 1
    return vmax


def record_iterations(T: int, record_every: int) -> np.ndarray:
    """The iterations the NumPy reference records: 0, every ``record_every``-th and T."""
    its = [0] + [t for t in range(1, T + 1) if t % record_every == 0 or t == T]
    return np.array(its, dtype=np.int64)


def storm_bilevel_numba(oracle: GaussianOracle, x0, y0, *, T: int, schedule: StormSchedule,
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
    P = numba_problem(problem)
    fd = variant == "fdehbo"
    nz = oracle.noise
    stds = np.array([nz.grad_y_g, nz.grad_y_f, nz.grad_y_g if fd else nz.hvp, nz.grad_x_f,
                     nz.grad_x_g if fd else nz.jvp], dtype=np.float64)
    its = record_iterations(T, record_every)
    X_rec = np.empty((its.size, R, problem.d_x))
    Y_rec = np.empty((its.size, R, problem.d_y))
    div = np.full(R, -1, dtype=np.int64)
    base = oracle.counts.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        vmax = _storm_kernel(P, oracle.rng, x, y, v, sch["alpha"], sch["beta"], sch["lambda"],
                             sch["eta_f"], sch["eta_R"], sch["eta_g"], float(delta),
                             float(r_v), fd, stds, int(record_every), X_rec, Y_rec, div)
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
def fdehbo_numba(oracle: GaussianOracle, x0, y0, *, T: int,
                 schedule: StormSchedule | None = None, delta: float = 1e-3,
                 r_v: float | None = None, v0=None, record_every: int = 1,
                 seed: int | None = None, diagnostics: bool = False) -> Trace:
    """FdeHBO, Numba backend (see :func:`storm_bilevel_numba`)."""
    return storm_bilevel_numba(oracle, x0, y0, T=T, schedule=schedule or StormSchedule.tuned(),
                               variant="fdehbo", delta=delta, r_v=r_v, v0=v0,
                               record_every=record_every, seed=seed, diagnostics=diagnostics)

