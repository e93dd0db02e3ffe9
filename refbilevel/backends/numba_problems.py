"""Problems as Numba kernels: the oracle primitives of each closed-form problem, compiled.

Why this module exists. Numba kernels cannot call the Python methods of a
:class:`~refbilevel.problems.base.BilevelProblem`, so every estimator and algorithm kernel
needs the problem's derivatives as compiled functions. This module provides them, for one
replica at a time, with one uniform signature per primitive (docs/design.rst §Backends; the
conventions of problems/base.py: ∇²_xy g is d_x × d_y, H is in the Jacobian convention and
the hypergradient applies H^T, docs/unibio.rst §1.6)::

    grad_x_f(P, x, y, out)      ∇_x f          out ∈ R^{d_x}
    grad_y_f(P, x, y, out)      ∇_y f          out ∈ R^{d_y}
    grad_x_g(P, x, y, out)      ∇_x g          out ∈ R^{d_x}
    grad_y_g(P, x, y, out)      ∇_y g          out ∈ R^{d_y}
    hvp(P, x, y, v, out)        ∇²_yy g v      out ∈ R^{d_y}
    jvp(P, x, y, v, out)        ∇²_xy g v      out ∈ R^{d_x}
    f_u(P, x, y, out)           df/d[y]^{∘(p-1)}            (docs/unibio.rst §1.5)
    gen_hvp(P, x, y, v, out)    H v                          (docs/unibio.rst §1.4)
    gen_hvp_T(P, x, y, v, out)  H^T v                        (docs/unibio.rst §1.6)

x, y, v and out are 1-D float64 arrays (one replica); ``out`` is written in place.

Design: one uniform parameter tuple and an integer problem kind.

    P = (kind, s, vecs, mats)
        kind : int64                       which problem family (the constants KIND_*)
        s    : float64[:]                  scalars (p, rho, flags, ...)
        vecs : UniTuple(float64[:], 6)     vectors (c, h, eigenvalues, ...); unused = size 0
        mats : UniTuple(float64[:, :], 4)  matrices (A, B, orthogonal factors); unused = 0 × 0

Every primitive branches on ``kind``. Because P has the same Numba type for every problem,
each estimator kernel compiles exactly once and is cached on disk (``cache=True``) for all
problems. The two alternatives were measured with Numba 0.68 and rejected: passing the
primitives as dispatcher arguments (one specialization per problem class) and building
kernels in a per-class factory (closures) both work, but neither is ever served from the
on-disk cache (the dispatcher's type is not stable across processes, closures are not
cached), so every process would recompile every kernel for every problem (5–10 s each). The
branch itself costs an integer compare per call. The price of the uniform type is elsewhere
(measured, Numba 0.68, 2-core machine, ∇_y g of the d = 2 separable problem): a call costs
~360 ns against ~100 ns for the same arithmetic compiled for one kind alone, because a
primitive whose other branches use the tuple's matrices is not inlined and every call then
reference-counts the arrays it is passed (splitting the branches into helpers, passing the
tuple's parts or ``inline="always"`` did not remove it). That is noise for vector products
at moderate d, and the reason the hot scalar paths (UniBiO Example 3, U7's Epoch-SGD) have
their own kernels.

The arithmetic mirrors the NumPy methods operation by operation (same formulas, same order
of the element-wise operations, the same factored matrix products in the quadratic problem),
so kernels agree with the reference to rounding (≤ 1e-12 relative, claim X4); only the
summation order inside dot products differs from BLAS. Functions are compiled with
``error_model="numpy"`` so a division by zero gives inf/nan as in NumPy (e.g. the chain-rule
H^T of the non-separable problem at y_i = 0, docs/unibio.rst §1.5) instead of raising.

Kernels loop over replicas with ``prange``; :func:`jit_pair` compiles each kernel twice from
one source, serial (small batches: no thread launch) and parallel (large batches), so a run
compiles only the variant it uses. Per-call costs outside the arithmetic (measured, Numba
0.68): ~25 µs to unbox the NumPy Generator, ~40 µs of input validation in the wrappers;
:func:`numba_problem` caches the packed tuple per problem instance.

Supported problem classes (exact type match; a subclass may change the mathematics):
UniBiOExample3, SeparableUniformlyConvex, NonSeparableUniformlyConvex and
StronglyConvexQuadratic (dense and Householder-structured factors). Adding a class means a
new KIND_* constant, a packer in :func:`numba_problem` and one branch per primitive.

Noise. Kernels draw the oracle noise themselves, exactly as
:class:`~refbilevel.oracles.gaussian.GaussianOracle` does: per oracle call one C-order
``standard_normal((R, dim))`` block for all R replicas, replicas first, and nothing when the
std is 0 (:func:`draw_block`). Numba's Generator support produces the same stream as NumPy
and advances the same Python Generator, so the same calls in the same order give the same
numbers.
"""

