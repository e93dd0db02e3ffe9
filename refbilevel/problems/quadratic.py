"""Strongly convex quadratic bilevel problems with spectra chosen by construction.

    g(x, y) = ½ yᵀ H y − yᵀ (K x + h)                         (lower level, μ-strongly convex)
    f(x, y) = ½ (y − y_ref)ᵀ F (y − y_ref) + (rho/2) ||x||² + rᵀx   (upper level)

This is the p = 2 member of the UniBiO problem class (docs/unibio.rst §2.1: (μ, 2)-uniform
convexity is μ-strong convexity, H = ∇²_yy g) and the stochastic quadratic of docs/fdehbo.rst §10.1
with a shifted target. Closed forms (DERIVED, docs/fdehbo.rst §10.1):

    y*(x)  = H^{-1}(K x + h)
    phi(x) = ½ (y* − y_ref)ᵀ F (y* − y_ref) + (rho/2)||x||² + rᵀx
    ∇phi   = rho x + r + Kᵀ H^{-1} F (y*(x) − y_ref)
    ∇²phi  = rho I + (H^{-1}K)ᵀ F (H^{-1}K)            (constant)

Every matrix is an orthogonal factor times a diagonal of chosen values (docs/design.rst: spectra by
construction, never rejection sampling): H = Q_H diag(λ) Q_Hᵀ with λ spanning [μ, L],
K = Q_L diag(σ) Q_Rᵀ, F = Q_F diag(φ) Q_Fᵀ. The orthogonal factors are either dense Haar
matrices (O(d²) memory) or, in the *structured* mode, single Householder reflections
I − 2uuᵀ/||u||² (O(d) memory and O(d) per product), so that d = 10^4 fits easily.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from refbilevel.array_module import OnArrayModule, array_module
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.problems.spectra import orthogonal_matrix
from refbilevel.validation import require_int, require_range, require_vector

#: above this dimension the dense (..., d, d) objects of a problem are not built
DENSE_LIMIT = 2000


# ---- orthogonal factors ------------------------------------------------------------------
class HouseholderBasis(OnArrayModule):
    """Q = I − 2 u uᵀ/||u||²: symmetric and orthogonal, stored as the unit vector u (O(d))."""

    def __init__(self, u: np.ndarray):
        u = require_vector("u", u)
        nrm = float(np.linalg.norm(u))
        if nrm == 0.0:
            raise ValueError("u must be non-zero (a Householder vector)")
        self.u = u / nrm
        self.d = u.shape[0]

    def apply(self, v: np.ndarray) -> np.ndarray:
        """Q v on the last axis of v."""
        return v - 2.0 * (v @ self.u)[..., None] * self.u

    apply_T = apply  # Q is symmetric

    def dense(self) -> np.ndarray:
        return np.eye(self.d) - 2.0 * np.outer(self.u, self.u)


class DenseBasis(OnArrayModule):
    """A dense orthogonal matrix Q (O(d²) memory)."""

    def __init__(self, Q: np.ndarray):
        self.Q = np.asarray(Q, dtype=np.float64)
        self.d = self.Q.shape[0]

    def apply(self, v: np.ndarray) -> np.ndarray:
        return v @ self.Q.T

    def apply_T(self, v: np.ndarray) -> np.ndarray:
        return v @ self.Q

    def dense(self) -> np.ndarray:
        return np.array(self.Q, copy=True)


class RandomizedDCTBasis(OnArrayModule):
    """Q = C D₂ Π C D₁ (C the orthonormal DCT-II, D random signs, Π a random permutation):
    orthogonal, O(d) memory, O(d log d) per product, and delocalized: every column has all
    its entries of order 1/√d (one Householder reflection, by contrast, keeps e_i's column
    within O(1/√d) of e_i). Used where a Haar matrix (O(d²) memory) does not fit."""

    def __init__(self, d: int, rng: np.random.Generator):
        self.d = require_int("d", d, low=1)
        self.signs1 = rng.choice([-1.0, 1.0], self.d)
        self.perm = rng.permutation(self.d)
        self.signs2 = rng.choice([-1.0, 1.0], self.d)

    def apply(self, v: np.ndarray) -> np.ndarray:
        from scipy.fft import dct

        a = dct(self.signs1 * v, type=2, norm="ortho", axis=-1)
        return dct(self.signs2 * a[..., self.perm], type=2, norm="ortho", axis=-1)

    def apply_T(self, v: np.ndarray) -> np.ndarray:
        from scipy.fft import idct

        c = self.signs2 * idct(v, type=2, norm="ortho", axis=-1)
        b = np.empty_like(c)
        b[..., self.perm] = c
        return self.signs1 * idct(b, type=2, norm="ortho", axis=-1)

    def dense(self) -> np.ndarray:
        return self.apply(np.eye(self.d)).T


def random_basis(d: int, rng: np.random.Generator, structured: bool):
    """A Householder reflection of a Gaussian vector (structured) or a Haar matrix (dense)."""
    if structured:
        return HouseholderBasis(rng.standard_normal(d))
    return DenseBasis(orthogonal_matrix(d, rng))


class SymmetricSpectral(OnArrayModule):
    """M = Q diag(eigenvalues) Qᵀ applied in O(d) (Householder Q) or O(d²) (dense Q)."""

    def __init__(self, eigenvalues: np.ndarray, basis):
        self.eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        self.basis = basis
        self.d = self.eigenvalues.shape[0]

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.basis.apply(self.eigenvalues * self.basis.apply_T(v))

    def solve(self, v: np.ndarray) -> np.ndarray:
        """M^{-1} v (exact: divides by the eigenvalues in the eigenbasis)."""
        return self.basis.apply(self.basis.apply_T(v) / self.eigenvalues)

    def dense(self) -> np.ndarray:
        Q = self.basis.dense()
        M = (Q * self.eigenvalues) @ Q.T
        return 0.5 * (M + M.T)

    @property
    def norm(self) -> float:
        return float(np.max(np.abs(self.eigenvalues)))


class RectangularSpectral(OnArrayModule):
    """M = Q_L diag(σ) Q_Rᵀ of shape (m, n); σ has min(m, n) entries."""

    def __init__(self, singular_values: np.ndarray, left, right):
        self.singular_values = np.asarray(singular_values, dtype=np.float64)
        self.left, self.right = left, right
        self.shape = (left.d, right.d)
        self.k = self.singular_values.shape[0]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        """M x for x of shape (..., n)."""
        z = self.right.apply_T(x)[..., : self.k] * self.singular_values
        return self.left.apply(_pad(z, self.shape[0]))

    def rmatvec(self, y: np.ndarray) -> np.ndarray:
        """Mᵀ y for y of shape (..., m)."""
        z = self.left.apply_T(y)[..., : self.k] * self.singular_values
        return self.right.apply(_pad(z, self.shape[1]))

    def dense(self) -> np.ndarray:
        S = np.zeros(self.shape)
        S[np.arange(self.k), np.arange(self.k)] = self.singular_values
        return self.left.dense() @ S @ self.right.dense().T

    @property
    def norm(self) -> float:
        return float(np.max(np.abs(self.singular_values), initial=0.0))


def _pad(z: np.ndarray, d: int) -> np.ndarray:
    if z.shape[-1] == d:
        return z
    out = array_module(z).zeros(z.shape[:-1] + (d,))
    out[..., : z.shape[-1]] = z
    return out


def spectrum(low: float, high: float, d: int, kind: str) -> np.ndarray:
    """d values from low to high (both attained when d >= 2), evenly or log-evenly spaced."""
    if kind == "linear":
        return np.linspace(low, high, d)
    if kind == "log":
        if low <= 0:
            raise ValueError(f"a log-spaced spectrum needs a positive lower end, got {low:g}")
        return np.geomspace(low, high, d)
    raise ValueError(f"spectrum must be 'linear' or 'log', got {kind!r}")


def _lead(*arrays: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


def _bcast(out: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    """Broadcast ``out`` over the leading (replica) axes of every input."""
    shape = np.broadcast_shapes(out.shape[:-1], _lead(*arrays)) + out.shape[-1:]
    return out if out.shape == shape else array_module(out).broadcast_to(out, shape).copy()


def _range_pair(name: str, pair, *, low: float | None = None) -> tuple[float, float]:
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {pair!r}")
    lo = require_range(f"{name}[0]", pair[0], low=low)
    hi = require_range(f"{name}[1]", pair[1], low=lo)
    return lo, hi


# ---- the problem ---------------------------------------------------------------------------
class StronglyConvexQuadratic(BilevelProblem):
    """Quadratic g and f with closed-form y*, phi, ∇phi, ∇²phi (see the module docstring).

    Parameters
    ----------
    d_x, d_y : dimensions (d_y defaults to d_x).
    mu, L : the spectrum of H = ∇²_yy g spans [mu, L] (``spectrum`` spacing; for d_y = 1 the
        single eigenvalue is mu).
    seed : seeds the ``numpy.random.Generator`` that draws, in this order, the orthogonal
        factors Q_H, Q_L (d_y), Q_R (d_x), Q_F (d_y), then h, y_ref (d_y) and r (d_x), N(0, 1).
    k_range : singular values of K span this range (l_g1 = ||K|| = k_range[1] when
        min(d_x, d_y) >= 2).
    f_range : eigenvalues of F span this range (F may be indefinite).
    spectrum_kind : "linear" or "log" spacing of the three spectra; a range whose lower end
        is not positive (k_range, f_range) is always spaced linearly.
    rho : curvature of the upper level in x.
    structured : Householder factors (O(d) memory) if True, dense Haar factors if False;
        None chooses Householder when max(d_x, d_y) > 1000. The two modes draw different
        instances from the same seed.
    h, y_ref, r : override the drawn vectors.

    Constants (docs/unibio.rst §2 names): mu, L_y, l_g1 = ||K||, l_g2 = L_H = 0, C = L_y,
    l_f1 = rho, l_f2 = ||F||, C_f = None (∇_y f is unbounded), l_p = 2 l_g1/mu (the DERIVED
    Lemma 4.2 constant (p l_g1/mu)^{1/(p-1)} at p = 2, docs/unibio.rst §3.1), and for claim U4 at
    p = 2: L_phi1 = 0, L_phi2 = ||∇²phi||_2, exact (eigvalsh of the dense ∇²phi) when
    d_x <= 2000, else the bound |rho| + ||F|| ||K||²/mu², recorded in ``sources``.
    """

    name = "strongly-convex-quadratic"
    hessian_independent_of_y = True
    supports_array_modules = True

    def __init__(
        self,
        d_x: int = 10,
        d_y: int | None = None,
        mu: float = 0.1,
        L: float = 1.0,
        seed: int = 0,
        *,
        k_range: tuple[float, float] = (0.1, 1.0),
        f_range: tuple[float, float] = (0.0, 1.0),
        rho: float = 0.1,
        spectrum_kind: Literal["linear", "log"] = "linear",
        structured: bool | None = None,
        h=None,
        y_ref=None,
        r=None,
    ):
        self.d_x = require_int("d_x", d_x, low=1)
        self.d_y = self.d_x if d_y is None else require_int("d_y", d_y, low=1)
        self.p = 2.0
        self.mu = require_range("mu", mu, low=0.0, low_inclusive=False)
        self.L = require_range("L", L, low=self.mu)
        self.rho = require_range("rho", rho, low=0.0)
        k_lo, k_hi = _range_pair("k_range", k_range, low=0.0)
        f_lo, f_hi = _range_pair("f_range", f_range)
        if structured is None:
            structured = max(self.d_x, self.d_y) > 1000
        self.structured = bool(structured)
        rng = np.random.default_rng(require_int("seed", seed, low=0))
        m = min(self.d_x, self.d_y)
        self.H = SymmetricSpectral(spectrum(self.mu, self.L, self.d_y, spectrum_kind),
                                   random_basis(self.d_y, rng, self.structured))
        q_left = random_basis(self.d_y, rng, self.structured)
        q_right = random_basis(self.d_x, rng, self.structured)
        self.K = RectangularSpectral(
            spectrum(k_lo, k_hi, m, "linear" if k_lo == 0 else spectrum_kind), q_left, q_right)
        self.F = SymmetricSpectral(
            spectrum(f_lo, f_hi, self.d_y, "linear" if f_lo <= 0 else spectrum_kind),
            random_basis(self.d_y, rng, self.structured))
        h_draw, y_draw, r_draw = (rng.standard_normal(self.d_y), rng.standard_normal(self.d_y),
                                  rng.standard_normal(self.d_x))
        self.h = h_draw if h is None else require_vector("h", h, self.d_y)
        self.y_ref = y_draw if y_ref is None else require_vector("y_ref", y_ref, self.d_y)
        self.r = r_draw if r is None else require_vector("r", r, self.d_x)
        self.constants = self._constants()

    # ---- constants ------------------------------------------------------------------------
    def _constants(self) -> Constants:
        mu, L_y = float(self.H.eigenvalues.min()), float(self.H.eigenvalues.max())
        l_g1, F_norm = self.K.norm, self.F.norm
        extra: dict[str, object] = {"kappa": L_y / mu, "structured": self.structured}
        sources = {
            "mu,L_y,L_0,C": "eigenvalues of H chosen by construction (docs/unibio.rst §2.1, p = 2)",
            "l_g1": "||∇²_xy g|| = ||K|| (docs/unibio.rst §2.1(iii))",
            "l_g2,L_H": "∇²g constant (docs/unibio.rst §2.1(iv),(v))",
            "l_f1,l_f2": "∇_x f = rho x + r, f_u = ∇_y f = F(y - y_ref) (docs/unibio.rst §2.2)",
            "l_p": "docs/unibio.rst §3.1 (DERIVED, (p l_g1/mu)^{1/(p-1)} at p = 2)",
            "L_phi1": "p = 2: the Hölder term merges into the Lipschitz term (docs/unibio.rst "
                "§3.3)",
        }
        if self.d_x <= DENSE_LIMIT:
            hess = self.hessian_phi(np.zeros(self.d_x))
            eig = np.linalg.eigvalsh(hess)
            L_phi2 = float(np.max(np.abs(eig)))
            M = self._sensitivity_matrix()
            extra["l_p_exact"] = float(np.linalg.norm(M, 2)) if M.size else 0.0
            extra["lambda_min_hessian_phi"] = float(eig[0])
            sources["L_phi2"] = "||∇²phi||_2 exactly (eigvalsh; docs/fdehbo.rst §10.1)"
            sources["l_p_exact"] = "||H^{-1}K||_2, the sharp Lipschitz constant of y*"
        else:
            L_phi2 = self.rho + F_norm * l_g1**2 / mu**2
            extra["l_p_exact"] = None
            sources["L_phi2"] = "bound rho + ||F|| ||K||²/mu² (d_x > 2000: no dense ∇²phi)"
        return Constants(
            mu=mu, p=2.0, L_0=L_y, L_1=0.0, l_g1=l_g1, l_g2=0.0, L_H=0.0, C=L_y,
            l_f1=self.rho, l_f2=F_norm, C_f=None, l_p=2.0 * l_g1 / mu,
            L_phi1=0.0, L_phi2=L_phi2, L_y=L_y, extra=extra, sources=sources,
        )

    def _sensitivity_matrix(self) -> np.ndarray:
        """dy*/dx = H^{-1}K as a dense (d_y, d_x) array (d_x columns, O(d) each)."""
        E = np.eye(self.d_x)
        return self.H.solve(self.K.matvec(E)).T

    # ---- dense views (small d) -------------------------------------------------------------
    def dense_H(self) -> np.ndarray:
        return self.H.dense()

    def dense_K(self) -> np.ndarray:
        """K as a (d_y, d_x) array; ∇²_xy g = -Kᵀ."""
        return self.K.dense()

    def dense_F(self) -> np.ndarray:
        return self.F.dense()

    def hessian_phi(self, x) -> np.ndarray:
        """∇²phi = rho I + (H^{-1}K)ᵀ F (H^{-1}K), broadcast to (..., d_x, d_x)."""
        x = self._x(x)
        M = self._sensitivity_matrix()
        hess = self.rho * np.eye(self.d_x) + M.T @ self.F.matvec(M.T).T
        hess = 0.5 * (hess + hess.T)
        return np.broadcast_to(hess, x.shape[:-1] + hess.shape).copy()

    def hessian_phi_vp(self, x, u) -> np.ndarray:
        """∇²phi u in O(d) per product (any d)."""
        x, u = self._x(x), self._x(u)
        out = self.rho * u + self.K.rmatvec(self.H.solve(self.F.matvec(
            self.H.solve(self.K.matvec(u)))))
        return _bcast(out, x)

    # ---- BilevelProblem interface -----------------------------------------------------------
    def _f(self, x, y):
        xp = self.xp
        dy = y - self.y_ref
        val = 0.5 * xp.sum(dy * self.F.matvec(dy), axis=-1)
        return val + 0.5 * self.rho * xp.sum(x * x, axis=-1) + x @ self.r

    def _g(self, x, y):
        xp = self.xp
        return 0.5 * xp.sum(y * self.H.matvec(y), axis=-1) - xp.sum(
            y * (self.K.matvec(x) + self.h), axis=-1)

    def _grad_x_f(self, x, y):
        return _bcast(self.rho * x + self.r, y)

    def _grad_y_f(self, x, y):
        return _bcast(self.F.matvec(y - self.y_ref), x)

    def _grad_x_g(self, x, y):
        return _bcast(-self.K.rmatvec(y), x)

    def _grad_y_g(self, x, y):
        return self.H.matvec(y) - self.K.matvec(x) - self.h

    def _hvp_yy_g(self, x, y, v):
        return _bcast(self.H.matvec(v), x, y)

    def _jvp_xy_g(self, x, y, v):
        return _bcast(-self.K.rmatvec(v), x, y)

    def _jvp_yx_g(self, x, y, w):
        return _bcast(-self.K.matvec(w), x, y)

    # p = 2: generalized derivatives are the classical ones (docs/unibio.rst §1.5, D = I)
    def _f_u(self, x, y):
        return self._grad_y_f(x, y)

    _gen_hvp = _hvp_yy_g
    _gen_hvp_T = _hvp_yy_g  # H symmetric

    def _solve_hessian_yy(self, x, y, rhs):
        return _bcast(self.H.solve(rhs), x, y)

    def _y_star(self, x):
        return self.H.solve(self.K.matvec(x) + self.h)

    def _grad_phi(self, x):
        ys = self._y_star(x)
        return self.rho * x + self.r + self.K.rmatvec(self.H.solve(self.F.matvec(ys - self.y_ref)))

    def __repr__(self) -> str:
        mode = "householder" if self.structured else "dense"
        return (f"StronglyConvexQuadratic(d_x={self.d_x}, d_y={self.d_y}, mu={self.mu:g}, "
                f"L={self.L:g}, {mode})")
