"""Numba plumbing shared by the baseline kernels (soba_numba.py, stocbio_numba.py,
amigo_numba.py, saba_numba.py, ...; docs/baselines.rst §0; docs/design.rst §Backends).

Not an algorithm: the leading underscore keeps it out of the auto-import of
``refbilevel/algorithms/__init__.py``.

One kernel per algorithm serves two oracles, selected at compile time by the type of the
problem record P:

- a :class:`~refbilevel.oracles.gaussian.GaussianOracle` over a problem that has a family in
  :mod:`refbilevel.backends.numba_problems` (P is that family's record): per oracle call one C-order
  ``standard_normal((R, dim))`` block (nothing for std 0), exactly as GaussianOracle draws
  it, then the primitive and ``exact + std * z`` replica by replica. On the same Generator the
  kernels reproduce the NumPy reference to rounding (claim X4);
- a :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle` over a FiniteSumQuadratic (P is
  a :class:`FiniteSumRecord`, its levels :class:`FiniteSumLevel`), either sampler: per fresh
  minibatch the oracle's draw (``"uniform"``: one ``rng.integers(0, n, (R, B))``;
  ``"shuffled"``: the next contiguous batch of each replica's pass, a new pass drawn as
  ``FiniteSumOracle`` draws it, the pass state taken from and handed back to the oracle),
  then the per-sample factor arithmetic of ``SampleQuadratics`` (mean over the batch of
  rank-one products, O(B d) per call). The sums run in a different order than NumPy's BLAS,
  so agreement is to rounding accumulated over the run, not bit-for-bit.

Kernels take records, not long argument lists: P, the noise stds (:class:`OracleNoise`), the
run length (:class:`RunLength`) and one steps record per algorithm (e.g.
``soba_numba.SobaSteps``).

Replicas on every core. A kernel's iteration has two phases. First it draws all of the
iteration's random numbers for all R replicas, serially and in the reference's order (the
minibatches or noise blocks of every oracle call, HIA's lengths p): :func:`draw_idx`,
:func:`draw_noise`, :func:`draw_calls`, :func:`draw_outer`. The random numbers never depend on
the iterates (a frozen replica's numbers are still drawn), so drawing them ahead changes
nothing. Then ONE ``prange`` region over replicas runs each replica's whole iteration, its
oracle arithmetic (:func:`oracle_row`, one replica's row of one call) fused with its update
(e.g. ``stocbio_numba.stocbio_row``). Each kernel has a serial and a parallel variant
(:func:`~refbilevel.backends.numba_problems.jit_pair`), the parallel one chosen in Python
when the iteration has enough work (:func:`use_threads`: ``PARALLEL_MIN_ROWS`` and
``PARALLEL_MIN_ENTRIES``), so a process compiles only the variant it runs. Random numbers
are therefore bit-identical to the serial kernels and to NumPy; the speed-up is bounded by
the share of time spent drawing (``refbilevel bench algorithms`` prints it). A kernel's
draws record is built by an inlined function (``inline="always"``, e.g. ``stocbio_draws``,
or SOBA's buffers ``soba_draw_buffers``, refilled each iteration by :func:`draw_noise_into`
and :func:`draw_idx_into`): the parallel region takes the draws record by its fields and
rebuilds it by the record class, which Numba's parfor lowering finds only when the record
is built in the kernel's own code. The
whole-batch calls :func:`call_grad_y_g` etc. (one region per oracle call) remain for kernels
that are not fused.

Divergence follows :class:`~refbilevel.algorithms.trace.TraceRecorder` as the NumPy
reference uses it: a replica whose iterate t (t = 1..T) is non-finite gets
``diverged_at = t``, keeps its last finite state and is NaN in the records from t on; its
random numbers are still drawn (the whole (R, dim) block), so the others are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numba.core import types
from numba.extending import overload

from refbilevel.algorithms.trace import Trace, build_trace
from refbilevel.backends.numba_jit import njit, prange
from refbilevel.backends.numba_problems import (
    add_noise,
    draw_block,
    grad_x_f,
    grad_x_g,
    grad_y_f,
    grad_y_g,
    hvp,
    jit_pair,
    jvp,
)
from refbilevel.backends.numba_rows import borrowed_subrow as subrow
from refbilevel.backends.registry import NotImplementedOnBackendError

_JIT = {"cache": True, "error_model": "numpy"}


# ---- finite-sum primitives: the arithmetic of SampleQuadratics for one replica ---------------
# Each primitive sums per-sample terms s_b a_{i_b} (s_b = <a'_{i_b}, v>) over the minibatch.
# The sums are written in sample blocks of _BLOCK: the block's _BLOCK dot products first (as
# independent accumulators, so the CPU overlaps their additions instead of waiting on one
# chain), then the block's terms added in sample order. Every dot product and every entry of
# a sum still accumulates in the same order, one rounding per operation, so the results are
# bit for bit those of the one-sample-at-a-time loop (tests/test_finite_sum_kernels.py).
# Measured on the full batch of the default finite sum (n = 1024, d = 100), CPU time on a
# loaded 2-core machine: PZOBO's row call 183 -> 89 us (with fs_grad_y_shared), a UniBiO
# iteration 45 -> 23 ms.
_BLOCK = 8


@njit(**_JIT)
def _dot(A, i, v):
    acc = 0.0
    for j in range(v.shape[0]):
        acc += A[i, j] * v[j]
    return acc


@njit(**_JIT)
def _dots8(A, idx, b0, v, c):
    i0, i1, i2, i3 = idx[b0], idx[b0 + 1], idx[b0 + 2], idx[b0 + 3]
    i4, i5, i6, i7 = idx[b0 + 4], idx[b0 + 5], idx[b0 + 6], idx[b0 + 7]
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for j in range(v.shape[0]):
        vj = v[j]
        a0 += A[i0, j] * vj
        a1 += A[i1, j] * vj
        a2 += A[i2, j] * vj
        a3 += A[i3, j] * vj
        a4 += A[i4, j] * vj
        a5 += A[i5, j] * vj
        a6 += A[i6, j] * vj
        a7 += A[i7, j] * vj
    c[0], c[1], c[2], c[3] = a0, a1, a2, a3
    c[4], c[5], c[6], c[7] = a4, a5, a6, a7


@njit(**_JIT)
def _block_dots(A, idx, b0, v, c):
    """c[s] = <A[idx[b0 + s]], v> for the block's samples s (at most _BLOCK); returns their
    count. Each product sums over j in order, as :func:`_dot`."""
    nblk = min(_BLOCK, idx.shape[0] - b0)
    if nblk == _BLOCK:
        _dots8(A, idx, b0, v, c)
    else:
        for s in range(nblk):
            c[s] = _dot(A, idx[b0 + s], v)
    return nblk


@njit(**_JIT)
def _fs_affine_mean(A, u, B_in, w, B_out, lin, idx, add_reg, reg, out):
    """out = mean_b [<A_b, u> A_b + <B_in_b, w> B_out_b + lin_b] (+ reg u when ``add_reg``)
    over the minibatch idx: the blocked sums that ∇_y and ∇_x of SampleQuadratics share,
    each accumulated in sample order."""
    nb = idx.shape[0]
    d = out.shape[0]
    t1 = np.zeros(d)
    t2 = np.zeros(d)
    t3 = np.zeros(d)
    c1 = np.empty(_BLOCK)
    c2 = np.empty(_BLOCK)
    for b0 in range(0, nb, _BLOCK):
        nblk = _block_dots(A, idx, b0, u, c1)
        _block_dots(B_in, idx, b0, w, c2)
        for s in range(nblk):
            i = idx[b0 + s]
            a1, a2 = c1[s], c2[s]
            for j in range(d):
                t1[j] += a1 * A[i, j]
                t2[j] += a2 * B_out[i, j]
                t3[j] += lin[i, j]
    for j in range(d):
        mean = (t1[j] / nb + t2[j] / nb) + t3[j] / nb
        out[j] = mean + reg * u[j] if add_reg else mean


@njit(**_JIT)
def fs_grad_y(L, reg, idx, x, y, out):
    """mean_b [A_b y + C_bᵀx + a_b] + reg y (SampleQuadratics.grad_y), L a
    :class:`FiniteSumLevel`."""
    _fs_affine_mean(L.Pyy, y, L.Cx, x, L.Cy, L.ly, idx, True, reg, out)


class FixedXSums(NamedTuple):
    """The y-independent sums of ∇_y G for rows on one minibatch, kept while x and the
    minibatch repeat (:func:`fs_grad_y_shared`): ``T2`` (M, d_y) = Σ_b <Cx_b, x_m> Cy_b,
    ``t3`` (d_y,) = Σ_b ly_b (each in sample order), ``idx`` (B,) the minibatch they were
    summed over, ``valid`` (1,) whether they hold for the current x. Allocated for R
    replicas at once (each field with a leading R axis, :func:`fixed_x_sums`); one
    replica's views by :func:`replica_sums`."""

    T2: np.ndarray
    t3: np.ndarray
    idx: np.ndarray
    valid: np.ndarray