from __future__ import annotations

import types
import weakref
from dataclasses import dataclass

import numpy as np

from refbilevel.backends.numba_jit import njit

KIND_EXAMPLE3 = 0
KIND_SEPARABLE = 1
KIND_NONSEPARABLE = 2
KIND_QUADRATIC = 3

_N_VECS = 6
_N_MATS = 4

_JIT = {"cache": True, "error_model": "numpy"}
# Leaf helpers are inlined into the primitives at Numba-IR level: Numba compiles every njit
# function into its own library, so LLVM cannot inline across them, and a call that passes
# arrays costs ~100 ns (measured) - more than a length-10 product. Inlining them costs
# compile time only in the primitives, which are compiled once and cached.
_LEAF = {**_JIT, "inline": "always"}


# ---- element-wise helpers (the formulas of refbilevel/power_map.py) -------------------------
@njit(**_LEAF)
def _jac(yi, p):
    """(p-1)|y|^{p-2}: the diagonal of D(y) (docs/unibio.rst §1.5)."""
    return (p - 1.0) * np.abs(yi) ** (p - 2.0)


@njit(**_LEAF)
def _spow(yi, a):
    """[y]^{a} = sign(y)|y|^a (docs/unibio.rst §1.2)."""
    return np.sign(yi) * np.abs(yi) ** a


@njit(**_LEAF)
def _ex3_fu(yi, p):
    """f_u of Example 3: cos(u) 1{|u| <= pi/2}, u = [y]^{p-1} (docs/unibio.rst §6.1)."""
    u = _spow(yi, p - 1.0)
    if np.abs(u) <= 0.5 * np.pi:
        return np.cos(u)
    return 0.0


# ---- dense / factored linear algebra -------------------------------------------------------
@njit(**_LEAF)
def _matvec(M, v, out):
    """out = M v (= v @ M.T in NumPy)."""
    for i in range(M.shape[0]):
        acc = 0.0
        for j in range(M.shape[1]):
            acc += M[i, j] * v[j]
        out[i] = acc


@njit(**_LEAF)
def _rmatvec(M, v, out):
    """out = M^T v (= v @ M in NumPy)."""
    for j in range(M.shape[1]):
        out[j] = 0.0
    for i in range(M.shape[0]):
        vi = v[i]
        for j in range(M.shape[1]):
            out[j] += M[i, j] * vi


@njit(**_LEAF)
def _basis_apply(householder, Q, v, out):
    """Q v for a dense orthogonal Q or a Householder reflection I - 2uu^T (u = Q[0]).

    Mirrors HouseholderBasis.apply / DenseBasis.apply of problems/quadratic.py.
    """
    if householder:
        u = Q[0]
        dot = 0.0
        for i in range(v.shape[0]):
            dot += v[i] * u[i]
        for i in range(v.shape[0]):
            out[i] = v[i] - 2.0 * dot * u[i]
    else:
        _matvec(Q, v, out)


@njit(**_LEAF)
def _basis_apply_T(householder, Q, v, out):
    if householder:
        _basis_apply(householder, Q, v, out)  # a reflection is symmetric
    else:
        _rmatvec(Q, v, out)


