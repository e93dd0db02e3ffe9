"""The library's problem families on the Numba backend: records, primitives, builders, and
``LIBRARY_FAMILIES``, the one list that registers them (the contract and the recipe for a new
family: :mod:`refbilevel.backends.numba_problems`).

Each primitive mirrors the NumPy method of its problem class operation by operation (same
formulas, same order of the element-wise operations, the same factored products), so kernels
agree with the reference to rounding (claim X4, docs/checks.rst X4).

Every primitive and helper of the O(d) families is ``inline="always"``
(:data:`PRIMITIVE_JIT`): Numba compiles each njit function into its own library, and a call
that is not inlined costs ~50 ns per replica and call (measured on the 2-core development
machine: ~60 ns against ~10 ns per Neumann step at d = 1) - ten times the draw of the normal
the call adds. Inlining costs compile time, once per cache; the dense d x d families do not
pay it (``_DENSE``: their products take microseconds, the call is noise).

Integer powers are products (:func:`_abs_pow`): ``|y|**e`` through ``pow()`` costs ~13 ns per
element, the product < 1 ns, and the library's exponents (p = 3, 4) are small integers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from refbilevel.backends.numba_jit import njit
from refbilevel.backends.numba_problems import JIT, NumbaFamily, readonly

#: the options of every primitive and helper of this module (see the module docstring)
PRIMITIVE_JIT: dict = {**JIT, "inline": "always"}
_LEAF = PRIMITIVE_JIT
#: the primitives of the dense d x d families are not inlined: a call's ~50 ns is < 5 % of
#: their work from d = 30 (two products of ~1 µs), and inlining their unrolled products at
#: every call site of every kernel made the cold compilation several times longer (the
#: Neumann kernel on quadratic-dense: 18 s -> 94 s, measured on the 2-core machine)
_DENSE = JIT


# ---- element-wise helpers (the formulas of refbilevel/power_map.py) -------------------------
@njit(**_LEAF)
def _abs_pow(a, e):
    """a**e for a = |y| >= 0, as products for the exponents 0-3 (p = 2, 3, 4 give them).
    NumPy computes ``|y| ** 2.0`` as a square (bit-identical here) and ``|y| ** 3.0`` with
    pow(), which the two products match to 1 ulp (parity is to 1e-12 relative, claim X4);
    0 ** 0 = 1 as in NumPy."""
    if e == 2.0:
        r = a * a
    elif e == 1.0:
        r = a
    elif e == 3.0:
        r = a * a * a
    elif e == 0.0:
        r = 1.0
    else:
        r = a**e
    return r


@njit(**_LEAF)
def _jac(yi, p):
    """(p-1)|y|^{p-2}: the diagonal of D(y) (docs/unibio.rst §1.5)."""
    return (p - 1.0) * _abs_pow(np.abs(yi), p - 2.0)


@njit(**_LEAF)
def _spow(yi, a):
    """[y]^{a} = sign(y)|y|^a (docs/unibio.rst §1.2)."""
    return np.sign(yi) * _abs_pow(np.abs(yi), a)


@njit(**_LEAF)
def _spow_vec(y, e, out):
    """out[i] = [y_i]^e (:func:`_spow`, the same operations) for every i, with the
    exponent's case chosen once for the vector: with :func:`_abs_pow`'s branches inside
    the loop, the non-separable ∇_y g cost 641 ns per call at d = 30, ~330 of them in this
    loop (one thread)."""
    n = y.shape[0]
    if e == 3.0:
        for i in range(n):
            a = np.abs(y[i])
            out[i] = np.sign(y[i]) * (a * a * a)
    elif e == 2.0:
        for i in range(n):
            a = np.abs(y[i])
            out[i] = np.sign(y[i]) * (a * a)
    else:
        for i in range(n):
            out[i] = _spow(y[i], e)


@njit(**_LEAF)
def _ex3_fu(yi, p):
    """f_u of Example 3: cos(u) 1{|u| <= pi/2}, u = [y]^{p-1} (docs/unibio.rst §6.1)."""
    u = _spow(yi, p - 1.0)
    if np.abs(u) <= 0.5 * np.pi:
        return np.cos(u)
    return 0.0


# ---- dense linear algebra ------------------------------------------------------------------
@njit(**_LEAF)
def _row_dot(M, i, v):
    """Σ_j M[i, j] v[j] with four partial sums: one running sum is bound by the latency of
    the addition (~4 cycles per element), four independent ones let the core overlap them
    (measured 2-3x on d = 100 rows). The order of the sum differs from one running sum, as
    BLAS's does: agreement with NumPy is to rounding either way (claim X4)."""
    n = v.shape[0]
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    j = 0
    while j + 4 <= n:
        a0 += M[i, j] * v[j]
        a1 += M[i, j + 1] * v[j + 1]
        a2 += M[i, j + 2] * v[j + 2]
        a3 += M[i, j + 3] * v[j + 3]
        j += 4
    acc = (a0 + a1) + (a2 + a3)
    while j < n:
        acc += M[i, j] * v[j]
        j += 1
    return acc


@njit(**_LEAF)
def _rmatvec(M, v, out):
    """out = M^T v (= v @ M in NumPy)."""
    for j in range(M.shape[1]):
        out[j] = 0.0
    for i in range(M.shape[0]):
        vi = v[i]
        for j in range(M.shape[1]):
            out[j] += M[i, j] * vi


# ============================================================================================
# UniBiO Example 3 and the separable uniformly convex family (docs/unibio.rst §6.1, §2)
# ============================================================================================
class Example3Record(NamedTuple):
    """UniBiO Example 3 (d = 1): the exponent p."""

    p: float


class SeparableRecord(NamedTuple):
    """SeparableUniformlyConvex: the exponent p and the upper-level weights c."""

    p: float
    c: np.ndarray


@njit(**_LEAF)
def _zero_x(P, x, y, out):
    """∇_x f = 0 (f does not depend on x)."""
    for i in range(out.shape[0]):
        out[i] = 0.0