def fixed_x_sums(R: int, M: int, d_y: int, batch: int) -> FixedXSums:
    """Empty (invalid) :class:`FixedXSums` of M rows for each of R replicas."""
    return FixedXSums(np.zeros((R, M, d_y)), np.zeros((R, d_y)),
                      np.zeros((R, batch), dtype=np.int64), np.zeros(R, dtype=np.bool_))


@njit(**_JIT)
def replica_sums(S, r):
    """Replica r's :class:`FixedXSums` (views into the R-replica record S)."""
    return FixedXSums(S.T2[r], S.t3[r], S.idx[r], S.valid[r:r + 1])


@njit(**_JIT)
def _same_minibatch(a, b):
    if a.shape[0] != b.shape[0]:
        return False
    for i in range(a.shape[0]):
        if a[i] != b[i]:
            return False
    return True


@njit(**_JIT)
def _fixed_x_sums(L, idx, X, S):
    Cx, Cy, ly = L.Cx, L.Cy, L.ly
    nb = idx.shape[0]
    M, d = S.T2.shape
    S.T2[:] = 0.0
    S.t3[:] = 0.0
    c2 = np.empty((M, _BLOCK))
    for b0 in range(0, nb, _BLOCK):
        nblk = min(_BLOCK, nb - b0)
        for m in range(M):  # every row: the rows' activity may change while S is kept
            _block_dots(Cx, idx, b0, X[m], c2[m])
        for s in range(nblk):
            i = idx[b0 + s]
            for m in range(M):
                a2 = c2[m, s]
                for j in range(d):
                    S.T2[m, j] += a2 * Cy[i, j]
            for j in range(d):
                S.t3[j] += ly[i, j]
    S.idx[:] = idx
    S.valid[0] = True


@njit(**_JIT)
def fs_grad_y_shared(L, reg, idx, X, Y, OUT, act, S):
    """OUT[m] = :func:`fs_grad_y` at (X[m], Y[m]) for every active row m, all rows on the
    one minibatch idx (e.g. PZOBO's main and perturbed paths, which share each step's
    sample): each block of samples is read once for all rows. The y-independent sums
    (C̄ᵀx and ā over the minibatch) are kept in S (:class:`FixedXSums`) and reused while
    the caller keeps X fixed (it sets ``S.valid[0] = False`` when X changes) and the
    minibatch repeats (always for the full batch): PZOBO's N steps of a path at one x.
    Bit for bit the per-row results of :func:`fs_grad_y` (every sum accumulates in the same
    order; a reused sum is the same number)."""
    if not (S.valid[0] and _same_minibatch(S.idx, idx)):
        _fixed_x_sums(L, idx, X, S)
    Pyy = L.Pyy
    nb = idx.shape[0]
    M, d = OUT.shape
    T1 = np.zeros((M, d))
    c1 = np.empty((M, _BLOCK))
    for b0 in range(0, nb, _BLOCK):
        nblk = min(_BLOCK, nb - b0)
        for m in range(M):
            if act[m]:
                _block_dots(Pyy, idx, b0, Y[m], c1[m])
        for s in range(nblk):
            i = idx[b0 + s]
            for m in range(M):
                if act[m]:
                    a1 = c1[m, s]
                    for j in range(d):
                        T1[m, j] += a1 * Pyy[i, j]
    T2, t3 = S.T2, S.t3
    for m in range(M):
        if act[m]:
            for j in range(d):
                OUT[m, j] = ((T1[m, j] / nb + T2[m, j] / nb) + t3[j] / nb) + reg * Y[m, j]


@njit(**_JIT)
def fs_grad_x(L, idx, x, y, out):
    """mean_b [B_b x + C_b y + b_b] (SampleQuadratics.grad_x)."""
    _fs_affine_mean(L.Pxx, x, L.Cy, y, L.Cx, L.lx, idx, False, 0.0, out)


@njit(**_JIT)
def fs_hvp(L, reg, idx, v, out):
    """mean_b A_b v + reg v (SampleQuadratics.hvp_yy)."""
    Pyy = L.Pyy
    nb = idx.shape[0]
    d = out.shape[0]
    t1 = np.zeros(d)
    c = np.empty(_BLOCK)
    for b0 in range(0, nb, _BLOCK):
        nblk = _block_dots(Pyy, idx, b0, v, c)
        for s in range(nblk):
            i = idx[b0 + s]
            a = c[s]
            for j in range(d):
                t1[j] += a * Pyy[i, j]
    for j in range(d):
        out[j] = t1[j] / nb + reg * v[j]


@njit(**_JIT)
def fs_jvp(L, idx, v, out):
    """mean_b C_b v ∈ R^{d_x} (SampleQuadratics.jvp_xy)."""
    Cx, Cy = L.Cx, L.Cy
    nb = idx.shape[0]
    d = out.shape[0]
    t1 = np.zeros(d)
    c = np.empty(_BLOCK)
    for b0 in range(0, nb, _BLOCK):
        nblk = _block_dots(Cy, idx, b0, v, c)
        for s in range(nblk):
            i = idx[b0 + s]
            a = c[s]
            for j in range(d):
                t1[j] += a * Cx[i, j]
    for j in range(d):
        out[j] = t1[j] / nb