# Householder factors (Q = I - 2uuᵀ) take the allocation-free paths below: two passes over
# the vectors (dot products, then elements), no temporaries. A temporary per product per
# replica made the R = 1000 kernels allocation-bound. Each formula keeps the operation order
# of problems/quadratic.py (t = v - (2 a) u, then eig * t, then w - (2 b) u).
@njit(**_LEAF)
def _hh_sym(u, eig, v, shift, has_shift, out):
    """out = Q diag(eig) Qᵀ (v - shift) for Q = I - 2uuᵀ (shift ignored unless has_shift)."""
    d = v.shape[0]
    a = 0.0
    for i in range(d):
        vi = v[i] - shift[i] if has_shift else v[i]
        a += vi * u[i]
    b = 0.0
    for i in range(d):
        vi = v[i] - shift[i] if has_shift else v[i]
        out[i] = eig[i] * (vi - 2.0 * a * u[i])
        b += out[i] * u[i]
    for i in range(d):
        out[i] = out[i] - 2.0 * b * u[i]


@njit(**_LEAF)
def _hh_rect(uL, sv, uR, x, out, subtract):
    """out = K x (or out -= K x) for K = Q_L pad(sv * (Q_Rᵀ x)[:k]) with Householder Q_L =
    I - 2 uL uLᵀ, Q_R = I - 2 uR uRᵀ; K is (m, n) with m = len(out), n = len(x)."""
    k = sv.shape[0]
    a = 0.0
    for j in range(x.shape[0]):
        a += x[j] * uR[j]
    b = 0.0
    for i in range(k):
        b += (x[i] - 2.0 * a * uR[i]) * sv[i] * uL[i]
    for i in range(out.shape[0]):
        zi = (x[i] - 2.0 * a * uR[i]) * sv[i] if i < k else 0.0
        if subtract:
            out[i] = out[i] - (zi - 2.0 * b * uL[i])
        else:
            out[i] = zi - 2.0 * b * uL[i]


@njit(**_LEAF)
def _sym_matvec(householder, Q, eig, v, out):
    """Q diag(eig) Q^T v (SymmetricSpectral.matvec)."""
    if householder:
        _hh_sym(Q[0], eig, v, v, False, out)
        return
    tmp = np.empty(v.shape[0])
    _basis_apply_T(householder, Q, v, tmp)
    for i in range(tmp.shape[0]):
        tmp[i] = eig[i] * tmp[i]
    _basis_apply(householder, Q, tmp, out)


@njit(**_LEAF)
def _rect_matvec(householder, QL, sv, QR, x, out):
    """K x with K = Q_L diag(sv) Q_R^T of shape (m, n) (RectangularSpectral.matvec)."""
    n = x.shape[0]
    m = out.shape[0]
    k = sv.shape[0]
    if householder:
        _hh_rect(QL[0], sv, QR[0], x, out, False)
        return
    t = np.empty(n)
    _basis_apply_T(householder, QR, x, t)
    z = np.zeros(m)
    for i in range(k):
        z[i] = t[i] * sv[i]
    _basis_apply(householder, QL, z, out)


@njit(**_LEAF)
def _rect_rmatvec(householder, QL, sv, QR, y, out):
    """K^T y (RectangularSpectral.rmatvec): the same with the roles of Q_L, Q_R swapped."""
    m = y.shape[0]
    n = out.shape[0]
    k = sv.shape[0]
    if householder:
        _hh_rect(QR[0], sv, QL[0], y, out, False)
        return
    t = np.empty(m)
    _basis_apply_T(householder, QL, y, t)
    z = np.zeros(n)
    for i in range(k):
        z[i] = t[i] * sv[i]
    _basis_apply(householder, QR, z, out)


# Quadratic layout: s = [rho, householder flag]; vecs = (eig_H, sv_K, eig_F, h, y_ref, r);
# mats = (Q_H, Q_L, Q_R, Q_F) (each the dense Q, or a 1 × d row holding the Householder u).


# ---- the primitives --------------------------------------------------------------------------
@njit(**_JIT)
def grad_x_f(P, x, y, out):
    """∇_x f(x, y) into out (d_x)."""
    kind, s, V, M = P
    if kind == KIND_NONSEPARABLE:
        for i in range(out.shape[0]):
            out[i] = s[1] * x[i]
    elif kind == KIND_QUADRATIC:
        r = V[5]
        for i in range(out.shape[0]):
            out[i] = s[0] * x[i] + r[i]
    else:  # Example 3 and the separable family: f does not depend on x
        for i in range(out.shape[0]):
            out[i] = 0.0


