"""SID as an explicit Numba kernel (SID Alg. 1; docs/sid_bsgm.rst §4.2; docs/design.rst §Backends).

Same algorithm, conventions and random-number order as the NumPy reference
:mod:`refbilevel.estimators.sid`, so that on the same Generator state both return the same
estimate up to float64 summation order (≤ 1e-12 relative; the matrix-vector products are
sequential loops here and BLAS calls there, so bit-for-bit equality is not promised).

Why the kernel is fast:

* one compiled call per SID estimate (the reference makes t + k + 2J oracle calls, each a
  few NumPy dispatches and validations);
* the random numbers are drawn one at a time with the Generator passed in (Numba's
  ``Generator.standard_normal`` uses the same bit generator and the same ziggurat as NumPy,
  so the stream is bit-identical and the Python object's state advances), straight into a
  scratch row that is consumed immediately: no (R, m) noise blocks are allocated.

Why there is no ``prange`` over replicas: the parity contract fixes the order of the
draws (step-major, then replica, then the row layout of
:mod:`refbilevel.oracles.contraction`), and one Generator cannot be shared by threads
without changing that order. The arithmetic per random number is one or two flops, so the
kernel is bound by the generator; a parallel loop over replicas could only parallelize
the small deterministic part.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np

from refbilevel.backends import register
from refbilevel.backends.numba_entry import FixedTypeKernel
from refbilevel.backends.numba_jit import njit
from refbilevel.estimators.result import Estimate
from refbilevel.estimators.sid import REUSE_MODES, prepare_sid_inputs
from refbilevel.oracles.contraction import ContractionCounts, ContractionOracle

_REUSE_CODE = {None: 0, "pairs": 1, "ll": 2}


class ContractionRecord(NamedTuple):
    """A linear-contraction problem as the kernel reads it (docs/sid_bsgm.rst §14.1): the
    matrices and vectors of Φ and E, the noise levels of Z, Y, ε, and the ξ noise as
    ``xi_mode`` (0 none, 1 diagonal: ``xi_factor`` is a column of stds, 2 full: ξ = F u with
    F = ``xi_factor``)."""

    A: np.ndarray
    B: np.ndarray
    c: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    S: np.ndarray
    p: np.ndarray
    s: np.ndarray
    s_Z: float
    s_Y: float
    s_eps: float
    xi_mode: int
    xi_factor: np.ndarray


class SidRun(NamedTuple):
    """One batch of SID estimates: λ and w_0 per replica (R, n), (R, d); t LL steps, k LS
    steps, J samples of the outer gradient, the step sizes eta, and ``reuse`` (0 SID; the
    negative controls: 1 the LS reuses each sample for two steps, 2 it reuses the LL
    samples)."""

    lam: np.ndarray
    w0: np.ndarray
    t: int
    k: int
    J: int
    eta: np.ndarray
    reuse: int


_RECORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def contraction_record(oracle: ContractionOracle) -> ContractionRecord:
    """The oracle's problem as a :class:`ContractionRecord`, built once per oracle (at one
    replica the kernel's run time is comparable to the Python attribute lookups)."""
    rec = _RECORDS.get(oracle)
    if rec is None:
        D = oracle.data
        rec = _RECORDS[oracle] = ContractionRecord(
            A=D.A, B=D.B, c=D.c, P=D.P, Q=D.Q, S=D.S, p=D.p, s=D.s, s_Z=float(D.s_Z),
            s_Y=float(D.s_Y), s_eps=float(D.s_eps), xi_mode=int(oracle.xi_mode),
            xi_factor=oracle.xi_factor_2d)
    return rec