# ---- the records a kernel receives ------------------------------------------------------------
class FiniteSumLevel(NamedTuple):
    """One level's per-sample factors (the arrays of SampleQuadratics, read-only)."""

    Pyy: np.ndarray
    Pxx: np.ndarray
    Cx: np.ndarray
    Cy: np.ndarray
    ly: np.ndarray
    lx: np.ndarray


class FiniteSumRecord(NamedTuple):
    """A FiniteSumOracle over a FiniteSumQuadratic as a kernel sees it: the two levels'
    factors (those of :class:`FiniteSumLevel`, prefixed ``inner_``/``outer_``; read them as
    levels with :func:`inner_level`/:func:`outer_level`), the sample counts and batch size,
    and the sampler. ``perm_inner``/``perm_outer`` (R, n_units) and ``pos`` (2,) are the
    shuffled sampler's pass state per level (written in place).

    Flat, not a record of two level records: a ``prange`` region takes a record argument by
    its fields, one level deep (Numba's parfor lowering), so a record nested in P could not
    enter the one region per iteration of the fused kernels."""

    inner_Pyy: np.ndarray
    inner_Pxx: np.ndarray
    inner_Cx: np.ndarray
    inner_Cy: np.ndarray
    inner_ly: np.ndarray
    inner_lx: np.ndarray
    outer_Pyy: np.ndarray
    outer_Pxx: np.ndarray
    outer_Cx: np.ndarray
    outer_Cy: np.ndarray
    outer_ly: np.ndarray
    outer_lx: np.ndarray
    reg: float
    n_inner: int
    n_outer: int
    batch_size: int
    shuffled: bool
    perm_inner: np.ndarray
    perm_outer: np.ndarray
    pos: np.ndarray


@njit(**_JIT)
def inner_level(P):
    """The inner level of the FiniteSumRecord P as a :class:`FiniteSumLevel` (no copies)."""
    return FiniteSumLevel(P.inner_Pyy, P.inner_Pxx, P.inner_Cx, P.inner_Cy, P.inner_ly,
                          P.inner_lx)


@njit(**_JIT)
def outer_level(P):
    """The outer level of the FiniteSumRecord P as a :class:`FiniteSumLevel`."""
    return FiniteSumLevel(P.outer_Pyy, P.outer_Pxx, P.outer_Cx, P.outer_Cy, P.outer_ly,
                          P.outer_lx)


class OracleNoise(NamedTuple):
    """The Gaussian oracle's noise std per oracle kind (all 0 for a finite-sum oracle)."""

    grad_y_g: float
    hvp: float
    jvp: float
    grad_y_f: float
    grad_x_f: float
    grad_x_g: float


class RunLength(NamedTuple):
    """T iterations, recording every ``every``-th (and the last)."""

    T: int
    every: int


# ---- oracle calls for all replicas (one noise block or one minibatch per call) ---------------
#: an oracle call runs its rows on all threads (prange) from PARALLEL_MIN_ROWS replicas and
#: PARALLEL_MIN_ENTRIES entries of work (R times the row's d, times B for a minibatch): the
#: entries threshold of estimators/_common.parallel_worth_it, measured there; below it a
#: parallel region's launch costs more than its rows
PARALLEL_MIN_ROWS = 16
PARALLEL_MIN_ENTRIES = 32768

# Oracle kinds: runtime integers, so that one compiled body serves all six.
GRAD_Y_G, GRAD_X_G, GRAD_Y_F, GRAD_X_F, HVP, JVP = range(6)
_GRAD_Y_G, _GRAD_X_G, _GRAD_Y_F, _GRAD_X_F, _HVP, _JVP = (GRAD_Y_G, GRAD_X_G, GRAD_Y_F, GRAD_X_F,
                                                        HVP, JVP)


def _finite_sum_rows(kind, L, reg, idx, X, Y, V, OUT, act):
    """The finite-sum arithmetic of level L for every active row (prange over replicas)."""
    for r in prange(X.shape[0]):
        if not act[r]:
            continue
        if kind == _GRAD_Y_G or kind == _GRAD_Y_F:
            fs_grad_y(L, reg, idx[r], X[r], Y[r], OUT[r])
        elif kind == _GRAD_X_G or kind == _GRAD_X_F:
            fs_grad_x(L, idx[r], X[r], Y[r], OUT[r])
        elif kind == _HVP:
            fs_hvp(L, reg, idx[r], V[r], OUT[r])
        else:
            fs_jvp(L, idx[r], V[r], OUT[r])


def _closed_form_rows(kind, P, std, Z, X, Y, V, OUT, act):
    """The family's primitive plus std times its row of Z for every active row (prange)."""
    for r in prange(X.shape[0]):
        if not act[r]:
            continue
        if kind == _GRAD_Y_G:
            grad_y_g(P, X[r], Y[r], OUT[r])
        elif kind == _GRAD_X_G:
            grad_x_g(P, X[r], Y[r], OUT[r])
        elif kind == _GRAD_Y_F:
            grad_y_f(P, X[r], Y[r], OUT[r])
        elif kind == _GRAD_X_F:
            grad_x_f(P, X[r], Y[r], OUT[r])
        elif kind == _HVP:
            hvp(P, X[r], Y[r], V[r], OUT[r])
        else:
            jvp(P, X[r], Y[r], V[r], OUT[r])
        add_noise(OUT[r], std, Z[r])


finite_sum_rows, finite_sum_rows_parallel = jit_pair(_finite_sum_rows)
closed_form_rows, closed_form_rows_parallel = jit_pair(_closed_form_rows)


def _call(kind, P, noise, rng, idx, X, Y, V, OUT, act):
    """OUT[r] = the oracle ``kind`` at (X[r], Y[r]) (applied to V[r] for HVP and JVP) for the
    active replicas: the finite-sum arithmetic on minibatch idx[r] when P is a
    :class:`FiniteSumRecord`, or the closed form of P's family plus its row of one (R, dim)
    noise block drawn for all replicas (the draw of GaussianOracle, which happens whether or
    not a replica is active). Chosen by the type of P at compile time; the random numbers
    are drawn first, serially, then the rows run in parallel from PARALLEL_MIN_ROWS."""
    raise NotImplementedError("compiled code only")


@njit(**_JIT)
def _call_finite_sum(kind, P, noise, rng, idx, X, Y, V, OUT, act):
    inner = kind == _GRAD_Y_G or kind == _GRAD_X_G or kind == _HVP or kind == _JVP
    L = inner_level(P) if inner else outer_level(P)
    reg = P.reg if (kind == _GRAD_Y_G or kind == _HVP) else 0.0
    R = X.shape[0]
    if R >= PARALLEL_MIN_ROWS and R * idx.shape[1] * OUT.shape[1] >= PARALLEL_MIN_ENTRIES:
        finite_sum_rows_parallel(kind, L, reg, idx, X, Y, V, OUT, act)
    else:
        finite_sum_rows(kind, L, reg, idx, X, Y, V, OUT, act)


@njit(**_JIT)
def _std(noise, kind):
    if kind == _GRAD_Y_G:
        return noise.grad_y_g
    if kind == _GRAD_X_G:
        return noise.grad_x_g
    if kind == _GRAD_Y_F:
        return noise.grad_y_f
    if kind == _GRAD_X_F:
        return noise.grad_x_f
    if kind == _HVP:
        return noise.hvp
    return noise.jvp