@njit(**_JIT)
def grad_y_f(P, x, y, out):
    """∇_y f(x, y) into out (d_y)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3:
        p = s[0]
        out[0] = _ex3_fu(y[0], p) * _jac(y[0], p)
    elif kind == KIND_SEPARABLE or kind == KIND_NONSEPARABLE:
        p = s[0]
        c = V[0]
        for i in range(out.shape[0]):
            out[i] = c[i] * _jac(y[i], p)
    else:  # quadratic: F (y - y_ref)
        hh = s[1] != 0.0
        y_ref = V[4]
        if hh:
            _hh_sym(M[3][0], V[2], y, y_ref, True, out)
            return
        dy = np.empty(y.shape[0])
        for i in range(y.shape[0]):
            dy[i] = y[i] - y_ref[i]
        _sym_matvec(hh, M[3], V[2], dy, out)


@njit(**_JIT)
def grad_x_g(P, x, y, out):
    """∇_x g(x, y) into out (d_x)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3 or kind == KIND_SEPARABLE:
        for i in range(out.shape[0]):
            out[i] = -y[i] * np.cos(x[i])
    elif kind == KIND_NONSEPARABLE:  # -B y
        _matvec(M[1], y, out)
        for i in range(out.shape[0]):
            out[i] = -out[i]
    else:  # quadratic: -K^T y
        _rect_rmatvec(s[1] != 0.0, M[1], V[1], M[2], y, out)
        for i in range(out.shape[0]):
            out[i] = -out[i]


@njit(**_JIT)
def grad_y_g(P, x, y, out):
    """∇_y g(x, y) into out (d_y)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3 or kind == KIND_SEPARABLE:
        p = s[0]
        for i in range(out.shape[0]):
            out[i] = _spow(y[i], p - 1.0) - np.sin(x[i])
    elif kind == KIND_NONSEPARABLE:  # [y]^{p-1} + A y - B^T x  (A symmetric: y @ A = A y)
        p = s[0]
        d = out.shape[0]
        ya = np.empty(d)
        _rmatvec(M[0], y, ya)
        xb = np.empty(d)
        _rmatvec(M[1], x, xb)
        for i in range(d):
            out[i] = _spow(y[i], p - 1.0) + ya[i] - xb[i]
    else:  # quadratic: H y - K x - h
        hh = s[1] != 0.0
        d = out.shape[0]
        h = V[3]
        if hh:
            _hh_sym(M[0][0], V[0], y, y, False, out)
            _hh_rect(M[1][0], V[1], M[2][0], x, out, True)
            for i in range(d):
                out[i] = out[i] - h[i]
            return
        hy = np.empty(d)
        _sym_matvec(hh, M[0], V[0], y, hy)
        kx = np.empty(d)
        _rect_matvec(hh, M[1], V[1], M[2], x, kx)
        for i in range(d):
            out[i] = hy[i] - kx[i] - h[i]


@njit(**_JIT)
def hvp(P, x, y, v, out):
    """∇²_yy g(x, y) v into out (d_y)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3 or kind == KIND_SEPARABLE:
        p = s[0]
        for i in range(out.shape[0]):
            out[i] = _jac(y[i], p) * v[i]
    elif kind == KIND_NONSEPARABLE:
        p = s[0]
        va = np.empty(out.shape[0])
        _rmatvec(M[0], v, va)
        for i in range(out.shape[0]):
            out[i] = _jac(y[i], p) * v[i] + va[i]
    else:
        _sym_matvec(s[1] != 0.0, M[0], V[0], v, out)