@njit(**_LEAF)
def _sin_grad_x_g(P, x, y, out):
    """∇_x g = -y cos x."""
    for i in range(out.shape[0]):
        out[i] = -y[i] * np.cos(x[i])


@njit(**_LEAF)
def _sin_grad_y_g(P, x, y, out):
    """∇_y g = [y]^{p-1} - sin x."""
    p = P.p
    for i in range(out.shape[0]):
        out[i] = _spow(y[i], p - 1.0) - np.sin(x[i])


@njit(**_LEAF)
def _sin_hvp(P, x, y, v, out):
    """∇²_yy g v = D(y) v."""
    p = P.p
    for i in range(out.shape[0]):
        out[i] = _jac(y[i], p) * v[i]


@njit(**_LEAF)
def _sin_jvp(P, x, y, v, out):
    """∇²_xy g v = -cos(x) v."""
    for i in range(out.shape[0]):
        out[i] = -np.cos(x[i]) * v[i]


@njit(**_LEAF)
def _identity_gen_hvp(P, x, y, v, out):
    """H = I exactly (docs/unibio.rst §1.5)."""
    for i in range(out.shape[0]):
        out[i] = v[i]


@njit(**_LEAF)
def _ex3_grad_y_f(P, x, y, out):
    out[0] = _ex3_fu(y[0], P.p) * _jac(y[0], P.p)


@njit(**_LEAF)
def _ex3_f_u(P, x, y, out):
    out[0] = _ex3_fu(y[0], P.p)


@njit(**_LEAF)
def _c_grad_y_f(P, x, y, out):
    """∇_y f = c D(y) (f = <c, [y]^{p-1}>)."""
    p = P.p
    c = P.c
    for i in range(out.shape[0]):
        out[i] = c[i] * _jac(y[i], p)


@njit(**_LEAF)
def _c_f_u(P, x, y, out):
    c = P.c
    for i in range(out.shape[0]):
        out[i] = c[i]


def _build_example3(problem) -> Example3Record:
    return Example3Record(p=float(problem.p))


def _build_separable(problem) -> SeparableRecord:
    return SeparableRecord(p=float(problem.p), c=readonly(problem.c))


# ============================================================================================
# The non-separable uniformly convex family (docs/unibio.rst §2)
# ============================================================================================
class NonSeparableRecord(NamedTuple):
    """NonSeparableUniformlyConvex: g = (1/p)||y||_p^p + ½ yᵀA y − xᵀB y, f with weights c
    and the x-regularization rho; ``B_T`` = Bᵀ (C-contiguous: B v streams its rows)."""

    p: float
    rho: float
    c: np.ndarray
    A: np.ndarray
    B: np.ndarray
    B_T: np.ndarray