@njit(**_JIT)
def _call_closed_form(kind, P, noise, rng, idx, X, Y, V, OUT, act):
    std = _std(noise, kind)
    Z = draw_block(rng, std, X.shape[0], OUT.shape[1])
    R = X.shape[0]
    if R >= PARALLEL_MIN_ROWS and R * OUT.shape[1] >= PARALLEL_MIN_ENTRIES:
        closed_form_rows_parallel(kind, P, std, Z, X, Y, V, OUT, act)
    else:
        closed_form_rows(kind, P, std, Z, X, Y, V, OUT, act)


def _is_finite_sum_type(P) -> bool:
    return getattr(P, "instance_class", None) is FiniteSumRecord


@overload(_call, jit_options={"error_model": "numpy"})
def _call_by_record(kind, P, noise, rng, idx, X, Y, V, OUT, act):
    impl = _call_finite_sum if _is_finite_sum_type(P) else _call_closed_form

    def call(kind, P, noise, rng, idx, X, Y, V, OUT, act):
        impl(kind, P, noise, rng, idx, X, Y, V, OUT, act)
    return call


def is_finite_sum(P):
    """True (a compile-time constant) when P is a :class:`FiniteSumRecord`."""
    raise NotImplementedError("compiled code only")


@overload(is_finite_sum)
def _is_finite_sum(P):
    value = _is_finite_sum_type(P)

    def impl(P):
        return value
    return impl


def draw_idx(rng, P, outer, R):
    """A fresh minibatch (R, B) of indices of the inner or outer level, drawn as
    FiniteSumOracle.draw draws it ("uniform": one ``rng.integers(0, n, (R, B))``;
    "shuffled": the next contiguous batch of each replica's pass); a dummy for a closed-form
    record (no random numbers)."""
    raise NotImplementedError("compiled code only")


@njit(**_JIT)
def _draw_idx_finite_sum(rng, P, outer, R):
    if P.shuffled:
        return unit_idx(next_units(rng, P, outer, R), P.batch_size)
    n = P.n_outer if outer else P.n_inner
    return rng.integers(0, n, (R, P.batch_size))


@njit(**_JIT)
def _draw_idx_none(rng, P, outer, R):
    return np.zeros((R, 1), dtype=np.int64)


@overload(draw_idx, jit_options={"error_model": "numpy"})
def _draw_idx_by_record(rng, P, outer, R):
    impl = _draw_idx_finite_sum if _is_finite_sum_type(P) else _draw_idx_none

    def call(rng, P, outer, R):
        return impl(rng, P, outer, R)
    return call


@njit(**_JIT)
def next_units(rng, P, outer, R):
    """The next contiguous-batch id of every replica, drawn as ``FiniteSumOracle.draw_batch``
    draws it, for the inner or outer level of the FiniteSumRecord P.

    "uniform": one ``rng.integers(0, n_units, R)`` (Numba's Generator runs NumPy's Lemire
    algorithm on the same bit generator: the same ids). "shuffled": when the pass is used up
    (pos >= n_units) one ``rng.random((R, n_units))`` in C order and a per-row argsort start
    a new pass (written into P's perm array in place); then units = perm[:, pos]. The oracle
    sorts with ``kind="stable"``; mergesort is stable too, and a stable sort's result is
    unique (ties by index), so the permutations are identical whatever the algorithm."""
    perm = P.perm_outer if outer else P.perm_inner
    level = 1 if outer else 0
    n_units = (P.n_outer if outer else P.n_inner) // P.batch_size
    if not P.shuffled:
        return rng.integers(0, n_units, R)
    if P.pos[level] >= n_units:
        vals = rng.random((R, n_units))
        for r in range(R):
            perm[r] = np.argsort(vals[r], kind="mergesort")
        P.pos[level] = 0
    units = np.empty(R, dtype=np.int64)
    for r in range(R):
        units[r] = perm[r, P.pos[level]]
    P.pos[level] += 1
    return units


@njit(**_JIT)
def call_grad_y_g(P, noise, rng, idx, X, Y, OUT, act):
    """OUT[r] = ∇_y G(X[r], Y[r]) ∈ R^{d_y}."""
    _call(_GRAD_Y_G, P, noise, rng, idx, X, Y, Y, OUT, act)


@njit(**_JIT)
def call_grad_x_g(P, noise, rng, idx, X, Y, OUT, act):
    """OUT[r] = ∇_x G(X[r], Y[r]) ∈ R^{d_x} (F2SA)."""
    _call(_GRAD_X_G, P, noise, rng, idx, X, Y, Y, OUT, act)


@njit(**_JIT)
def call_grad_y_f(P, noise, rng, idx, X, Y, OUT, act):
    """OUT[r] = ∇_y F(X[r], Y[r]) on its own sample (idx: an outer minibatch)."""
    _call(_GRAD_Y_F, P, noise, rng, idx, X, Y, Y, OUT, act)


@njit(**_JIT)
def call_grad_x_f(P, noise, rng, idx, X, Y, OUT, act):
    """OUT[r] = ∇_x F(X[r], Y[r]) on its own sample (idx: an outer minibatch)."""
    _call(_GRAD_X_F, P, noise, rng, idx, X, Y, Y, OUT, act)


@njit(**_JIT)
def call_hvp(P, noise, rng, idx, X, Y, V, OUT, act):
    """OUT[r] = ∇²_yy G(X[r], Y[r]) V[r] ∈ R^{d_y}."""
    _call(_HVP, P, noise, rng, idx, X, Y, V, OUT, act)


@njit(**_JIT)
def call_jvp(P, noise, rng, idx, X, Y, V, OUT, act):
    """OUT[r] = ∇²_xy G(X[r], Y[r]) V[r] ∈ R^{d_x}."""
    _call(_JVP, P, noise, rng, idx, X, Y, V, OUT, act)


@njit(**_JIT)
def call_outer(P, noise, rng, X, Y, FY, FX, act):
    """(∇_y F, ∇_x F) on one outer sample (docs/baselines.rst §0.2): one minibatch (finite
    sum) or two noise blocks, ∇_y F first (the reference's order)."""
    idx = draw_idx(rng, P, True, X.shape[0])
    call_grad_y_f(P, noise, rng, idx, X, Y, FY, act)
    call_grad_x_f(P, noise, rng, idx, X, Y, FX, act)


@njit(**_JIT)
def hia_kernel(P, noise, rng, X, Y, V, HV, N, eta, act, p):
    """Ghadimi–Wang's randomized Neumann series in place on V (the reference's
    ``_baselines.hia``): p ~ U{0..N−1} per replica from one ``rng.integers(0, N, R)``, HVP
    step j = 1..max p on a fresh sample for the whole batch, applied where p_r >= j; then
    V ← (N η) V. Writes p; returns the number of HVP steps evaluated."""
    R = X.shape[0]
    dy = V.shape[1]
    pr = rng.integers(0, N, R)
    steps = 0
    for r in range(R):
        p[r] = pr[r]
        if pr[r] > steps:
            steps = pr[r]
    mask = np.empty(R, dtype=np.bool_)
    for j in range(1, steps + 1):
        for r in range(R):
            mask[r] = act[r] and pr[r] >= j
        idx = draw_idx(rng, P, False, R)
        call_hvp(P, noise, rng, idx, X, Y, V, HV, mask)
        for r in range(R):
            if mask[r]:
                for i in range(dy):
                    V[r, i] = V[r, i] - eta * HV[r, i]
    scale = N * eta  # the reference computes N * eta * v left to right
    for r in range(R):
        for i in range(dy):
            V[r, i] = scale * V[r, i]
    return steps


