"""Finite-difference and adjoint (dot-product) checks of a problem's derivatives (claim X1).

Spec docs/checks.rst X1: every problem's gradients, HVPs, JVPs and generalized derivatives match
finite differences, and HVP/JVP pass a dot-product (adjoint) test. This module is the one
implementation of that procedure: the tests and ``theory_checks/x1_derivatives.py`` use it.

Finite differences. :func:`fd_directional` is the central difference
(F(z + h d) - F(z - h d)) / 2h. For F with a bounded third derivative M3 along d its error is

    truncation  h² M3 ||d||³ / 6   +   rounding  ~ eps (|F(z + h d)| + |F(z - h d)|) / 2h,

so h = 1e-6 (the default, :data:`FD_STEP`, for O(1)-scaled variables) leaves ~2e-13 M3 of
truncation and ~2e-10 |F| of rounding: :data:`FD_RTOL` = 1e-6, relative to
max(1, |analytic|, |finite difference|), is four orders above both for M3 and |F| up to
O(100), while a wrong term, factor, exponent or transpose is an O(1) relative error (a
factor 1 + 1e-3 is still 1e3 times the tolerance). :func:`fd_directional_estimate` also
returns both error terms of its own evaluation: the truncation by Richardson extrapolation,
|D(h) - D(2h)| / 3 (D(h) = D + c h² + O(h⁴)), and the rounding term eps (|F+| + |F-|) / 2h.

Generalized derivatives (UniBiO, docs/unibio.rst §1.4-1.6) are derivatives w.r.t.
u = [y]^{∘(p-1)} (Definition A.1, eqs. (10a), (10b)): with P^{-1}(u) = [u]^{∘1/(p-1)},

    f_u      = ∇_u f(x, P^{-1}(u)),                       (10a)
    H v      = d/dt ∇_y g(x, P^{-1}(u + t v)) at t = 0,   (10b)
    Hᵀ w     = ∇_u <w, ∇_y g(x, P^{-1}(u))>,              (Hᵀ as the adjoint of H, §1.6)

so they are checked by finite differences in u. P^{-1} is not smooth at u_i = 0 for p > 2,
so the step in u is h · min(1, min_i |u_i|) (a relative step; points with a zero coordinate
are refused: the generalized derivatives are limits there, §1.5).

Adjoint (dot-product) tests: for a linear map A applied by two routines (A v and Aᵀ w) the
identity <A v, w> = <v, Aᵀ w> holds exactly; :func:`adjoint_residual` is
|<Av, w> - <v, Aᵀw>| / (||Av|| ||w|| + ||v|| ||Aᵀw||), which is only rounding, O(d eps), for
correct products: :data:`ADJOINT_RTOL` = 1e-12 allows ~45 d eps at d = 100. Pairs tested:
(∇²_xy g v, ∇²_yx g w) (the JVP and its transpose), (∇²_yy g, ∇²_yy g) (the HVP is
self-adjoint), (H v, Hᵀ w) (generalized HVP, docs/unibio.rst §1.6); for fixed-point problems
(∂₁Φ u, ∂₁Φᵀ v) and (∂₂Φ u, ∂₂Φᵀ v).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np

from refbilevel.power_map import inverse_power_map, power_map

EPS = float(np.finfo(np.float64).eps)
FD_STEP = 1e-6
FD_RTOL = 1e-6
ADJOINT_RTOL = 1e-12

FINITE_DIFFERENCE = "finite difference"
ADJOINT = "adjoint"


# ---- central differences ----------------------------------------------------------------------
def _step_for(out: np.ndarray, h, z: np.ndarray):
    """The step h broadcast against an output: h is a scalar or has shape z.shape[:-1] + (1,)
    (one step per point); scalar-valued functions drop its trailing axis."""
    h = np.asarray(h, dtype=np.float64)
    if h.ndim and out.ndim < z.ndim:
        return h[..., 0]
    return h


def fd_directional(fun: Callable[[np.ndarray], Any], z, direction, h=FD_STEP) -> np.ndarray:
    """(fun(z + h d) - fun(z - h d)) / 2h, batched over the leading axes of z (see module)."""
    z = np.asarray(z, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    hh = np.asarray(h, dtype=np.float64)
    diff = np.asarray(fun(z + hh * d)) - np.asarray(fun(z - hh * d))
    return diff / (2.0 * _step_for(diff, hh, z))


def fd_gradient(fun: Callable[[np.ndarray], Any], z, h=FD_STEP) -> np.ndarray:
    """Gradient of a scalar batched function fun: (..., d) -> (...), coordinate by coordinate."""
    z = np.asarray(z, dtype=np.float64)
    eye = np.eye(z.shape[-1])
    return np.stack([fd_directional(fun, z, eye[i], h) for i in range(z.shape[-1])], axis=-1)


class FDEstimate(NamedTuple):
    """A central difference and the two terms of its error (elementwise, absolute)."""

    value: np.ndarray  # D(h)
    truncation: np.ndarray  # |D(h) - D(2h)| / 3 (Richardson)
    rounding: np.ndarray  # eps (|F(z + h d)| + |F(z - h d)|) / 2h


def fd_directional_estimate(fun: Callable[[np.ndarray], Any], z, direction,
                            h=FD_STEP) -> FDEstimate:
    """:func:`fd_directional` with its truncation and rounding error estimates."""
    z = np.asarray(z, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    hh = np.asarray(h, dtype=np.float64)
    fp, fm = np.asarray(fun(z + hh * d)), np.asarray(fun(z - hh * d))
    fp2, fm2 = np.asarray(fun(z + 2.0 * hh * d)), np.asarray(fun(z - 2.0 * hh * d))
    s = _step_for(fp, hh, z)
    value = (fp - fm) / (2.0 * s)
    value2 = (fp2 - fm2) / (4.0 * s)
    return FDEstimate(value, np.abs(value - value2) / 3.0,
                      EPS * (np.abs(fp) + np.abs(fm)) / (2.0 * s))


def fd_gradient_estimate(fun: Callable[[np.ndarray], Any], z, h=FD_STEP) -> FDEstimate:
    """:func:`fd_gradient` with its truncation and rounding error estimates."""
    z = np.asarray(z, dtype=np.float64)
    eye = np.eye(z.shape[-1])
    parts = [fd_directional_estimate(fun, z, eye[i], h) for i in range(z.shape[-1])]
    return FDEstimate(*(np.stack([getattr(p, f) for p in parts], axis=-1)
                        for f in FDEstimate._fields))


# ---- error measures ---------------------------------------------------------------------------
def _vec(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a[..., None] if a.ndim == 0 else a


def derivative_scale(analytic, reference) -> np.ndarray:
    """max(1, ||analytic||_∞, ||reference||_∞) per point (last axis = components)."""
    a, b = _vec(analytic), _vec(reference)
    return np.maximum(1.0, np.maximum(np.max(np.abs(a), axis=-1), np.max(np.abs(b), axis=-1)))


def relative_error(analytic, reference) -> np.ndarray:
    """Per point: ||analytic - reference||_∞ / max(1, ||analytic||_∞, ||reference||_∞)."""
    a, b = _vec(analytic), _vec(reference)
    return np.max(np.abs(a - b), axis=-1) / derivative_scale(a, b)


def adjoint_residual(Av, w, v, ATw) -> np.ndarray:
    """Per point: |<Av, w> - <v, Aᵀw>| / (||Av|| ||w|| + ||v|| ||Aᵀw||) (0 when both vanish)."""
    Av, w, v, ATw = (np.asarray(a, dtype=np.float64) for a in (Av, w, v, ATw))
    lhs, rhs = np.sum(Av * w, axis=-1), np.sum(v * ATw, axis=-1)
    scale = (np.linalg.norm(Av, axis=-1) * np.linalg.norm(w, axis=-1)
             + np.linalg.norm(v, axis=-1) * np.linalg.norm(ATw, axis=-1))
    diff = np.abs(lhs - rhs)
    return np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), diff)


@dataclass(frozen=True)
class Comparison:
    """One derivative compared with its finite-difference reference or its adjoint.

    ``error`` is the worst value over the points (relative FD error, or adjoint residual)
    and ``n_failed`` the number of the ``n_points`` points where it exceeds ``tolerance``;
    for finite differences ``truncation`` and ``rounding`` are the worst estimated error
    terms of the reference itself, relative to the same scale, and ``step`` the step used.
    """

    name: str
    test: str  # FINITE_DIFFERENCE or ADJOINT
    what: str
    error: float
    tolerance: float
    n_points: int
    n_failed: int
    step: float | None = None
    truncation: float | None = None
    rounding: float | None = None

    @property
    def passed(self) -> bool:
        return bool(self.error <= self.tolerance)  # NaN fails

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare_fd(name: str, what: str, analytic, ref: FDEstimate, step,
               rtol: float = FD_RTOL) -> Comparison:
    """The worst relative error of ``analytic`` against a finite-difference estimate."""
    scale = derivative_scale(analytic, ref.value)
    err = relative_error(analytic, ref.value)
    trunc = np.max(_vec(ref.truncation), axis=-1) / scale
    rnd = np.max(_vec(ref.rounding), axis=-1) / scale
    return Comparison(name, FINITE_DIFFERENCE, what, _worst(err), rtol, *_counts(err, rtol),
                      float(np.max(step)), _worst(trunc), _worst(rnd))


def compare_adjoint(name: str, what: str, Av, w, v, ATw,
                    rtol: float = ADJOINT_RTOL) -> Comparison:
    """The worst adjoint residual of the pair (A v, Aᵀ w)."""
    res = adjoint_residual(Av, w, v, ATw)
    return Comparison(name, ADJOINT, what, _worst(res), rtol, *_counts(res, rtol))


def _counts(err, tol: float) -> tuple[int, int]:
    """(points, points whose error exceeds tol or is NaN)."""
    err = np.asarray(err, dtype=np.float64)
    return int(err.size), int(np.sum(~(err <= tol)))


def _worst(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float("nan") if np.any(np.isnan(a)) else float(np.max(a))


def _dot(a, b) -> np.ndarray:
    return np.sum(np.asarray(a) * np.asarray(b), axis=-1)


# ---- the procedures -----------------------------------------------------------------------------
def u_step(u: np.ndarray, p: float, h: float = FD_STEP):
    """The finite-difference step in u = [y]^{∘(p-1)}: h for p = 2, else
    h · min(1, min_i |u_i|) per point (P^{-1} is not smooth at u_i = 0)."""
    if p == 2.0:
        return h
    umin = np.min(np.abs(u), axis=-1, keepdims=True)
    if np.any(umin == 0.0):
        raise ValueError("y must have no zero coordinate for p > 2: the generalized "
                         "derivatives are limits there (docs/unibio.rst §1.5)")
    return h * np.minimum(1.0, umin)


def bilevel_derivative_checks(problem, x, y, v, u, w, *, h: float = FD_STEP,
                              rtol: float = FD_RTOL, adjoint_rtol: float = ADJOINT_RTOL,
                              hypergradient: bool = True) -> list[Comparison]:
    """Every derivative of a :class:`~refbilevel.problems.base.BilevelProblem` at the points
    (x, y) (shapes (n, d_x), (n, d_y)) against finite differences, and the adjoint tests.

    v, u ∈ R^{d_y} and w ∈ R^{d_x} (batched like x, y) are the test directions; O(1) norms
    keep the truncation term of the module docstring small. Only public methods are used,
    so any object with the BilevelProblem interface (e.g. a wrapper with a deliberately
    wrong derivative) can be checked. ``hypergradient=True`` also compares ∇phi with a
    directional difference of phi along w.
    """
    x, y, v, u, w = (np.asarray(a, dtype=np.float64) for a in (x, y, v, u, w))
    P = problem
    p = float(P.p)
    out = []

    def fd(name, what, analytic, est, step):
        out.append(compare_fd(name, what, analytic, est, step, rtol))

    # first derivatives: full finite-difference gradients
    fd("grad_x_f", "∇_x f vs central differences of f in x", P.grad_x_f(x, y),
       fd_gradient_estimate(lambda z: P.f(z, y), x, h), h)
    fd("grad_y_f", "∇_y f vs central differences of f in y", P.grad_y_f(x, y),
       fd_gradient_estimate(lambda z: P.f(x, z), y, h), h)
    fd("grad_x_g", "∇_x g vs central differences of g in x", P.grad_x_g(x, y),
       fd_gradient_estimate(lambda z: P.g(z, y), x, h), h)
    fd("grad_y_g", "∇_y g vs central differences of g in y", P.grad_y_g(x, y),
       fd_gradient_estimate(lambda z: P.g(x, z), y, h), h)
    # second-order products: directional differences of the gradients
    fd("hvp_yy_g", "∇²_yy g v vs d/dt ∇_y g(x, y + t v)", P.hvp_yy_g(x, y, v),
       fd_directional_estimate(lambda z: P.grad_y_g(x, z), y, v, h), h)
    fd("jvp_xy_g", "∇²_xy g v vs d/dt ∇_x g(x, y + t v)", P.jvp_xy_g(x, y, v),
       fd_directional_estimate(lambda z: P.grad_x_g(x, z), y, v, h), h)
    fd("jvp_yx_g", "∇²_yx g w vs d/dt ∇_y g(x + t w, y)", P.jvp_yx_g(x, y, w),
       fd_directional_estimate(lambda z: P.grad_y_g(z, y), x, w, h), h)
    # generalized derivatives: differences in u = [y]^{∘(p-1)} (docs/unibio.rst §1.4 (10a), (10b))
    uy = power_map(y, p)
    hu = u_step(uy, p, h)

    def y_of(s):
        return inverse_power_map(s, p)

    fd("f_u", "f_u vs ∇_u f(x, [u]^{∘1/(p-1)}) (docs/unibio.rst §1.4 (10a))", P.f_u(x, y),
       fd_gradient_estimate(lambda s: P.f(x, y_of(s)), uy, hu), hu)
    fd("gen_hvp", "H v vs d/dt ∇_y g(x, [u + t v]^{∘1/(p-1)}) (docs/unibio.rst §1.4 (10b))",
       P.gen_hvp(x, y, v), fd_directional_estimate(lambda s: P.grad_y_g(x, y_of(s)), uy, v, hu),
       hu)
    fd("gen_hvp_T", "Hᵀ u vs ∇_s <u, ∇_y g(x, [s]^{∘1/(p-1)})> (docs/unibio.rst §1.6)",
       P.gen_hvp_T(x, y, u),
       fd_gradient_estimate(lambda s: _dot(u, P.grad_y_g(x, y_of(s))), uy, hu), hu)
    if hypergradient:
        fd("grad_phi", "<∇phi, w> vs d/dt phi(x + t w)", _dot(P.grad_phi(x), w),
           fd_directional_estimate(P.phi, x, w, h), h)
    # adjoint (dot-product) tests
    out.append(compare_adjoint("jvp adjoint", "<∇²_xy g v, w> = <v, ∇²_yx g w>",
                               P.jvp_xy_g(x, y, v), w, v, P.jvp_yx_g(x, y, w), adjoint_rtol))
    out.append(compare_adjoint("hvp self-adjoint", "<∇²_yy g v, u> = <v, ∇²_yy g u>",
                               P.hvp_yy_g(x, y, v), u, v, P.hvp_yy_g(x, y, u), adjoint_rtol))
    out.append(compare_adjoint("gen_hvp adjoint", "<H v, u> = <v, Hᵀ u> (docs/unibio.rst §1.6)",
                               P.gen_hvp(x, y, v), u, v, P.gen_hvp_T(x, y, u), adjoint_rtol))
    return out


def finite_sum_derivative_checks(problem, x, y, v, u, w, idx_inner, idx_outer, *,
                                 h: float = FD_STEP, rtol: float = FD_RTOL,
                                 adjoint_rtol: float = ADJOINT_RTOL) -> list[Comparison]:
    """The per-minibatch derivatives of a finite-sum problem (``*_batch(x, y, [v,] idx)``,
    what :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle` returns) against finite
    differences of the minibatch values ``g_batch``/``f_batch``, and their adjoint tests."""
    x, y, v, u, w = (np.asarray(a, dtype=np.float64) for a in (x, y, v, u, w))
    P, ii, io = problem, idx_inner, idx_outer
    out = []

    def fd(name, what, analytic, est):
        out.append(compare_fd(name, what, analytic, est, h, rtol))

    fd("batch grad_x_f", "minibatch ∇_x f vs differences of f_batch",
       P.grad_x_f_batch(x, y, io), fd_gradient_estimate(lambda z: P.f_batch(z, y, io), x, h))
    fd("batch grad_y_f", "minibatch ∇_y f vs differences of f_batch",
       P.grad_y_f_batch(x, y, io), fd_gradient_estimate(lambda z: P.f_batch(x, z, io), y, h))
    fd("batch grad_x_g", "minibatch ∇_x g vs differences of g_batch",
       P.grad_x_g_batch(x, y, ii), fd_gradient_estimate(lambda z: P.g_batch(z, y, ii), x, h))
    fd("batch grad_y_g", "minibatch ∇_y g vs differences of g_batch",
       P.grad_y_g_batch(x, y, ii), fd_gradient_estimate(lambda z: P.g_batch(x, z, ii), y, h))
    fd("batch hvp_yy_g", "minibatch ∇²_yy g v vs d/dt grad_y_g_batch(x, y + t v)",
       P.hvp_yy_g_batch(x, y, v, ii),
       fd_directional_estimate(lambda z: P.grad_y_g_batch(x, z, ii), y, v, h))
    fd("batch jvp_xy_g", "minibatch ∇²_xy g v vs d/dt grad_x_g_batch(x, y + t v)",
       P.jvp_xy_g_batch(x, y, v, ii),
       fd_directional_estimate(lambda z: P.grad_x_g_batch(x, z, ii), y, v, h))
    fd("batch jvp_yx_g", "minibatch ∇²_yx g w vs d/dt grad_y_g_batch(x + t w, y)",
       P.jvp_yx_g_batch(x, y, w, ii),
       fd_directional_estimate(lambda z: P.grad_y_g_batch(z, y, ii), x, w, h))
    out.append(compare_adjoint("batch jvp adjoint", "minibatch <∇²_xy g v, w> = <v, ∇²_yx g w>",
                               P.jvp_xy_g_batch(x, y, v, ii), w, v,
                               P.jvp_yx_g_batch(x, y, w, ii), adjoint_rtol))
    out.append(compare_adjoint("batch hvp self-adjoint",
                               "minibatch <∇²_yy g v, u> = <v, ∇²_yy g u>",
                               P.hvp_yy_g_batch(x, y, v, ii), u, v,
                               P.hvp_yy_g_batch(x, y, u, ii), adjoint_rtol))
    return out


def fixed_point_derivative_checks(problem, w, lam, u, ul, v, *, h: float = FD_STEP,
                                  rtol: float = FD_RTOL,
                                  adjoint_rtol: float = ADJOINT_RTOL) -> list[Comparison]:
    """The derivatives of a :class:`~refbilevel.problems.contraction.FixedPointProblem`
    (lower level w = Φ(w, λ), docs/sid_bsgm.rst §2-§4) at (w, λ) against finite differences,
    and the adjoint tests of ∂₁Φ and ∂₂Φ. u, v ∈ R^d and ul ∈ R^n are test directions.

    There is no lower-level objective g, hence no ∇²_yy g, f_u or generalized Hessian: the
    analogues checked are ∂₁Φ (jvp_w/vjp_w) and ∂₂Φ (jvp_lam/vjp_lam). ``hessian_f`` and the
    per-sample ``phi_map_sample``/``vjp_w_sample`` are checked where the problem has them.
    """
    w, lam, u, ul, v = (np.asarray(a, dtype=np.float64) for a in (w, lam, u, ul, v))
    P = problem
    out = []

    def fd(name, what, analytic, est):
        out.append(compare_fd(name, what, analytic, est, h, rtol))

    fd("jvp_w", "∂₁Φ u vs d/dt Φ(w + t u, λ)", P.jvp_w(w, lam, u),
       fd_directional_estimate(lambda z: P.phi_map(z, lam), w, u, h))
    fd("jvp_lam", "∂₂Φ u vs d/dt Φ(w, λ + t u)", P.jvp_lam(w, lam, ul),
       fd_directional_estimate(lambda z: P.phi_map(w, z), lam, ul, h))
    fd("grad_E (w)", "∇₁E vs central differences of E in w", P.grad_E(w, lam)[0],
       fd_gradient_estimate(lambda z: P.E(z, lam), w, h))
    fd("grad_E (lam)", "∇₂E vs central differences of E in λ", P.grad_E(w, lam)[1],
       fd_gradient_estimate(lambda z: P.E(w, z), lam, h))
    fd("grad_f", "∇f (eq. (4)) vs central differences of f(λ) = E(w(λ), λ)", P.grad_f(lam),
       fd_gradient_estimate(P.f, lam, h))
    if hasattr(P, "hessian_f"):
        fd("hessian_f", "∇²f u vs d/dt ∇f(λ + t u)",
           np.einsum("...ij,...j->...i", P.hessian_f(lam), ul),
           fd_directional_estimate(P.grad_f, lam, ul, h))
    if hasattr(P, "vjp_w_sample"):
        j = np.arange(lam.shape[0]) % P.N
        est = fd_directional_estimate(lambda z: P.phi_map_sample(z, lam, j), w, u, h)
        fd("vjp_w_sample", "<∂₁Φ(·; j)ᵀ v, u> vs <v, d/dt Φ(w + t u, λ; j)> (per sample)",
           _dot(P.vjp_w_sample(w, lam, v, j), u),
           FDEstimate(_dot(v, est.value), _dot(np.abs(v), est.truncation),
                      _dot(np.abs(v), est.rounding)))
    out.append(compare_adjoint("jvp_w adjoint", "<∂₁Φ u, v> = <u, ∂₁Φᵀ v>",
                               P.jvp_w(w, lam, u), v, u, P.vjp_w(w, lam, v), adjoint_rtol))
    out.append(compare_adjoint("jvp_lam adjoint", "<∂₂Φ u, v> = <u, ∂₂Φᵀ v>",
                               P.jvp_lam(w, lam, ul), v, ul, P.vjp_lam(w, lam, v), adjoint_rtol))
    return out