@njit(**_DENSE)
def _ns_grad_x_f(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = P.rho * x[i]


@njit(**_DENSE)
def _ns_grad_x_g(P, x, y, out):
    """-B y."""
    _rmatvec(P.B_T, y, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_DENSE)
def _ns_jvp(P, x, y, v, out):
    """-B v."""
    _rmatvec(P.B_T, v, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_DENSE)
def _ns_grad_y_g(P, x, y, out):
    """[y]^{p-1} + A y - B^T x (A symmetric: y @ A = A y; [y]^{p-1} computed in out)."""
    d = out.shape[0]
    _spow_vec(y, P.p - 1.0, out)
    ya = np.empty(d)
    _rmatvec(P.A, y, ya)
    xb = np.empty(d)
    _rmatvec(P.B, x, xb)
    for i in range(d):
        out[i] = out[i] + ya[i] - xb[i]


@njit(**_DENSE)
def _ns_hvp(P, x, y, v, out):
    """D(y) v + A v, A v in a temporary: computed in out, it made the Neumann kernel on
    d = 30 slower (407-595 against 283-292 ns per call, four runs each; LLVM knows a fresh
    array does not alias, and vectorizes the product without runtime checks)."""
    p = P.p
    va = np.empty(out.shape[0])
    _rmatvec(P.A, v, va)
    for i in range(out.shape[0]):
        out[i] = _jac(y[i], p) * v[i] + va[i]


@njit(**_DENSE)
def _ns_gen_hvp(P, x, y, v, out):
    """The base-class chain rule: hvp(v / D)."""
    p = P.p
    w = np.empty(v.shape[0])
    for i in range(v.shape[0]):
        w[i] = v[i] / _jac(y[i], p)
    _ns_hvp(P, x, y, w, out)


@njit(**_DENSE)
def _ns_gen_hvp_T(P, x, y, v, out):
    """D(y)^{-1} ∇²_yy g v (inf/nan at y_i = 0 as in NumPy, docs/unibio.rst §1.5)."""
    p = P.p
    _ns_hvp(P, x, y, v, out)
    for i in range(out.shape[0]):
        out[i] = out[i] / _jac(y[i], p)


def _build_nonseparable(problem) -> NonSeparableRecord:
    return NonSeparableRecord(p=float(problem.p), rho=float(problem.rho), c=readonly(problem.c),
                              A=readonly(problem.A), B=readonly(problem.B),
                              B_T=readonly(problem.B.T))


# ============================================================================================
# The strongly convex quadratic (p = 2), dense or Householder-structured factors
# ============================================================================================
class QuadraticDenseRecord(NamedTuple):
    """StronglyConvexQuadratic with dense orthogonal factors: H = Q_H diag(eig_H) Q_Hᵀ,
    K = Q_L diag(sv_K) Q_Rᵀ, F = Q_F diag(eig_F) Q_Fᵀ; each basis also transposed
    (``Q_H_T`` = Q_Hᵀ, C-contiguous), so that every product streams rows (:func:`_rmatvec`:
    Q w = Σ_i (Qᵀ)[i] w_i)."""

    rho: float
    eig_H: np.ndarray
    sv_K: np.ndarray
    eig_F: np.ndarray
    h: np.ndarray
    y_ref: np.ndarray
    r: np.ndarray
    Q_H: np.ndarray
    Q_L: np.ndarray
    Q_R: np.ndarray
    Q_F: np.ndarray
    Q_H_T: np.ndarray
    Q_L_T: np.ndarray
    Q_R_T: np.ndarray
    Q_F_T: np.ndarray


class QuadraticHouseholderRecord(NamedTuple):
    """StronglyConvexQuadratic with Householder factors Q = I - 2uuᵀ, stored as the unit
    vectors u (O(d) arithmetic)."""

    rho: float
    eig_H: np.ndarray
    sv_K: np.ndarray
    eig_F: np.ndarray
    h: np.ndarray
    y_ref: np.ndarray
    r: np.ndarray
    u_H: np.ndarray
    u_L: np.ndarray
    u_R: np.ndarray
    u_F: np.ndarray


@njit(**_LEAF)
def _quad_grad_x_f(P, x, y, out):
    """rho x + r."""
    r = P.r
    for i in range(out.shape[0]):
        out[i] = P.rho * x[i] + r[i]


# -- dense factors: SymmetricSpectral / RectangularSpectral with DenseBasis
@njit(**_LEAF)
def _dense_sym(Q, QT, eig, v, out):
    """Q diag(eig) Qᵀ v (QT = Qᵀ)."""
    tmp = np.empty(v.shape[0])
    _rmatvec(Q, v, tmp)
    for i in range(tmp.shape[0]):
        tmp[i] = eig[i] * tmp[i]
    _rmatvec(QT, tmp, out)


@njit(**_LEAF)
def _dense_rect(QL_T, sv, QR, x, out):
    """Q_L pad(sv (Q_Rᵀ x)[:k]) (RectangularSpectral.matvec; QL_T = Q_Lᵀ)."""
    t = np.empty(x.shape[0])
    _rmatvec(QR, x, t)
    z = np.zeros(out.shape[0])
    for i in range(sv.shape[0]):
        z[i] = t[i] * sv[i]
    _rmatvec(QL_T, z, out)


@njit(**_DENSE)
def _qd_grad_y_f(P, x, y, out):
    """F (y - y_ref)."""
    y_ref = P.y_ref
    dy = np.empty(y.shape[0])
    for i in range(y.shape[0]):
        dy[i] = y[i] - y_ref[i]
    _dense_sym(P.Q_F, P.Q_F_T, P.eig_F, dy, out)


@njit(**_DENSE)
def _qd_grad_x_g(P, x, y, out):
    """-Kᵀ y (RectangularSpectral.rmatvec: roles of Q_L, Q_R swapped)."""
    _dense_rect(P.Q_R_T, P.sv_K, P.Q_L, y, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_DENSE)
def _qd_grad_y_g(P, x, y, out):
    """H y - K x - h (H y computed in out)."""
    d = out.shape[0]
    _dense_sym(P.Q_H, P.Q_H_T, P.eig_H, y, out)
    kx = np.empty(d)
    _dense_rect(P.Q_L_T, P.sv_K, P.Q_R, x, kx)
    h = P.h
    for i in range(d):
        out[i] = out[i] - kx[i] - h[i]


@njit(**_DENSE)
def _qd_hvp(P, x, y, v, out):
    _dense_sym(P.Q_H, P.Q_H_T, P.eig_H, v, out)


@njit(**_DENSE)
def _qd_jvp(P, x, y, v, out):
    """-Kᵀ v."""
    _dense_rect(P.Q_R_T, P.sv_K, P.Q_L, v, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


# -- Householder factors: allocation-free two-pass formulas. A temporary per product per
# replica made the R = 1000 kernels allocation-bound. Each keeps the operation order of
# problems/quadratic.py (t = v - (2 a) u, then eig * t, then w - (2 b) u).
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
def _qh_grad_y_f(P, x, y, out):
    """F (y - y_ref)."""
    _hh_sym(P.u_F, P.eig_F, y, P.y_ref, True, out)


@njit(**_LEAF)
def _qh_grad_x_g(P, x, y, out):
    """-Kᵀ y."""
    _hh_rect(P.u_R, P.sv_K, P.u_L, y, out, False)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_LEAF)
def _qh_grad_y_g(P, x, y, out):
    """H y - K x - h."""
    _hh_sym(P.u_H, P.eig_H, y, y, False, out)
    _hh_rect(P.u_L, P.sv_K, P.u_R, x, out, True)
    h = P.h
    for i in range(out.shape[0]):
        out[i] = out[i] - h[i]


@njit(**_LEAF)
def _qh_hvp(P, x, y, v, out):
    _hh_sym(P.u_H, P.eig_H, v, v, False, out)


@njit(**_LEAF)
def _qh_jvp(P, x, y, v, out):
    """-Kᵀ v."""
    _hh_rect(P.u_R, P.sv_K, P.u_L, v, out, False)
    for i in range(out.shape[0]):
        out[i] = -out[i]


def _householder(problem) -> bool:
    from refbilevel.problems.quadratic import HouseholderBasis

    flags = {isinstance(b, HouseholderBasis)
             for b in (problem.H.basis, problem.K.left, problem.K.right, problem.F.basis)}
    if len(flags) != 1:  # the class builds all factors in one mode
        raise ValueError("numba_problem: mixed dense/Householder factors are not supported")
    return flags.pop()


def _quad_common(problem) -> dict:
    return {"rho": float(problem.rho), "eig_H": readonly(problem.H.eigenvalues),
            "sv_K": readonly(problem.K.singular_values), "eig_F": readonly(problem.F.eigenvalues),
            "h": readonly(problem.h), "y_ref": readonly(problem.y_ref), "r": readonly(problem.r)}


def _build_quadratic_dense(problem) -> QuadraticDenseRecord:
    H, L, R, F = problem.H.basis.Q, problem.K.left.Q, problem.K.right.Q, problem.F.basis.Q
    return QuadraticDenseRecord(**_quad_common(problem), Q_H=readonly(H), Q_L=readonly(L),
                                Q_R=readonly(R), Q_F=readonly(F), Q_H_T=readonly(H.T),
                                Q_L_T=readonly(L.T), Q_R_T=readonly(R.T), Q_F_T=readonly(F.T))


def _build_quadratic_householder(problem) -> QuadraticHouseholderRecord:
    return QuadraticHouseholderRecord(
        **_quad_common(problem), u_H=readonly(problem.H.basis.u), u_L=readonly(problem.K.left.u),
        u_R=readonly(problem.K.right.u), u_F=readonly(problem.F.basis.u))


# ============================================================================================
# BO-REP's test problems P1 and P2 (docs/borep.rst §8; problems/relaxed_smooth.py)
# ============================================================================================
class RelaxedSmoothP1Record(NamedTuple):
    """RelaxedSmoothP1: g = ½ yᵀH y − yᵀ(Cx + c), f = Σ cosh x + aᵀx + c_ψ Σ ψ(y) with
    ψ the pseudo-Huber function (``pseudo_huber``) or sin; ``C_T`` = Cᵀ (C-contiguous: C x
    streams its rows)."""

    pseudo_huber: bool
    c_psi: float
    H: np.ndarray
    C: np.ndarray
    c: np.ndarray
    a: np.ndarray
    C_T: np.ndarray


class RelaxedSmoothP2Record(NamedTuple):
    """RelaxedSmoothP2: g = ½ (y − Bx − b)ᵀH(y − Bx − b), f = ¼||x||⁴ + Σ log cosh(y − t)."""

    H: np.ndarray
    B: np.ndarray
    b: np.ndarray
    t: np.ndarray


@njit(**_LEAF)
def _vecmat(v, M, out):
    """out = v @ M (Σ_j v_j M[j, i], each sum from 0.0 over j in order), rows of M streamed
    into out (vectorized over i)."""
    for i in range(M.shape[1]):
        out[i] = 0.0
    for j in range(M.shape[0]):
        vj = v[j]
        for i in range(M.shape[1]):
            out[i] += vj * M[j, i]


@njit(**_DENSE)
def _vecmat_call(v, M, out):
    """:func:`_vecmat` as a call of its own (for :func:`_vecmat_narrow`)."""
    _vecmat(v, M, out)


@njit(**_LEAF)
def _vecmat_narrow(v, M, out):
    """:func:`_vecmat` for products whose output is usually short (P1's v @ C, d_x entries):
    up to 16 outputs, four columns at a time, each sum kept in a register (the same sums,
    bit for bit; 8 x 5: 11 ns against 41 ns by rows, one thread); more: the row order, as a
    call. Not in :func:`_vecmat` itself: inlined beside the row loops, the column loops
    slowed a Neumann step on P1 (d = 8) from 58 to 93 ns per call, though its HVP took the
    row path."""
    n = M.shape[1]
    if n > 16:
        _vecmat_call(v, M, out)
        return
    i = 0
    while i + 4 <= n:
        a0 = a1 = a2 = a3 = 0.0
        for j in range(M.shape[0]):
            vj = v[j]
            a0 += vj * M[j, i]
            a1 += vj * M[j, i + 1]
            a2 += vj * M[j, i + 2]
            a3 += vj * M[j, i + 3]
        out[i], out[i + 1], out[i + 2], out[i + 3] = a0, a1, a2, a3
        i += 4
    while i < n:
        acc = 0.0
        for j in range(M.shape[0]):
            acc += v[j] * M[j, i]
        out[i] = acc
        i += 1


@njit(**_LEAF)
def _p1_grad_x_f(P, x, y, out):
    """sinh x + a."""
    a = P.a
    for i in range(x.shape[0]):
        out[i] = np.sinh(x[i]) + a[i]


@njit(**_LEAF)
def _p1_grad_y_f(P, x, y, out):
    """c_ψ y/sqrt(1+y²) (pseudo-Huber) or c_ψ cos y (sine)."""
    c_psi = P.c_psi
    if P.pseudo_huber:
        for i in range(y.shape[0]):
            out[i] = c_psi * (y[i] / np.sqrt(1.0 + y[i] * y[i]))
    else:
        for i in range(y.shape[0]):
            out[i] = c_psi * np.cos(y[i])


@njit(**_LEAF)
def _p1_grad_y_g(P, x, y, out):
    """y @ H − x @ Cᵀ − c. The rows of C are short dot products for fewer than 8
    x-coordinates (no temporary); otherwise x @ Cᵀ streams the rows of C_T into a temporary,
    as a row dot is bound by its addition latency (per call, one thread: d_x = d_y = 100
    4446 -> 2782 ns; at d_x = 5, d_y = 8 the temporary would cost 49.6 -> 68.5 ns)."""
    _vecmat(y, P.H, out)
    if P.C.shape[1] < 8:
        _minus_rows_dot(P.C, x, P.c, out)
    else:
        _minus_streamed(P.C_T, x, P.c, out)


@njit(**_LEAF)
def _minus_rows_dot(C, x, c, out):
    """out ← out − C x − c, C x as row dots."""
    for i in range(out.shape[0]):
        out[i] = out[i] - _row_dot(C, i, x) - c[i]


@njit(**_DENSE)
def _minus_streamed(C_T, x, c, out):
    """out ← out − x @ C_T − c, x @ C_T streamed into a temporary (a call, as the dense
    primitives: it runs where the product takes microseconds)."""
    xc = np.empty(out.shape[0])
    _vecmat(x, C_T, xc)
    for i in range(out.shape[0]):
        out[i] = out[i] - xc[i] - c[i]


@njit(**_LEAF)
def _p1_grad_x_g(P, x, y, out):
    """−y @ C."""
    _vecmat_narrow(y, P.C, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_LEAF)
def _rs_hvp(P, x, y, v, out):
    """v @ H."""
    _vecmat(v, P.H, out)


@njit(**_LEAF)
def _p1_jvp(P, x, y, v, out):
    """−v @ C = −(v @ C) exactly (negation is exact in IEEE arithmetic: no temporary)."""
    _vecmat_narrow(v, P.C, out)
    for i in range(out.shape[0]):
        out[i] = -out[i]


@njit(**_LEAF)
def _p2_grad_x_f(P, x, y, out):
    """||x||² x."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    for i in range(x.shape[0]):
        out[i] = s * x[i]


@njit(**_LEAF)
def _p2_grad_y_f(P, x, y, out):
    """tanh(y − t)."""
    t = P.t
    for i in range(y.shape[0]):
        out[i] = np.tanh(y[i] - t[i])


@njit(**_LEAF)
def _p2_grad_y_g(P, x, y, out):
    """(y − Bx − b) @ H, the row (y − Bx − b)_j formed as _vecmat consumes it (the same
    operations in the same order, without a temporary vector)."""
    B = P.B
    b = P.b
    H = P.H
    for i in range(H.shape[1]):
        out[i] = 0.0
    for j in range(y.shape[0]):
        acc = 0.0
        for k in range(x.shape[0]):
            acc += x[k] * B[j, k]
        tj = y[j] - acc - b[j]
        for i in range(H.shape[1]):
            out[i] += tj * H[j, i]


@njit(**_LEAF)
def _neg_vecmat_vecmat(w, H, B, out):
    """out = −(w @ H) @ B without the temporary w @ H: entry i of w @ H is summed over j in
    _vecmat's order, negated and used at once, and each out[k] accumulates over i in
    _vecmat's order, so the result is bit for bit that of the two _vecmat calls with a
    temporary (its allocation made P2's JVP cost 81 ns per call, 33 without, one thread)."""
    for k in range(out.shape[0]):
        out[k] = 0.0
    for i in range(H.shape[1]):
        acc = 0.0
        for j in range(w.shape[0]):
            acc += w[j] * H[j, i]
        ti = -acc
        for k in range(out.shape[0]):
            out[k] += ti * B[i, k]


@njit(**_LEAF)
def _p2_grad_x_g(P, x, y, out):
    """−((y − Bx − b) @ H) @ B."""
    tmp = np.empty(y.shape[0])
    _p2_grad_y_g(P, x, y, tmp)
    for i in range(tmp.shape[0]):
        tmp[i] = -tmp[i]
    _vecmat(tmp, P.B, out)


@njit(**_LEAF)
def _p2_jvp(P, x, y, v, out):
    """−(v @ H) @ B."""
    _neg_vecmat_vecmat(v, P.H, P.B, out)


def _build_p1(problem) -> RelaxedSmoothP1Record:
    return RelaxedSmoothP1Record(pseudo_huber=problem.variant == "pseudo-huber",
                                 c_psi=float(problem.c_psi), H=readonly(problem.H),
                                 C=readonly(problem.C), c=readonly(problem.c),
                                 a=readonly(problem.a), C_T=readonly(problem.C.T))


def _build_p2(problem) -> RelaxedSmoothP2Record:
    return RelaxedSmoothP2Record(H=readonly(problem.H), B=readonly(problem.B),
                                 b=readonly(problem.b), t=readonly(problem.t))


# ============================================================================================
# ClosedFormProblem: a user's problem from callables (problems/custom.py)
# ============================================================================================
class ClosedFormRecord(NamedTuple):
    """A ClosedFormProblem's callables, each compiled with Numba for one replica (1-D x, y, v).
    The fields are Numba dispatchers, so a kernel is compiled for each problem's functions,
    once per process, and never written to the disk cache (numba_jit.LibraryTypesCache)."""

    grad_x_f: Any
    grad_y_f: Any
    grad_x_g: Any
    grad_y_g: Any
    hvp_yy_g: Any
    jvp_xy_g: Any
    f_u: Any
    gen_hvp: Any
    gen_hvp_T: Any


_CLOSED_FORM_REQUIRED = ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp_yy_g", "jvp_xy_g")


def _chain_rule(name: str, fns: dict, p: float):
    """The base-class chain rule of docs/unibio.rst §1.5 for a callable the user left out,
    with the NumPy operations of problems/base.py (D(y) = (p-1)|y|^{p-2})."""
    gyf, hvp_ = fns["grad_y_f"], fns["hvp_yy_g"]
    if name == "f_u":
        def f_u(x, y):
            return gyf(x, y) / ((p - 1.0) * np.abs(y) ** (p - 2.0))
        return f_u
    if name == "gen_hvp":
        def gen_hvp(x, y, v):
            return hvp_(x, y, v / ((p - 1.0) * np.abs(y) ** (p - 2.0)))
        return gen_hvp

    def gen_hvp_T(x, y, v):
        return hvp_(x, y, v) / ((p - 1.0) * np.abs(y) ** (p - 2.0))
    return gen_hvp_T


def _build_closed_form(problem) -> ClosedFormRecord:
    """Compile the problem's callables with Numba, each checked once on sample arguments, so a
    callable Numba cannot compile is refused here, naming it."""
    from refbilevel.backends.registry import NotImplementedOnBackendError

    user = problem._fns
    fns = {}
    for name in _CLOSED_FORM_REQUIRED:
        fns[name] = njit(error_model="numpy")(user[name])
    for name in ("f_u", "gen_hvp", "gen_hvp_T"):
        fn = user[name] if name in user else _chain_rule(name, fns, float(problem.p))
        fns[name] = njit(error_model="numpy")(fn)
    x, y, v = np.zeros(problem.d_x), np.ones(problem.d_y), np.ones(problem.d_y)
    for name, disp in fns.items():
        args = (x, y, v) if name in ("hvp_yy_g", "jvp_xy_g", "gen_hvp", "gen_hvp_T") else (x, y)
        try:
            disp(*args)
        except Exception as exc:  # Numba's typing/lowering errors, or the call's own
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise NotImplementedOnBackendError(
                f"ClosedFormProblem on the numba backend: the callable {name!r} cannot be "
                f"compiled by Numba for one replica (1-D arrays): {first}") from exc
    return ClosedFormRecord(**fns)


@njit(**_LEAF)
def _cf_grad_x_f(P, x, y, out):
    out[:] = P.grad_x_f(x, y)


@njit(**_LEAF)
def _cf_grad_y_f(P, x, y, out):
    out[:] = P.grad_y_f(x, y)


@njit(**_LEAF)
def _cf_grad_x_g(P, x, y, out):
    out[:] = P.grad_x_g(x, y)


@njit(**_LEAF)
def _cf_grad_y_g(P, x, y, out):
    out[:] = P.grad_y_g(x, y)


@njit(**_LEAF)
def _cf_hvp(P, x, y, v, out):
    out[:] = P.hvp_yy_g(x, y, v)


@njit(**_LEAF)
def _cf_jvp(P, x, y, v, out):
    out[:] = P.jvp_xy_g(x, y, v)


@njit(**_LEAF)
def _cf_f_u(P, x, y, out):
    out[:] = P.f_u(x, y)


@njit(**_LEAF)
def _cf_gen_hvp(P, x, y, v, out):
    out[:] = P.gen_hvp(x, y, v)


@njit(**_LEAF)
def _cf_gen_hvp_T(P, x, y, v, out):
    out[:] = P.gen_hvp_T(x, y, v)


# ============================================================================================
# The uniformly convex lower level with a bump (non-symmetric H, docs/unibio.rst §1.6)
# ============================================================================================
class BumpRecord(NamedTuple):
    """UniformlyConvexBump: g = (1/p)||y||_p^p − <x, y> + eps·β([y]^{∘(p-1)}) with the bump
    β(u) = Π b((|u_i| − center)/radius), f = <a, u> + (rho/2)||x||²
    (refbilevel/problems/uniformly_convex_bump.py)."""

    p: float
    rho: float
    eps: float
    center: float
    radius: float
    a: np.ndarray


#: below this e_i = 1 − t_i² the bump is zero to float64 resolution (as the NumPy class)
_BUMP_E_FLOOR = 1e-30


@njit(**_LEAF)
def _bump_parts(P, u, w, q):
    """β(u), and w, q in place (∇β = β w, ∇²β = β (w wᵀ + diag(q − w²)))."""
    inside = True
    prod = 1.0
    for i in range(u.shape[0]):
        t = (np.abs(u[i]) - P.center) / P.radius
        e = 1.0 - t * t
        if e > _BUMP_E_FLOOR:
            e_safe = e
        else:
            e_safe = 1.0
            inside = False
        prod = prod * e_safe
        w[i] = -10.0 * t * np.sign(u[i]) / (P.radius * e_safe)
        q[i] = (90.0 * t * t - 10.0) / (P.radius * e_safe) ** 2
    return prod**5 if inside else 0.0


@njit(**_LEAF)
def _bump_hess_vp(beta, w, q, v, out):
    """out = ∇²β v = β (w (w·v) + (q − w²) v)."""
    s = 0.0
    for i in range(v.shape[0]):
        s += w[i] * v[i]
    for i in range(v.shape[0]):
        out[i] = beta * (w[i] * s + (q[i] - w[i] * w[i]) * v[i])


@njit(**_LEAF)
def _bump_safe(z):
    return 1.0 if z == 0.0 else z


@njit(**_LEAF)
def _bump_grad_x_f(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = P.rho * x[i]


@njit(**_LEAF)
def _bump_grad_y_f(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = P.a[i] * _jac(y[i], P.p)


@njit(**_LEAF)
def _bump_f_u(P, x, y, out):
    for i in range(out.shape[0]):
        out[i] = P.a[i]


@njit(**_LEAF)
def _bump_minus(P, x, y, out):
    """∇_x g = −y."""
    for i in range(out.shape[0]):
        out[i] = -y[i]


@njit(**_LEAF)
def _bump_jvp(P, x, y, v, out):
    """∇²_xy g v = −v."""
    for i in range(out.shape[0]):
        out[i] = -v[i]


@njit(**_LEAF)
def _bump_grad_y_g(P, x, y, out):
    """u − x + eps D ∇β(u)."""
    d = y.shape[0]
    u = np.empty(d)
    for i in range(d):
        u[i] = _spow(y[i], P.p - 1.0)
    w = np.empty(d)
    q = np.empty(d)
    beta = _bump_parts(P, u, w, q)
    for i in range(d):
        out[i] = u[i] - x[i] + P.eps * _jac(y[i], P.p) * beta * w[i]


@njit(**_LEAF)
def _bump_hvp(P, x, y, v, out):
    """D v + eps (D ∇²β (D v) + P''(y) ∇β v)."""
    p = P.p
    d = y.shape[0]
    u = np.empty(d)
    D = np.empty(d)
    Dv = np.empty(d)
    for i in range(d):
        u[i] = _spow(y[i], p - 1.0)
        D[i] = _jac(y[i], p)
        Dv[i] = D[i] * v[i]
    w = np.empty(d)
    q = np.empty(d)
    beta = _bump_parts(P, u, w, q)
    hv = np.empty(d)
    _bump_hess_vp(beta, w, q, Dv, hv)
    for i in range(d):
        yi = _bump_safe(y[i])
        pdd = (p - 1.0) * (p - 2.0) * np.sign(yi) * np.abs(yi) ** (p - 3.0)
        diag = pdd * beta * w[i] * v[i]
        out[i] = D[i] * v[i] + P.eps * (D[i] * hv[i] + diag)


@njit(**_LEAF)
def _bump_H_apply(P, y, v, transpose, out):
    """H v = v + eps (D ∇²β v + d'∇β v); Hᵀ v = v + eps (∇²β D v + d'∇β v), D from u."""
    p = P.p
    d = y.shape[0]
    u = np.empty(d)
    D = np.empty(d)
    for i in range(d):
        u[i] = _spow(y[i], p - 1.0)
        D[i] = (p - 1.0) * np.abs(u[i]) ** ((p - 2.0) / (p - 1.0))
    w = np.empty(d)
    q = np.empty(d)
    beta = _bump_parts(P, u, w, q)
    hv = np.empty(d)
    if transpose:
        Dv = np.empty(d)
        for i in range(d):
            Dv[i] = D[i] * v[i]
        _bump_hess_vp(beta, w, q, Dv, hv)
    else:
        _bump_hess_vp(beta, w, q, v, hv)
    for i in range(d):
        ui = _bump_safe(u[i])
        dd = (p - 2.0) * np.sign(ui) * np.abs(ui) ** (-1.0 / (p - 1.0))
        diag = dd * beta * w[i] * v[i]
        bend = hv[i] if transpose else D[i] * hv[i]
        out[i] = v[i] + P.eps * (bend + diag)


@njit(**_LEAF)
def _bump_gen_hvp(P, x, y, v, out):
    _bump_H_apply(P, y, v, False, out)


@njit(**_LEAF)
def _bump_gen_hvp_T(P, x, y, v, out):
    _bump_H_apply(P, y, v, True, out)


def _build_bump(problem) -> BumpRecord:
    return BumpRecord(p=float(problem.p), rho=float(problem.rho), eps=float(problem.eps),
                      center=float(problem.center), radius=float(problem.radius),
                      a=readonly(problem.a))


# ============================================================================================
# The sharp-Hölder separable family (refbilevel/problems/uniformly_convex.py)
# ============================================================================================
class SharpHolderRecord(NamedTuple):
    """SharpHolderUniformlyConvex: the exponent p (g as the separable family's, f_u =
    clip(y, −1, 1))."""

    p: float


@njit(**JIT)
def _clip_grad_y_f(P, x, y, out):
    """∇_y f = clip(y, −1, 1) D(y)."""
    p = P.p
    for i in range(out.shape[0]):
        out[i] = min(max(y[i], -1.0), 1.0) * _jac(y[i], p)


@njit(**JIT)
def _clip_f_u(P, x, y, out):
    """f_u = clip(y, −1, 1)."""
    for i in range(out.shape[0]):
        out[i] = min(max(y[i], -1.0), 1.0)


def _build_sharp_holder(problem) -> SharpHolderRecord:
    return SharpHolderRecord(p=float(problem.p))


# ============================================================================================
# Logistic data hyper-cleaning (refbilevel/problems/logistic_cleaning.py; docs/fdehbo.rst §10.2)
# ============================================================================================
class LogisticCleaningRecord(NamedTuple):
    """LogisticCleaning: the rows b_i a_i (``Ab``, N × q), the validation data C (m × q) and
    targets e, μ, ρ and the upper-level weight c_f (``upper_scale``)."""

    Ab: np.ndarray
    C: np.ndarray
    e: np.ndarray
    mu: float
    rho: float
    upper_scale: float


@njit(**_LEAF)
def _sigmoid(z):
    """0.5 (1 + tanh(z/2)), the overflow-free form of the NumPy class."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@njit(**_LEAF)
def _softplus(z):
    """log(1 + e^z) as NumPy's logaddexp(0, z) computes it."""
    if z > 0.0:
        return z + np.log1p(np.exp(-z))
    return np.log1p(np.exp(z))


@njit(**JIT)
def _lc_grad_x_f(P, x, y, out):
    """∇_x f = ρ x."""
    for i in range(out.shape[0]):
        out[i] = P.rho * x[i]


@njit(**JIT)
def _lc_grad_y_f(P, x, y, out):
    """∇_y f = c_f Cᵀ(C y − e)/m."""
    C = P.C
    m = C.shape[0]
    for k in range(out.shape[0]):
        out[k] = 0.0
    for j in range(m):
        r = _row_dot(C, j, y) - P.e[j]
        for k in range(out.shape[0]):
            out[k] += r * C[j, k]
    for k in range(out.shape[0]):
        out[k] = P.upper_scale * out[k] / m


@njit(**JIT)
def _lc_grad_x_g(P, x, y, out):
    """∇_x g = σ(x) ⊙ (1 − σ(x)) ⊙ ℓ(z)/N, z_i = b_i a_iᵀ y."""
    N = out.shape[0]
    for i in range(N):
        s = _sigmoid(x[i])
        out[i] = s * (1.0 - s) * _softplus(-_row_dot(P.Ab, i, y)) / N


@njit(**JIT)
def _lc_grad_y_g(P, x, y, out):
    """∇_y g = Σ_i (−σ(x_i) σ(−z_i)/N) b_i a_i + μ y."""
    Ab = P.Ab
    N = Ab.shape[0]
    for k in range(out.shape[0]):
        out[k] = 0.0
    for i in range(N):
        coef = -1.0 * _sigmoid(x[i]) * _sigmoid(-_row_dot(Ab, i, y)) / N
        for k in range(out.shape[0]):
            out[k] += coef * Ab[i, k]
    for k in range(out.shape[0]):
        out[k] = out[k] + P.mu * y[k]


@njit(**JIT)
def _lc_hvp(P, x, y, v, out):
    """∇²_yy g v = Σ_i σ(x_i) σ(z_i) σ(−z_i)/N (b_i a_iᵀ v) b_i a_i + μ v."""
    Ab = P.Ab
    N = Ab.shape[0]
    for k in range(out.shape[0]):
        out[k] = 0.0
    for i in range(N):
        z = _row_dot(Ab, i, y)
        curv = 1.0 * _sigmoid(x[i]) * _sigmoid(z) * _sigmoid(-z) / N
        c = curv * _row_dot(Ab, i, v)
        for k in range(out.shape[0]):
            out[k] += c * Ab[i, k]
    for k in range(out.shape[0]):
        out[k] = out[k] + P.mu * v[k]


@njit(**JIT)
def _lc_jvp(P, x, y, v, out):
    """∇²_xy g v: (−σ(x_i)(1 − σ(x_i)) σ(−z_i)/N) (b_i a_iᵀ v) ∈ R^N."""
    N = out.shape[0]
    for i in range(N):
        s = _sigmoid(x[i])
        cross = -1.0 * s * (1.0 - s) * _sigmoid(-_row_dot(P.Ab, i, y)) / N
        out[i] = cross * _row_dot(P.Ab, i, v)


def _build_logistic_cleaning(problem) -> LogisticCleaningRecord:
    return LogisticCleaningRecord(Ab=readonly(problem.Ab), C=readonly(problem.C),
                                  e=readonly(problem.e), mu=float(problem.mu),
                                  rho=float(problem.rho),
                                  upper_scale=float(problem.upper_scale))


# ============================================================================================
# The one registration list
# ============================================================================================
def _library_families() -> tuple[NumbaFamily, ...]:
    from refbilevel.problems.custom import ClosedFormProblem
    from refbilevel.problems.logistic_cleaning import LogisticCleaning
    from refbilevel.problems.quadratic import StronglyConvexQuadratic
    from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2
    from refbilevel.problems.unibio_example3 import UniBiOExample3
    from refbilevel.problems.uniformly_convex import (
        NonSeparableUniformlyConvex,
        SeparableUniformlyConvex,
        SharpHolderUniformlyConvex,
    )
    from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump

    sin_level = {"grad_x_g": _sin_grad_x_g, "grad_y_g": _sin_grad_y_g, "hvp": _sin_hvp,
                 "jvp": _sin_jvp, "gen_hvp": _identity_gen_hvp, "gen_hvp_T": _identity_gen_hvp}
    return (
        NumbaFamily("unibio-example3", UniBiOExample3, Example3Record, _build_example3,
                    {**sin_level, "grad_x_f": _zero_x, "grad_y_f": _ex3_grad_y_f,
                     "f_u": _ex3_f_u}),
        NumbaFamily("separable-uniformly-convex", SeparableUniformlyConvex, SeparableRecord,
                    _build_separable,
                    {**sin_level, "grad_x_f": _zero_x, "grad_y_f": _c_grad_y_f, "f_u": _c_f_u}),
        NumbaFamily("nonseparable-uniformly-convex", NonSeparableUniformlyConvex,
                    NonSeparableRecord, _build_nonseparable,
                    {"grad_x_f": _ns_grad_x_f, "grad_y_f": _c_grad_y_f, "grad_x_g": _ns_grad_x_g,
                     "grad_y_g": _ns_grad_y_g, "hvp": _ns_hvp, "jvp": _ns_jvp,
                     "f_u": _c_f_u, "gen_hvp": _ns_gen_hvp, "gen_hvp_T": _ns_gen_hvp_T}),
        NumbaFamily("uniformly-convex-bump", UniformlyConvexBump, BumpRecord, _build_bump,
                    {"grad_x_f": _bump_grad_x_f, "grad_y_f": _bump_grad_y_f,
                     "grad_x_g": _bump_minus, "grad_y_g": _bump_grad_y_g, "hvp": _bump_hvp,
                     "jvp": _bump_jvp, "f_u": _bump_f_u, "gen_hvp": _bump_gen_hvp,
                     "gen_hvp_T": _bump_gen_hvp_T}),
        NumbaFamily("quadratic-dense", StronglyConvexQuadratic, QuadraticDenseRecord,
                    _build_quadratic_dense,
                    {"grad_x_f": _quad_grad_x_f, "grad_y_f": _qd_grad_y_f,
                     "grad_x_g": _qd_grad_x_g, "grad_y_g": _qd_grad_y_g, "hvp": _qd_hvp,
                     "jvp": _qd_jvp, "f_u": _qd_grad_y_f, "gen_hvp": _qd_hvp,
                     "gen_hvp_T": _qd_hvp},
                    applies=lambda problem: not _householder(problem)),
        NumbaFamily("quadratic-householder", StronglyConvexQuadratic, QuadraticHouseholderRecord,
                    _build_quadratic_householder,
                    {"grad_x_f": _quad_grad_x_f, "grad_y_f": _qh_grad_y_f,
                     "grad_x_g": _qh_grad_x_g, "grad_y_g": _qh_grad_y_g, "hvp": _qh_hvp,
                     "jvp": _qh_jvp, "f_u": _qh_grad_y_f, "gen_hvp": _qh_hvp,
                     "gen_hvp_T": _qh_hvp},
                    applies=_householder),
        NumbaFamily("relaxed-smooth-p1", RelaxedSmoothP1, RelaxedSmoothP1Record, _build_p1,
                    {"grad_x_f": _p1_grad_x_f, "grad_y_f": _p1_grad_y_f,
                     "grad_x_g": _p1_grad_x_g, "grad_y_g": _p1_grad_y_g, "hvp": _rs_hvp,
                     "jvp": _p1_jvp}),
        NumbaFamily("relaxed-smooth-p2", RelaxedSmoothP2, RelaxedSmoothP2Record, _build_p2,
                    {"grad_x_f": _p2_grad_x_f, "grad_y_f": _p2_grad_y_f,
                     "grad_x_g": _p2_grad_x_g, "grad_y_g": _p2_grad_y_g, "hvp": _rs_hvp,
                     "jvp": _p2_jvp}),
        NumbaFamily("uniformly-convex-sharp-holder", SharpHolderUniformlyConvex,
                    SharpHolderRecord, _build_sharp_holder,
                    {**sin_level, "grad_x_f": _zero_x, "grad_y_f": _clip_grad_y_f,
                     "f_u": _clip_f_u}),
        NumbaFamily("logistic-cleaning", LogisticCleaning, LogisticCleaningRecord,
                    _build_logistic_cleaning,
                    {"grad_x_f": _lc_grad_x_f, "grad_y_f": _lc_grad_y_f,
                     "grad_x_g": _lc_grad_x_g, "grad_y_g": _lc_grad_y_g, "hvp": _lc_hvp,
                     "jvp": _lc_jvp, "f_u": _lc_grad_y_f, "gen_hvp": _lc_hvp,
                     "gen_hvp_T": _lc_hvp}),
        NumbaFamily("closed-form", ClosedFormProblem, ClosedFormRecord, _build_closed_form,
                    {"grad_x_f": _cf_grad_x_f, "grad_y_f": _cf_grad_y_f,
                     "grad_x_g": _cf_grad_x_g, "grad_y_g": _cf_grad_y_g, "hvp": _cf_hvp,
                     "jvp": _cf_jvp, "f_u": _cf_f_u, "gen_hvp": _cf_gen_hvp,
                     "gen_hvp_T": _cf_gen_hvp_T}),
    )


#: every library family, registered (in this order) on the first lookup
LIBRARY_FAMILIES: tuple[NumbaFamily, ...] = _library_families()