# ---- fused iterations: the iteration's random numbers first, then one region over replicas ----
class Calls(NamedTuple):
    """The random numbers of n oracle calls of one kind for all R replicas, each call on a
    fresh sample, in the order drawn: ``idx`` (n, R, B) minibatch indices (finite sum; zeros
    of shape (n, R, 1) otherwise) and ``z`` (n, R, dim) noise (Gaussian; (n, R, 0) for a
    finite sum, which draws no noise)."""

    idx: np.ndarray
    z: np.ndarray


class OuterSample(NamedTuple):
    """One outer sample for all replicas (:func:`call_outer`): its minibatch ``idx`` (R, B)
    and the noise of ∇_y F (``z_y``, (R, d_y)) then of ∇_x F (``z_x``, (R, d_x)).

    Draw records enter a kernel's region by their fields, so a kernel copies these fields
    into its own flat draws record (see :class:`FiniteSumRecord` on nesting)."""

    idx: np.ndarray
    z_y: np.ndarray
    z_x: np.ndarray


class HiaDraws(NamedTuple):
    """The random numbers of one averaged HIA estimate (:func:`draw_hia`, :func:`hia_row`)
    for all replicas: the chain lengths p (R,) (max over the replica's draws), the weights
    w (R, N) of the chain's terms, and the max p HVP calls (``idx``, ``z`` as in
    :class:`Calls`)."""

    p: np.ndarray
    w: np.ndarray
    idx: np.ndarray
    z: np.ndarray


def draw_noise(rng, P, noise, kind, R, dim):
    """One oracle call's noise block for R replicas, as GaussianOracle draws it: (R, dim)
    standard normals (zeros, no random numbers, for std 0); (R, 0) for a finite-sum record."""
    raise NotImplementedError("compiled code only")


@njit(**_JIT)
def _draw_noise_closed_form(rng, P, noise, kind, R, dim):
    return draw_block(rng, _std(noise, kind), R, dim)


@njit(**_JIT)
def _draw_noise_none(rng, P, noise, kind, R, dim):
    return np.empty((R, 0))


@overload(draw_noise, jit_options={"error_model": "numpy"})
def _draw_noise_by_record(rng, P, noise, kind, R, dim):
    impl = _draw_noise_none if _is_finite_sum_type(P) else _draw_noise_closed_form

    def call(rng, P, noise, kind, R, dim):
        return impl(rng, P, noise, kind, R, dim)
    return call


def draw_noise_into(rng, P, noise, kind, out):
    """:func:`draw_noise` into an existing (R, dim) buffer: the same standard normals in the
    same C order (Numba's and NumPy's ``standard_normal(size)`` both draw one scalar normal
    per entry, so the stream is the block's, bit for bit); nothing is drawn, and ``out`` is
    left as it is, for std 0 (the noise row is then not read) or a finite-sum record.
    A kernel that refills its buffers each iteration saves the block's allocation (SOBA on
    Example 3, d = 1: ~6 ns of ~80 per replica-iteration)."""
    raise NotImplementedError("compiled code only")


@njit(**_JIT)
def _draw_noise_into_closed_form(rng, P, noise, kind, out):
    if _std(noise, kind) != 0.0:
        for r in range(out.shape[0]):
            for i in range(out.shape[1]):
                out[r, i] = rng.standard_normal()


@njit(**_JIT)
def _draw_noise_into_none(rng, P, noise, kind, out):
    pass


@overload(draw_noise_into, jit_options={"error_model": "numpy"})
def _draw_noise_into_by_record(rng, P, noise, kind, out):
    impl = _draw_noise_into_none if _is_finite_sum_type(P) else _draw_noise_into_closed_form

    def call(rng, P, noise, kind, out):
        impl(rng, P, noise, kind, out)
    return call


@njit(**_JIT)
def draw_idx_into(rng, P, outer, out):
    """:func:`draw_idx` into an existing (R, B) buffer (the same draw, then copied: the
    integers' stream is that of the block call, which scalar draws would not reproduce);
    nothing for a closed-form record, whose minibatch is a dummy."""
    if is_finite_sum(P):
        out[:] = draw_idx(rng, P, outer, out.shape[0])


def batch_width(P):
    """Columns of a minibatch index block: the batch size of a finite-sum record, 1 (the
    dummy of :func:`draw_idx`) for a closed-form one."""
    raise NotImplementedError("compiled code only")


@overload(batch_width)
def _batch_width(P):
    if _is_finite_sum_type(P):
        def impl(P):
            return P.batch_size
    else:
        def impl(P):
            return 1
    return impl


@njit(**_JIT)
def empty_calls(P, n, R, dim):
    """A :class:`Calls` buffer for n calls (filled by :func:`draw_call_into`)."""
    zdim = 0 if is_finite_sum(P) else dim
    return Calls(np.zeros((n, R, batch_width(P)), dtype=np.int64), np.zeros((n, R, zdim)))


@njit(**_JIT)
def draw_call_into(rng, P, noise, kind, calls, j):
    """Call j of ``calls``: a fresh sample of kind's level, then the noise of one ``kind``
    call (the order of ``draw_idx`` + ``call_*``; :func:`draw_sample_into`)."""
    draw_sample_into(kind, P, noise, rng, calls.idx[j], calls.z[j])


@njit(**_JIT)
def draw_calls(rng, P, noise, kind, n, R, dim):
    """n calls of one kind, each on a fresh sample of kind's level (e.g. stocBiO's D
    lower-level steps)."""
    calls = empty_calls(P, n, R, dim)
    for j in range(n):
        draw_call_into(rng, P, noise, kind, calls, j)
    return calls


@njit(**_JIT)
def draw_outer(rng, P, noise, R, dx, dy):
    """The random numbers of :func:`call_outer`: one outer minibatch, or the noise of ∇_y F
    then ∇_x F."""
    idx = draw_idx(rng, P, True, R)
    z_y = draw_noise(rng, P, noise, GRAD_Y_F, R, dy)
    z_x = draw_noise(rng, P, noise, GRAD_X_F, R, dx)
    return OuterSample(idx, z_y, z_x)


@njit(**_JIT)
def hia_law(rng, N, n_draws, R):
    """(w, p, steps): each replica's weights w[r, j] = #{b : p_{r,b} = j}/n_draws (R, N),
    its chain length p[r] = max_b p_{r,b} and the largest over the replicas, for n_draws
    lengths p_{r,b} ~ U{0..N−1} drawn as the reference's ``_baselines.hia_draws`` draws them
    (the lengths from one ``rng.integers(0, N, (R, n_draws))`` when n_draws <= N, else
    their counts by conditional binomials, cell j for every replica before cell j + 1)."""
    w = np.zeros((R, N))
    if n_draws <= N:
        pd = rng.integers(0, N, (R, n_draws))
        for r in range(R):
            for b in range(n_draws):
                w[r, pd[r, b]] += 1.0
    else:
        left = np.full(R, n_draws, dtype=np.int64)
        for j in range(N - 1):
            q = 1.0 / (N - j)
            for r in range(R):
                c = rng.binomial(left[r], q)
                w[r, j] = c
                left[r] -= c
        for r in range(R):
            w[r, N - 1] = left[r]
    p = np.zeros(R, dtype=np.int64)
    steps = 0
    for r in range(R):
        for j in range(N):
            if w[r, j] > 0.0:
                p[r] = j
            w[r, j] = w[r, j] / n_draws
        if p[r] > steps:
            steps = p[r]
    return w, p, steps