@njit(**_JIT)
def jvp(P, x, y, v, out):
    """∇²_xy g(x, y) v into out (d_x)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3 or kind == KIND_SEPARABLE:
        for i in range(out.shape[0]):
            out[i] = -np.cos(x[i]) * v[i]
    elif kind == KIND_NONSEPARABLE:  # -B v
        _matvec(M[1], v, out)
        for i in range(out.shape[0]):
            out[i] = -out[i]
    else:  # -K^T v
        _rect_rmatvec(s[1] != 0.0, M[1], V[1], M[2], v, out)
        for i in range(out.shape[0]):
            out[i] = -out[i]


@njit(**_JIT)
def f_u(P, x, y, out):
    """f_u = df/d[y]^{∘(p-1)} into out (d_y); analytic limits where they exist."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3:
        out[0] = _ex3_fu(y[0], s[0])
    elif kind == KIND_SEPARABLE or kind == KIND_NONSEPARABLE:
        c = V[0]
        for i in range(out.shape[0]):
            out[i] = c[i]
    else:  # p = 2: f_u = ∇_y f
        grad_y_f(P, x, y, out)


@njit(**_JIT)
def gen_hvp(P, x, y, v, out):
    """H v, H = d∇_y g/d[y]^{∘(p-1)} = ∇²_yy g D(y)^{-1} (docs/unibio.rst §1.4-1.5)."""
    kind, s, V, M = P
    if kind == KIND_EXAMPLE3 or kind == KIND_SEPARABLE:  # H = I exactly
        for i in range(out.shape[0]):
            out[i] = v[i]
    elif kind == KIND_NONSEPARABLE:  # base-class chain rule: hvp(v / D)
        p = s[0]
        w = np.empty(v.shape[0])
        for i in range(v.shape[0]):
            w[i] = v[i] / _jac(y[i], p)
        hvp(P, x, y, w, out)
    else:
        hvp(P, x, y, v, out)


@njit(**_JIT)
def gen_hvp_T(P, x, y, v, out):
    """H^T v = D(y)^{-1} ∇²_yy g v (the vector hypergradient needs H^{-T}, docs/unibio.rst §1.6)."""
    kind, s, V, M = P
    if kind == KIND_NONSEPARABLE:
        p = s[0]
        hvp(P, x, y, v, out)
        for i in range(out.shape[0]):
            out[i] = out[i] / _jac(y[i], p)
    else:  # H symmetric (H = I, or p = 2 with symmetric ∇²g)
        gen_hvp(P, x, y, v, out)


# ---- noise, exactly as GaussianOracle draws it ---------------------------------------------
@njit(cache=True)
def draw_block(rng, std, R, d):
    """One oracle call's standard-normal block for R replicas, shape (R, d), C order.

    std == 0 consumes no random numbers (GaussianOracle.draw returns zeros then); the caller
    skips the addition in that case, as GaussianOracle._noisy does.
    """
    if std == 0.0:
        return np.zeros((R, d))
    return rng.standard_normal((R, d))


def jit_pair(func):
    """(serial, parallel) dispatchers of one kernel source that loops over replicas with
    ``prange``: the serial one runs prange as range (no thread launch: the fast choice for
    small batches), the parallel one distributes the replicas over threads.

    Why two dispatchers and not a runtime flag: Numba compiles a parallel function ~2-3x
    slower, and a kernel only pays for the variant it actually runs. The parallel one is a
    clone with its own ``__qualname__`` so the two never share an on-disk cache entry.
    """
    clone = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_parallel",
                               func.__defaults__, func.__closure__)
    clone.__qualname__ = func.__qualname__ + "_parallel"
    clone.__module__ = func.__module__
    clone.__doc__ = func.__doc__
    return (njit(cache=True, error_model="numpy")(func),
            njit(cache=True, parallel=True, error_model="numpy")(clone))


# ---- packing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class NumbaProblemKernels:
    """The compiled primitives of one problem family (see the module docstring).

    The attributes are the shared dispatchers above; ``kind`` selects the branch. Kernels
    receive the primitives as module globals (cacheable) and the problem as the tuple P.
    """

    kind: int
    family: str
    grad_x_f: object = grad_x_f
    grad_y_f: object = grad_y_f
    grad_x_g: object = grad_x_g
    grad_y_g: object = grad_y_g
    hvp: object = hvp
    jvp: object = jvp
    f_u: object = f_u
    gen_hvp: object = gen_hvp
    gen_hvp_T: object = gen_hvp_T


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float64))