@njit(cache=True)
def _sid_kernel(rng, D, run, out):  # pragma: no cover - compiled
    """Fill ``out`` (R, n) with SID estimates of :class:`SidRun` ``run`` on the problem
    :class:`ContractionRecord` ``D``; draws in the order of the NumPy reference."""
    A, B, c, P, Q, S, p, s = D.A, D.B, D.c, D.P, D.Q, D.S, D.p, D.s
    sZ, sY, seps, xi_mode, xi_f = D.s_Z, D.s_Y, D.s_eps, D.xi_mode, D.xi_factor
    lam, w0, t, k, J, eta, reuse = run.lam, run.w0, run.t, run.k, run.J, run.eta, run.reuse
    R, d = w0.shape
    n = B.shape[1]
    dd = d * d
    hasZ = sZ > 0.0
    hasY = sY > 0.0
    hasE = seps > 0.0
    mZ = dd if hasZ else 0
    mY = d * n if hasY else 0
    mE = d if hasE else 0
    buf = np.empty(dd + d * n + d + d + n)  # one noise row; also holds xi (d + n)
    tmp = np.empty(d)
    tmp2 = np.empty(d)
    w = w0.copy()
    zll = np.empty((t if reuse == 2 else 0, R, dd))
    zpair = np.empty((R, dd if reuse == 1 else 0))

    # ---- Step 1: LL, w <- (1-eta) w + eta Phi(w, lam; zeta), one (R, m) block per step
    for i in range(t):
        h = eta[i]
        for r in range(R):
            for a in range(mZ + mY + mE):
                buf[a] = rng.standard_normal()
            for a in range(d):
                acc = 0.0
                for b in range(d):
                    acc += A[a, b] * w[r, b]
                tmp[a] = acc  # A w
            if hasZ:
                for a in range(d):
                    acc = 0.0
                    for b in range(d):
                        z = sZ * buf[a * d + b]
                        if reuse == 2:
                            zll[i, r, a * d + b] = z
                        acc += z * w[r, b]
                    tmp[a] = tmp[a] + acc  # A w + Z w
            for a in range(d):
                acc = 0.0
                for e in range(n):
                    acc += B[a, e] * lam[r, e]
                tmp2[a] = acc  # B lam
            if hasY:
                for a in range(d):
                    acc = 0.0
                    for e in range(n):
                        acc += (sY * buf[mZ + a * n + e]) * lam[r, e]
                    tmp2[a] = tmp2[a] + acc  # B lam + Y lam
            for a in range(d):
                phi = tmp[a] + tmp2[a] + c[a]
                if hasE:
                    phi = phi + seps * buf[mZ + mY + a]
                tmp[a] = phi
            for a in range(d):
                w[r, a] = (1.0 - h) * w[r, a] + h * tmp[a]

    # ---- Step 2: G = (1/J) sum_j grad E(w_t, lam; xi_j), one (R, d+n) block per j.
    # The exact part ((P w + Q lam) + p, (Q^T w + S lam) + s) is the same for every j, so
    # it is computed once (the reference recomputes the identical value J times).
    ge1 = np.empty((R, d))
    ge2 = np.empty((R, n))
    for r in range(R):
        for a in range(d):
            acc = 0.0
            for b in range(d):
                acc += P[a, b] * w[r, b]
            acc2 = 0.0
            for e in range(n):
                acc2 += Q[a, e] * lam[r, e]
            ge1[r, a] = acc + acc2 + p[a]
        for e in range(n):
            acc = 0.0
            for a in range(d):
                acc += w[r, a] * Q[a, e]
            acc2 = 0.0
            for f in range(n):
                acc2 += S[e, f] * lam[r, f]
            ge2[r, e] = acc + acc2 + s[e]
    G1 = np.zeros((R, d))
    G2 = np.zeros((R, n))
    m_xi = d + n
    xi = buf[:m_xi]
    u = np.empty(m_xi)
    for a in range(m_xi):
        xi[a] = 0.0
    for _ in range(J):
        for r in range(R):
            if xi_mode == 1:
                for a in range(m_xi):
                    xi[a] = rng.standard_normal() * xi_f[a, 0]
            elif xi_mode == 2:
                for a in range(m_xi):
                    u[a] = rng.standard_normal()
                for a in range(m_xi):
                    acc = 0.0
                    for b in range(m_xi):
                        acc += u[b] * xi_f[a, b]
                    xi[a] = acc
            for a in range(d):
                G1[r, a] += ge1[r, a] + xi[a]
            for e in range(n):
                G2[r, e] += ge2[r, e] + xi[d + e]
    for r in range(R):
        for a in range(d):
            G1[r, a] = G1[r, a] / J
        for e in range(n):
            G2[r, e] = G2[r, e] / J

    # ---- Step 3: LS from v_0 = 0, step index restarted, one (R, d*d) block per step
    v = np.zeros((R, d))
    for i in range(k):
        h = eta[i]
        fresh = reuse == 0 or (reuse == 1 and i % 2 == 0)
        for r in range(R):
            if hasZ:
                if fresh:
                    for a in range(dd):
                        buf[a] = sZ * rng.standard_normal()
                    if reuse == 1:
                        for a in range(dd):
                            zpair[r, a] = buf[a]
                elif reuse == 1:  # WRONG on purpose (negative control)
                    for a in range(dd):
                        buf[a] = zpair[r, a]
                else:  # reuse == 2, WRONG on purpose (negative control)
                    for a in range(dd):
                        buf[a] = zll[i % t, r, a]
            for b in range(d):
                acc = 0.0
                for a in range(d):
                    acc += v[r, a] * A[a, b]
                tmp[b] = acc  # A^T v
            if hasZ:
                for b in range(d):
                    tmp2[b] = 0.0
                for a in range(d):
                    va = v[r, a]
                    for b in range(d):
                        tmp2[b] += buf[a * d + b] * va
                for b in range(d):
                    tmp[b] = tmp[b] + tmp2[b]  # A^T v + Z^T v
            for b in range(d):
                v[r, b] = (1.0 - h) * v[r, b] + h * (tmp[b] + G1[r, b])

    # ---- Step 4: g = G2 + (1/J) sum_j (B + Y_j)^T v_k, one (R, d*n) block per j.
    # B^T v_k is the same for every j: computed once per replica.
    bv = np.empty((R, n))
    for r in range(R):
        for e in range(n):
            acc = 0.0
            for a in range(d):
                acc += v[r, a] * B[a, e]
            bv[r, e] = acc
    accY = np.zeros((R, n))
    for _ in range(J):
        for r in range(R):
            if hasY:
                for a in range(mY):
                    buf[a] = sY * rng.standard_normal()
                for e in range(n):
                    acc = 0.0
                    for a in range(d):
                        acc += buf[a * n + e] * v[r, a]
                    accY[r, e] += bv[r, e] + acc  # B^T v + Y^T v
            else:
                for e in range(n):
                    accY[r, e] += bv[r, e]
    for r in range(R):
        for e in range(n):
            out[r, e] = G2[r, e] + accY[r, e] / J