@njit(**_JIT)
def draw_hia(rng, P, noise, N, n_draws, R, dy):
    """The random numbers of one averaged HIA estimate (the reference's
    ``_baselines.hia``): the lengths' law per replica (:func:`hia_law`), then max over the
    replicas of the chain lengths HVP calls on fresh inner samples."""
    w, p, steps = hia_law(rng, N, n_draws, R)
    calls = draw_calls(rng, P, noise, HVP, steps, R, dy)
    return HiaDraws(p, w, calls.idx, calls.z)


def oracle_row(kind, P, noise, idx, z, x, y, v, out):
    """One replica's row of an oracle call: out = the oracle ``kind`` at (x, y) (applied to v
    for HVP and JVP), all 1-D. Finite sum: the arithmetic of its minibatch ``idx`` (B,);
    closed form: P's primitive plus std times the replica's noise row ``z``. The same
    operations, in the same order, as one row of :func:`call_grad_y_g` etc."""
    raise NotImplementedError("compiled code only")


#: :func:`oracle_row` is inlined where a kernel calls it (Numba IR inlining), one oracle kind
#: per call site (the kernels pass the kind as a constant): a call of a compiled function
#: passes every array of its arguments field by field, and those calls, not the arithmetic,
#: were most of an oracle call at small d. Measured (SOBA, Example 3, d = 1, R = 32, one
#: thread): 765 -> 266 ns per replica-iteration; a hand-written minimal SOBA loop for that
#: problem costs 42 ns. Inlining a kernel's whole row function the same way changed results
#: (13 parity tests failed, e.g. stocBiO x quadratic-dense by 7e-5 relative; with its slice
#: copies made loops, divergence was no longer recorded: Numba 0.68's IR inliner), so rows
#: stay calls; SOBA, whose row makes only five calls, has its row written in the kernel's
#: loop body instead (soba_numba.py).
_ROW = {"error_model": "numpy", "inline": "always"}


# ---- one replica's row of one oracle kind, on a sample drawn beforehand (no noise added) -----
# Chosen by the type of P at compile time: the family's primitive, or the finite-sum
# arithmetic of SampleQuadratics on the replica's minibatch idx (inner level for the
# g-kinds, outer for the f-kinds; the regulariser on ∇_y G and the HVP). :func:`oracle_row`
# adds the Gaussian noise; the kernels that evaluate one sample at several points (BO-REP,
# FdeHBO/FMBO, UniBiO: :mod:`refbilevel.algorithms._sample_rows_numba`) add it themselves.
def row_grad_y_g(P, idx, x, y, out):
    """out = ∇_y G(x, y) on the sample (minibatch idx, or the closed form)."""
    raise NotImplementedError("compiled code only")


@overload(row_grad_y_g, jit_options={"error_model": "numpy"}, inline="always")
def _row_grad_y_g(P, idx, x, y, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, out):
            fs_grad_y(inner_level(P), P.reg, idx, x, y, out)
        return fs

    def closed(P, idx, x, y, out):
        grad_y_g(P, x, y, out)
    return closed


def row_grad_x_g(P, idx, x, y, out):
    """out = ∇_x G(x, y) on the sample."""
    raise NotImplementedError("compiled code only")


@overload(row_grad_x_g, jit_options={"error_model": "numpy"}, inline="always")
def _row_grad_x_g(P, idx, x, y, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, out):
            fs_grad_x(inner_level(P), idx, x, y, out)
        return fs

    def closed(P, idx, x, y, out):
        grad_x_g(P, x, y, out)
    return closed


def row_grad_y_f(P, idx, x, y, out):
    """out = ∇_y F(x, y) on the sample (an outer minibatch)."""
    raise NotImplementedError("compiled code only")


@overload(row_grad_y_f, jit_options={"error_model": "numpy"}, inline="always")
def _row_grad_y_f(P, idx, x, y, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, out):
            fs_grad_y(outer_level(P), 0.0, idx, x, y, out)
        return fs

    def closed(P, idx, x, y, out):
        grad_y_f(P, x, y, out)
    return closed


def row_grad_x_f(P, idx, x, y, out):
    """out = ∇_x F(x, y) on the sample (an outer minibatch)."""
    raise NotImplementedError("compiled code only")


@overload(row_grad_x_f, jit_options={"error_model": "numpy"}, inline="always")
def _row_grad_x_f(P, idx, x, y, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, out):
            fs_grad_x(outer_level(P), idx, x, y, out)
        return fs

    def closed(P, idx, x, y, out):
        grad_x_f(P, x, y, out)
    return closed


def row_hvp(P, idx, x, y, v, out):
    """out = ∇²_yy G(x, y) v on the sample."""
    raise NotImplementedError("compiled code only")


@overload(row_hvp, jit_options={"error_model": "numpy"}, inline="always")
def _row_hvp(P, idx, x, y, v, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, v, out):
            fs_hvp(inner_level(P), P.reg, idx, v, out)
        return fs

    def closed(P, idx, x, y, v, out):
        hvp(P, x, y, v, out)
    return closed


def row_jvp(P, idx, x, y, v, out):
    """out = ∇²_xy G(x, y) v ∈ R^{d_x} on the sample."""
    raise NotImplementedError("compiled code only")


@overload(row_jvp, jit_options={"error_model": "numpy"}, inline="always")
def _row_jvp(P, idx, x, y, v, out):
    if _is_finite_sum_type(P):
        def fs(P, idx, x, y, v, out):
            fs_jvp(inner_level(P), idx, v, out)
        return fs

    def closed(P, idx, x, y, v, out):
        jvp(P, x, y, v, out)
    return closed


_ROWS = {GRAD_Y_G: row_grad_y_g, GRAD_X_G: row_grad_x_g, GRAD_Y_F: row_grad_y_f,
         GRAD_X_F: row_grad_x_f}
_ROWS_APPLIED = {HVP: row_hvp, JVP: row_jvp}  # the ones applied to a vector v


@overload(oracle_row, jit_options={"error_model": "numpy"}, inline="always",
          prefer_literal=True)
def _oracle_row_by_kind(kind, P, noise, idx, z, x, y, v, out):
    if not isinstance(kind, types.IntegerLiteral):
        raise TypeError("oracle_row: pass the oracle kind as a constant (GRAD_Y_G, ..., JVP)")
    k = kind.literal_value
    if k in _ROWS_APPLIED:
        row_v = _ROWS_APPLIED[k]

        def applied(kind, P, noise, idx, z, x, y, v, out):
            row_v(P, idx, x, y, v, out)
            add_noise(out, _std(noise, kind), z)
        return applied
    row = _ROWS[k]

    def at_point(kind, P, noise, idx, z, x, y, v, out):
        row(P, idx, x, y, out)
        add_noise(out, _std(noise, kind), z)
    return at_point