def _pack(kind: int, scalars, vecs=(), mats=()) -> tuple:
    vecs = tuple(_f64(v).reshape(-1) for v in vecs)
    mats = tuple(_f64(m).reshape(np.shape(m)) for m in mats)
    vecs = vecs + tuple(np.zeros(0) for _ in range(_N_VECS - len(vecs)))
    mats = mats + tuple(np.zeros((0, 0)) for _ in range(_N_MATS - len(mats)))
    return (np.int64(kind), _f64(scalars).reshape(-1), vecs, mats)


def _basis_array(basis) -> tuple[np.ndarray, bool]:
    from refbilevel.problems.quadratic import HouseholderBasis

    if isinstance(basis, HouseholderBasis):
        return basis.u.reshape(1, -1), True
    return basis.Q, False


def _pack_quadratic(problem) -> tuple:
    QH, hh = _basis_array(problem.H.basis)
    QL, hl = _basis_array(problem.K.left)
    QR, hr = _basis_array(problem.K.right)
    QF, hf = _basis_array(problem.F.basis)
    if len({hh, hl, hr, hf}) != 1:  # the class builds all factors in one mode
        raise ValueError("numba_problem: mixed dense/Householder factors are not supported")
    return _pack(
        KIND_QUADRATIC, [problem.rho, 1.0 if hh else 0.0],
        vecs=(problem.H.eigenvalues, problem.K.singular_values, problem.F.eigenvalues,
              problem.h, problem.y_ref, problem.r),
        mats=(QH, QL, QR, QF),
    )


_PACKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def numba_problem(problem) -> tuple[NumbaProblemKernels, tuple]:
    """(kernel set, parameter tuple P) of a supported problem (see the module docstring).

    The packed tuple is cached per problem instance (problems are not modified after
    construction; packing costs ~50 µs, as much as a small kernel). Raises
    NotImplementedOnBackendError naming the class for an unsupported problem.
    """
    try:
        out = _PACKED.get(problem)
    except TypeError:  # not weak-referenceable: pack every time
        return _numba_problem(problem)
    if out is None:
        out = _PACKED[problem] = _numba_problem(problem)
    return out


def _numba_problem(problem) -> tuple[NumbaProblemKernels, tuple]:
    from refbilevel.backends.registry import NotImplementedOnBackendError
    from refbilevel.problems.unibio_example3 import UniBiOExample3
    from refbilevel.problems.uniformly_convex import (
        NonSeparableUniformlyConvex,
        SeparableUniformlyConvex,
    )

    cls = type(problem)
    if cls is UniBiOExample3:
        return NumbaProblemKernels(KIND_EXAMPLE3, "example3"), _pack(KIND_EXAMPLE3, [problem.p])
    if cls is SeparableUniformlyConvex:
        return (NumbaProblemKernels(KIND_SEPARABLE, "separable"),
                _pack(KIND_SEPARABLE, [problem.p], vecs=(problem.c,)))
    if cls is NonSeparableUniformlyConvex:
        return (NumbaProblemKernels(KIND_NONSEPARABLE, "nonseparable"),
                _pack(KIND_NONSEPARABLE, [problem.p, problem.rho], vecs=(problem.c,),
                      mats=(problem.A, problem.B)))
    from refbilevel.problems.quadratic import StronglyConvexQuadratic

    if cls is StronglyConvexQuadratic:
        return NumbaProblemKernels(KIND_QUADRATIC, "quadratic"), _pack_quadratic(problem)
    raise NotImplementedOnBackendError(
        f"the numba backend has no kernels for problem class {cls.__name__}; supported: "
        "UniBiOExample3, SeparableUniformlyConvex, NonSeparableUniformlyConvex, "
        "StronglyConvexQuadratic (refbilevel/backends/numba_problems.py)"
    )


def supports(problem) -> bool:
    """True when :func:`numba_problem` has kernels for ``problem``'s class."""
    from refbilevel.backends.registry import NotImplementedOnBackendError

    try:
        numba_problem(problem)
    except NotImplementedOnBackendError:
        return False
    return True