#: every argument is built with a fixed type (C-contiguous float64 arrays, Python ints and
#: floats) by prepare_sid_inputs and contraction_record, so the overload is resolved once
_SID_KERNEL = FixedTypeKernel(_sid_kernel)


def _run(oracle, lam, t, k, J, steps, w0, replicas, reuse) -> Estimate:
    inp = prepare_sid_inputs(oracle, lam, t, k, J, steps, w0, replicas)
    if reuse == "ll" and inp.k > 0 and inp.t == 0:
        raise ValueError("reuse='ll' needs t >= 1 (the LS reuses the LL samples)")
    out = np.empty((inp.R, oracle.n))
    _SID_KERNEL(oracle.rng, contraction_record(oracle),
                SidRun(inp.lam, inp.w0, inp.t, inp.k, inp.J, inp.eta, _REUSE_CODE[reuse]), out)
    ls_draws = inp.k if reuse is None else (inp.k - inp.k // 2 if reuse == "pairs" else 0)
    # per replica: t + k + J ζ samples and J ξ samples (docs/sid_bsgm.rst §4.2), as sid_counts says
    made = ContractionCounts(zeta=inp.t + ls_draws + inp.J, xi=inp.J, phi=inp.t,
                             vjp_w=inp.k, vjp_lam=inp.J, grad_E=inp.J)
    oracle.counts.add_counts(made)
    return Estimate(value=out[0] if inp.squeeze else out, counts=made)


@register("estimator", "sid", "numba")
def sid_numba(oracle: ContractionOracle, lam: Any, t: int, k: int, J: int, *, steps: Any,
              w0: Any = None, replicas: int | None = None) -> Estimate:
    """SID, Numba backend (SID Alg. 1; docs/sid_bsgm.rst §4.2). Same signature, result and
    random-number consumption as :func:`refbilevel.estimators.sid.sid`."""
    return _run(oracle, lam, t, k, J, steps, w0, replicas, None)


@register("estimator", "sid_control_reuse", "numba")
def sid_control_reuse_numba(oracle: ContractionOracle, lam: Any, t: int, k: int, J: int, *,
                            steps: Any, w0: Any = None, replicas: int | None = None,
                            reuse: str = "pairs") -> Estimate:
    """NEGATIVE CONTROL (deliberately wrong), Numba backend of
    :func:`refbilevel.estimators.sid.sid_control_reuse`."""
    if reuse not in REUSE_MODES:
        raise ValueError(f"reuse must be one of {', '.join(REUSE_MODES)}; got {reuse!r}")
    return _run(oracle, lam, t, k, J, steps, w0, replicas, reuse)