@njit(**_ROW)
def outer_row(P, noise, idx, z_y, z_x, x, y, fy, fx):
    """One replica's (∇_y F, ∇_x F) on its rows of an :class:`OuterSample` (idx, z_y, z_x)."""
    oracle_row(GRAD_Y_F, P, noise, idx, z_y, x, y, y, fy)
    oracle_row(GRAD_X_F, P, noise, idx, z_x, x, y, y, fx)


@njit(**_JIT)
def sgd_steps_row(P, noise, idx, z, r, x, w, g, steps):
    """Replica r's lower-level steps w ← w − steps[j] ∇_y G(x, w), j = 0..n−1, on the
    samples of n calls (``idx``, ``z`` as in :class:`Calls`; :func:`inner_sgd_step` per
    row; g: a workspace row)."""
    for j in range(idx.shape[0]):
        oracle_row(GRAD_Y_G, P, noise, subrow(idx, j, r), subrow(z, j, r), x, w, w, g)
        for i in range(w.shape[0]):
            w[i] = w[i] - steps[j] * g[i]


@njit(**_JIT)
def hia_row(P, noise, p, w, idx, z, r, x, y, v, hv, acc, N, eta):
    """Replica r's averaged HIA (the reference's ``_baselines.hia`` per row): acc = w_0 v,
    then p = the replica's chain length HVP steps v ← v − η H v on the calls (``idx``, ``z``)
    of :class:`HiaDraws`, each followed by acc ← acc + w_j v; finally v ← (N η) acc
    (``w``: the replica's weights (N,); ``acc``: a workspace row)."""
    for i in range(v.shape[0]):
        acc[i] = w[0] * v[i]
    for j in range(p):
        oracle_row(HVP, P, noise, subrow(idx, j, r), subrow(z, j, r), x, y, v, hv)
        wj = w[j + 1]
        for i in range(v.shape[0]):
            v[i] = v[i] - eta * hv[i]
            acc[i] = acc[i] + wj * v[i]
    scale = N * eta  # the reference computes N * eta * acc left to right
    for i in range(v.shape[0]):
        v[i] = scale * acc[i]


@njit(**_JIT)
def unit_idx(units, bsz):
    """(R, B) sample indices of the contiguous batches {u B, ..., u B + B − 1}
    (FiniteSumOracle's Minibatch.idx)."""
    R = units.shape[0]
    idx = np.empty((R, bsz), dtype=np.int64)
    for r in range(R):
        for b in range(bsz):
            idx[r, b] = units[r] * bsz + b
    return idx


@njit(**_JIT)
def all_finite(a):
    for i in range(a.shape[0]):
        if not np.isfinite(a[i]):
            return False
    return True


@njit(**_JIT)
def is_record(t, T, every):
    return t % every == 0 or t == T


@njit(**_JIT)
def n_records(T, every):
    n = 1
    for t in range(1, T + 1):
        if is_record(t, T, every):
            n += 1
    return n


@njit(**_JIT)
def store_record(t, T, every, k, Xr, Yr, X, Y):
    """Store (X, Y) in slot k after step t when t is a recorded step; returns the next slot."""
    if is_record(t, T, every):
        Xr[k] = X
        Yr[k] = Y
        return k + 1
    return k


@njit(**_JIT)
def inner_sgd_step(P, noise, rng, X, W, G, step, act):
    """One lower-level step W ← W − step ∇_y G(X, W) on a fresh inner sample, in place on
    the active replicas (G: workspace)."""
    idx = draw_idx(rng, P, False, X.shape[0])
    call_grad_y_g(P, noise, rng, idx, X, W, G, act)
    for r in range(X.shape[0]):
        if act[r]:
            for i in range(W.shape[1]):
                W[r, i] = W[r, i] - step * G[r, i]


@njit(**_JIT)
def start_records(T, every, X, W):
    """Record buffers of a run: (X records, W records, diverged_at), with record 0 = the
    start (W is y for most methods, z for F2SA) and every replica not diverged (-1)."""
    nrec = n_records(T, every)
    Xr = np.empty((nrec,) + X.shape)
    Wr = np.empty((nrec,) + W.shape)
    Xr[0] = X
    Wr[0] = W
    return Xr, Wr, np.full(X.shape[0], -1, dtype=np.int64)


# ---- Python side: kernel inputs and the trace ------------------------------------------------
def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.flags.writeable:
        a = a.copy()
        a.setflags(write=False)
    return a


def _dummy_level():
    return FiniteSumLevel(*(_readonly(np.zeros((0, 0))) for _ in range(6)))


def _level(q):
    return FiniteSumLevel(*(_readonly(a) for a in (q.Pyy, q.Pxx, q.Cx, q.Cy, q.ly, q.lx)))


@dataclass(frozen=True)
class KernelInputs:
    """What a kernel needs from the oracle: the record P (the problem family's record, or a
    :class:`FiniteSumRecord`) and the noise stds."""

    P: Any
    noise: OracleNoise
    finite_sum: bool


def kernel_inputs(oracle, algorithm: str, R: int, draws: bool = True) -> KernelInputs:
    """The kernel inputs of ``oracle`` for R replicas; NotImplementedOnBackendError saying why
    for an unsupported oracle or problem. Both FiniteSumOracle samplers are reproduced; the
    shuffled one starts from the oracle's pass state (hand it back with
    :func:`store_sampler_state` after the run) and, when the run ``draws``, needs B to divide
    both sample counts (the ValueError the reference raises at its first draw)."""
    from refbilevel.backends.numba_problems import numba_problem
    from refbilevel.oracles.finite_sum import FiniteSumOracle
    from refbilevel.oracles.gaussian import GaussianOracle

    if isinstance(oracle, GaussianOracle):
        nz = oracle.noise
        noise = OracleNoise(*(float(getattr(nz, k)) for k in OracleNoise._fields))
        return KernelInputs(numba_problem(oracle.problem), noise, False)
    if isinstance(oracle, FiniteSumOracle):
        from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic

        prob = oracle.problem
        if type(prob) is not FiniteSumQuadratic:
            raise NotImplementedOnBackendError(
                f"{algorithm} numba kernels know the finite-sum arithmetic of "
                f"FiniteSumQuadratic only, got {type(prob).__name__}")
        shuffled = oracle.sampler == "shuffled"
        if shuffled and draws:
            oracle.require_batches_divide()
            perm_in, pos_in = shuffled_state(oracle, "inner", R)
            perm_out, pos_out = shuffled_state(oracle, "outer", R)
        else:
            perm_in = perm_out = np.zeros((R, 0), dtype=np.int64)
            pos_in = pos_out = 0
        P = FiniteSumRecord._make((*_level(prob.inner), *_level(prob.outer),
                                   float(prob.inner.reg), int(prob.n_inner), int(prob.n_outer),
                                   int(oracle.batch_size), shuffled, perm_in, perm_out,
                                   np.array([pos_in, pos_out])))
        return KernelInputs(P, OracleNoise(0.0, 0.0, 0.0, 0.0, 0.0, 0.0), True)
    raise NotImplementedOnBackendError(
        f"{algorithm} on the numba backend needs a GaussianOracle or a FiniteSumOracle, got "
        f"{type(oracle).__name__}")


def use_threads(k: KernelInputs, R: int, dx: int, dy: int) -> bool:
    """Whether a fused kernel should run its parallel variant (one region per iteration over
    R replicas): from PARALLEL_MIN_ROWS replicas and PARALLEL_MIN_ENTRIES entries of work per
    region, counted as R times SOBA's five oracle outputs per replica (3 d_y + 2 d_x, a lower
    bound for every baseline's iteration) times the batch size for a finite sum. Chosen here,
    in Python, so that a process compiles only the variant it runs (a parallel kernel
    compiles several times slower)."""
    batch = k.P.batch_size if k.finite_sum else 1
    return R >= PARALLEL_MIN_ROWS and R * (3 * dy + 2 * dx) * batch >= PARALLEL_MIN_ENTRIES


# The shuffled sampler keeps its pass state in the oracle (``FiniteSumOracle.shuffle_state``,
# keyed by level and batch shape, shared by draw and draw_batch of that level). A kernel starts
# from it and hands it back, so that a NumPy call after a Numba run (or another run on the
# same oracle) continues the same pass, as after a NumPy run.
def shuffled_state(oracle, level: str, R: int) -> tuple[np.ndarray, int]:
    """(perm (R, n_units) int64, pos) of the oracle's current pass for batch shape (R,); a
    used-up marker (pos = n_units) when no pass has started, so the first draw starts one."""
    nu = oracle.n_units(level)
    state = oracle.shuffle_state(level, (R,))
    if state is None:
        return np.zeros((R, nu), dtype=np.int64), nu
    return np.array(state[0], dtype=np.int64, order="C"), int(state[1])


def store_sampler_state(oracle, k: KernelInputs, R: int, drew: bool) -> None:
    """Write the kernel's shuffled-sampler pass state back into the oracle when the kernel
    drew (the reference creates or advances the pass state at each draw)."""
    P = k.P
    if k.finite_sum and P.shuffled and drew:
        oracle.set_shuffle_state("inner", (R,), P.perm_inner, int(P.pos[0]))
        oracle.set_shuffle_state("outer", (R,), P.perm_outer, int(P.pos[1]))


def record_iterations(T: int, record_every: int) -> np.ndarray:
    """The iterations the NumPy reference records: 0, every ``record_every``-th and T."""
    return np.array([0] + [t for t in range(1, T + 1) if t % record_every == 0 or t == T],
                    dtype=np.int64)


def finish_trace(oracle, algorithm: str, params: dict, seed, T: int, record_every: int,
                 X: np.ndarray, Y: np.ndarray, diverged_at: np.ndarray,
                 per_iteration: dict, **extra) -> Trace:
    """The Trace the NumPy reference records (trace.build_trace), from the kernel's stored
    iterates. ``per_iteration[kind]`` is the number of calls of one iteration (an int) or of
    each iteration (an int array of length T, e.g. BSA's realized Neumann lengths); the
    calls the kernel made are added to ``oracle.counts``."""
    its = record_iterations(T, record_every)
    base = oracle.counts.as_dict()
    cum = {}
    for kind, n in per_iteration.items():
        if np.ndim(n) == 0:
            cum[kind] = int(n) * its
        else:
            cum[kind] = np.concatenate([[0], np.cumsum(np.asarray(n, dtype=np.int64))])[its]
    counts = {k: v + cum.get(k, 0 * its) for k, v in base.items()}
    for kind, c in cum.items():
        oracle.counts.add(kind, int(c[-1]))  # its ends at T
    return build_trace(oracle.problem, algorithm, "numba", params, seed, its, X, Y, counts,
                       diverged_at, **extra)


# ---- one sample, several points (the coupled pairs of docs/baselines.rst §11) -----------------
# The ``call_*`` functions above draw their sample inside; a STORM/SARAH correction needs the
# same sample at two points. ``draw_sample`` draws what one such call would draw (a minibatch,
# or a noise block) and ``call_on_sample`` evaluates an oracle kind on it, so a caller draws
# once and evaluates at both points (each evaluation is one call of its kind, the draw one
# sample, as ``oracle.f(..., sample=s)`` counts in the NumPy reference).


@njit(**_JIT)
def draw_sample(kind, P, noise, rng, R, dim):
    """(idx (R, B), Z (R, dim)) of one fresh sample of ``kind`` for R replicas, drawn as the
    oracle's ``draw(kind, (R,))``: a minibatch of kind's level for a :class:`FiniteSumRecord`
    (its noise stds are 0, so Z is zeros and consumes nothing), else one noise block (idx a
    dummy; no random numbers at std 0)."""
    outer = kind == _GRAD_Y_F or kind == _GRAD_X_F
    idx = draw_idx(rng, P, outer, R)
    return idx, draw_block(rng, _std(noise, kind), R, dim)


@njit(**_JIT)
def sample_buffers(P, R, dim):
    """Buffers (idx (R, B), Z (R, dim)) for :func:`draw_sample_into`."""
    return np.zeros((R, batch_width(P)), dtype=np.int64), np.zeros((R, dim))


@njit(**_JIT)
def draw_sample_into(kind, P, noise, rng, idx, Z):
    """:func:`draw_sample` into the buffers of :func:`sample_buffers`: the same random
    numbers (Z is left as it is where draw_sample returns zeros: std 0 or a finite sum, and
    the noise row is then not read)."""
    outer = kind == _GRAD_Y_F or kind == _GRAD_X_F
    draw_idx_into(rng, P, outer, idx)
    draw_noise_into(rng, P, noise, kind, Z)


def call_on_sample(kind, P, noise, idx, Z, X, Y, V, OUT, act):
    """OUT[r] = the oracle ``kind`` at (X[r], Y[r]) (applied to V[r] for HVP and JVP) on the
    sample (idx, Z) of :func:`draw_sample`, for the active replicas; no random numbers."""
    raise NotImplementedError("compiled code only")


@njit(**_JIT)
def _on_sample_finite_sum(kind, P, noise, idx, Z, X, Y, V, OUT, act):
    _call_finite_sum(kind, P, noise, None, idx, X, Y, V, OUT, act)


@njit(**_JIT)
def _on_sample_closed_form(kind, P, noise, idx, Z, X, Y, V, OUT, act):
    std = _std(noise, kind)
    R = X.shape[0]
    if R >= PARALLEL_MIN_ROWS and R * OUT.shape[1] >= PARALLEL_MIN_ENTRIES:
        closed_form_rows_parallel(kind, P, std, Z, X, Y, V, OUT, act)
    else:
        closed_form_rows(kind, P, std, Z, X, Y, V, OUT, act)


@overload(call_on_sample, jit_options={"error_model": "numpy"})
def _call_on_sample_by_record(kind, P, noise, idx, Z, X, Y, V, OUT, act):
    impl = _on_sample_finite_sum if _is_finite_sum_type(P) else _on_sample_closed_form

    def call(kind, P, noise, idx, Z, X, Y, V, OUT, act):
        impl(kind, P, noise, idx, Z, X, Y, V, OUT, act)
    return call
