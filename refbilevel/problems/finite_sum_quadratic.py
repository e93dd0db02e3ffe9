"""The finite-sum quadratic benchmark of benchmark_bilevel (docs/baselines.rst §10.2).

Per-sample quadratics (x = outer variable, y = inner variable; this package's argument order
is (x, y), the benchmark's is inner first):

    g_i(x, y) = ½ yᵀA_i y + ½ xᵀB_i x + xᵀC_i y + a_iᵀy + b_iᵀx + (reg/2)||y||²,  i < n_inner
    f_j(x, y) = ½ yᵀF_j y + ½ xᵀH_j x + xᵀK_j y + f_jᵀy + h_jᵀx,                   j < n_outer

g = mean_i g_i, f = mean_j f_j. Every Hessian block is rank one and is stored as its factor:
A_i = α_i α_iᵀ, B_i = β_i β_iᵀ, C_i = γ_i δ_iᵀ (γ_i ∈ R^{d_x}, δ_i ∈ R^{d_y}), likewise
F_j, H_j, K_j; each factor family is an (n, d) array, never a (d, d) matrix per sample, so
d = 10^4 fits in memory and a product costs O(n d).

Generation, default ``bases="random"`` (the benchmark's kind of instance; DERIVED, not
bit-compatible with the benchmark's JAX streams). Every mean block has exactly the chosen
spectrum and random orthogonal eigenvectors, and phi is strongly convex by construction:

- bases: Haar orthogonal matrices (QR of a Gaussian matrix) for d <= 2000, else the O(d log d)
  randomized transform Q = C D₂ Π C D₁ (C the orthonormal DCT-II, D random signs, Π a random
  permutation; :class:`RandomizedDCTBasis`), whose columns are spread over all coordinates
  (no coordinate alignment, unlike one Householder reflection I − 2uuᵀ, whose columns stay
  within O(1/√d) of e_i);
- samples: α_i = U diag(s) Uᵀ ξ_i with the rows ξ_i of Ξ = √n Q_n, Q_n an n × d matrix with
  orthonormal columns (Haar for d <= 2000, else the first d columns of a randomized DCT of
  size n), so (1/n) Σ ξ_i ξ_iᵀ = I exactly and the empirical mean Σ α_iα_iᵀ/n = U diag(s²) Uᵀ
  is the chosen spectrum, not a random perturbation of it (this needs n >= d; with n < d the
  ξ_i are N(0, I) draws as in the benchmark); likewise the cross blocks, mean C̄ = W Σ Vᵀ;
- spectra: s² = geomspace(mu, L, d) for the y–y and x–x blocks of both levels (no zero
  eigenvalue), inner cross singular values geomspace(mu, L_cross), outer cross singular values
  the same scaled to a largest value ``coupling`` · mu (coupling in [0, 1), default 0.5).

Why phi is convex (DERIVED): φ(x) = f(x, y*(x)) with y* affine, y*(x) = J x + const,
J = −(Ā + reg I)^{-1} C̄ᵀ, so xᵀ∇²φ x = zᵀ M̄ z with z = (x, J x) and M̄ = [[H̄, K̄], [K̄ᵀ, F̄]] the
mean outer Hessian. H̄ ⪰ mu I, F̄ ⪰ mu I and ||K̄|| = coupling · mu give
zᵀM̄z >= mu ||z_x||² + mu ||z_y||² − 2 coupling mu ||z_x|| ||z_y|| >= mu (1 − coupling) ||z||², hence
λ_min(∇²φ) >= mu (1 − coupling)(1 + σ_min(J)²) >= mu (1 − coupling) > 0 for every seed, with no
redrawing (docs/design.rst: spectra by construction). It needs the whitened outer samples,
n_outer >= max(d_inner, d_outer); otherwise ``constants.extra["phi_convex_by_construction"]``
is False and λ_min(∇²φ) is only reported. The benchmark instead redraws seeds until its
value-function Hessian is positive definite.

``bases="householder"`` (registered as ``finite-sum-quadratic-householder``) is the previous
instance, kept bit for bit: with s = geomspace(√mu, √L, d) and a Householder reflection U
(the benchmark's U is the left factor of the SVD of a Gaussian d × 1 vector, which LAPACK
builds as a Householder reflection): α_i = U diag(s) U ξ_i, ξ_i ~ N(0, I), so
E[A_i] = U diag(s²) U has spectrum log-spaced in [mu, L]. The x–x blocks use
s = (0, geomspace(√mu, √L, d_x − 1)): one zero eigenvalue. Cross blocks: ξ_i ~ N(0, I_{d_y}),
δ_i = V ξ_i and γ_i = W Σ ξ_i with Householder V, W and Σ the (d_x × d_y) diagonal of
geomspace(mu, L_cross, min(d_x, d_y)), so E[C_i] = W Σ V. Linear terms are N(0, I). The
outer level uses the same mu (the benchmark passes mu_inner to both levels). Its blocks stay
aligned with the coordinate axes (one reflection moves e_i by O(1/√d)) and phi is non-convex
on many seeds.

Draw order from ``numpy.random.default_rng(seed)`` (both kinds): inner level then outer
level; within a level the y–y basis, its ξ (n × d_y), the x–x basis, its ξ (n × d_x), W, V,
the cross ξ (n × d_y), the y-linear terms (n × d_y), the x-linear terms (n × d_x).

User data: :meth:`FiniteSumQuadratic.from_factors` builds an instance from given per-sample
factors (:class:`SampleFactors`), e.g. those of an instance exported from benchmark_bilevel
(:meth:`SampleFactors.from_rank_one_matrices` factors its per-sample (n, d, d) matrices).

Closed forms: y*(x) = −(Ā + reg I)^{-1}(ā + C̄ᵀx); ∇phi by Ghadimi–Wang with the exact solve
(the benchmark's ``value`` metric is ||∇phi||²); ∇²phi = H̄ + J*ᵀF̄J* + K̄J* + (K̄J*)ᵀ with
J* = −(Ā + reg I)^{-1}C̄ᵀ (the benchmark halves the last two terms).

Lower-level solves: Cholesky of the dense mean Hessian Ā + reg I when d_inner <= 2000, and
also when n_inner >= d_inner (the d × d matrix then takes no more memory than one factor
array, and an ill-conditioned Ā would make CG slow); otherwise (d_inner > 2000 and
n_inner < d_inner, so reg > 0) a matrix-free batched conjugate gradient to relative residual
1e-12, O(n d) per product. There Ā + reg I has at most n_inner + 1 distinct eigenvalues, so CG
needs at most about n_inner + 1 iterations.

Singularity: Ā has rank <= n_inner, so n_inner < d_inner needs a ridge reg > 0 (ValueError
otherwise).

What replaces the benchmark's seed retries: one seed gives one instance and nothing is
redrawn; the default construction makes phi convex (above). λ_min(∇²phi) is reported in
``constants.extra['lambda_min_hessian_phi']`` (when d_outer, d_inner <= 2000).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.linalg

from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.problems.quadratic import (
    DENSE_LIMIT,
    DenseBasis,
    HouseholderBasis,
    RandomizedDCTBasis,
    _bcast,
)
from refbilevel.validation import (
    as_vector_batch,
    require_choice,
    require_int,
    require_matrix,
    require_range,
)

CG_RTOL = 1e-12
BASES = ("random", "householder")
#: largest rank-one residual accepted by SampleFactors.from_rank_one_matrices (relative)
RANK_ONE_RTOL = 1e-10


class SampleQuadratics:
    """One level's per-sample quadratics, q_i = ½ yᵀP_iy + ½ xᵀR_ix + xᵀC_iy + l_iᵀy + m_iᵀx.

    P_i = p_i p_iᵀ, R_i = r_i r_iᵀ, C_i = c_i e_iᵀ are stored as factor arrays ``Pyy``
    (n, d_y), ``Pxx`` (n, d_x), ``Cx`` (n, d_x), ``Cy`` (n, d_y); ``ly`` (n, d_y) and ``lx``
    (n, d_x) are the linear terms; ``reg`` adds (reg/2)||y||² to every sample. ``idx`` is
    None (all samples) or an integer array of shape (..., B) whose leading axes broadcast
    with the replicas; results are means over the B samples (repeats count twice).
    """

    def __init__(self, Pyy, Pxx, Cx, Cy, ly, lx, reg: float = 0.0):
        self.Pyy, self.Pxx, self.Cx, self.Cy, self.ly, self.lx = Pyy, Pxx, Cx, Cy, ly, lx
        self.reg = reg
        self.n = Pyy.shape[0]
        for arr in (Pyy, Pxx, Cx, Cy, ly, lx):
            arr.setflags(write=False)
        self.ly_mean, self.lx_mean = ly.mean(axis=0), lx.mean(axis=0)
        self._all = np.arange(self.n)

    def _selection(self, idx, *points):
        """idx, or None when it selects every sample once and in order in every row (the
        deterministic full batch, whose rows are all arange(n)) and adds no leading axes to
        the points': the data are then used in place instead of gathered, which copied
        (R, n, d) per factor and call (PZOBO on the d = 100 finite sum spent most of its
        NumPy time there). Same means, summed in BLAS's order instead of the gather's."""
        if idx is None or idx.shape[-1] != self.n:
            return idx
        lead = np.broadcast_shapes(*(np.shape(p)[:-1] for p in points))
        if np.broadcast_shapes(idx.shape[:-1], lead) != lead:
            return idx
        return None if np.array_equal(idx, np.broadcast_to(self._all, idx.shape)) else idx

    # dot products <P_i, v> for the selected samples, shape (..., B)
    @staticmethod
    def _coef(P, idx, v):
        if idx is None:
            return v @ P.T
        if idx.ndim == 1:
            return v @ P[idx].T
        return (P[idx] @ v[..., None])[..., 0]

    # mean over the selected samples of s_i P_i, shape (..., d)
    @staticmethod
    def _combine(P, idx, s):
        if idx is None:
            return (s @ P) / P.shape[0]
        if idx.ndim == 1:
            return (s @ P[idx]) / idx.shape[0]
        return (s[..., None, :] @ P[idx])[..., 0, :] / idx.shape[-1]

    @staticmethod
    def _mean_rows(l, idx, full_mean):
        return full_mean if idx is None else l[idx].mean(axis=-2)

    def value(self, x, y, idx=None):
        idx = self._selection(idx, x, y)
        c = self._coef
        s = (0.5 * c(self.Pyy, idx, y) ** 2 + 0.5 * c(self.Pxx, idx, x) ** 2
             + c(self.Cx, idx, x) * c(self.Cy, idx, y) + c(self.ly, idx, y) + c(self.lx, idx, x))
        return s.mean(axis=-1) + 0.5 * self.reg * np.sum(y * y, axis=-1)

    def grad_y(self, x, y, idx=None):
        idx = self._selection(idx, x, y)
        c, m = self._coef, self._combine
        return (m(self.Pyy, idx, c(self.Pyy, idx, y)) + m(self.Cy, idx, c(self.Cx, idx, x))
                + self._mean_rows(self.ly, idx, self.ly_mean) + self.reg * y)

    def grad_x(self, x, y, idx=None):
        idx = self._selection(idx, x, y)
        c, m = self._coef, self._combine
        return (m(self.Pxx, idx, c(self.Pxx, idx, x)) + m(self.Cx, idx, c(self.Cy, idx, y))
                + self._mean_rows(self.lx, idx, self.lx_mean))

    def hvp_yy(self, v, idx=None):
        idx = self._selection(idx, v)
        return self._combine(self.Pyy, idx, self._coef(self.Pyy, idx, v)) + self.reg * v

    def hvp_xx(self, u, idx=None):
        idx = self._selection(idx, u)
        return self._combine(self.Pxx, idx, self._coef(self.Pxx, idx, u))

    def jvp_xy(self, v, idx=None):
        """mean C_i v ∈ R^{d_x} (∇²_xy q = C_i, docs/baselines.rst §0.1 ``cross``)."""
        idx = self._selection(idx, v)
        return self._combine(self.Cx, idx, self._coef(self.Cy, idx, v))

    def jvp_yx(self, w, idx=None):
        """mean C_iᵀ w ∈ R^{d_y}."""
        idx = self._selection(idx, w)
        return self._combine(self.Cy, idx, self._coef(self.Cx, idx, w))

    # dense means (small d only)
    def mean_yy(self):
        return self.Pyy.T @ self.Pyy / self.n + self.reg * np.eye(self.Pyy.shape[1])

    def mean_xx(self):
        return self.Pxx.T @ self.Pxx / self.n

    def mean_cross(self):
        """C̄ = mean C_i, shape (d_x, d_y)."""
        return self.Cx.T @ self.Cy / self.n


@dataclass(frozen=True)
class SampleFactors:
    """One level's per-sample rank-one factors (module docstring): sample i's quadratic is
    ½(yy_iᵀy)² + ½(xx_iᵀx)² + (cross_x_iᵀx)(cross_y_iᵀy) + linear_y_iᵀy + linear_x_iᵀx, i.e.
    the Hessian blocks yy_i yy_iᵀ, xx_i xx_iᵀ and cross_x_i cross_y_iᵀ (∂²/∂x∂y). Arrays of
    shape (n, d_y), (n, d_x), (n, d_x), (n, d_y), (n, d_y), (n, d_x)."""

    yy: np.ndarray
    xx: np.ndarray
    cross_x: np.ndarray
    cross_y: np.ndarray
    linear_y: np.ndarray
    linear_x: np.ndarray

    def validated(self, name: str) -> SampleFactors:
        """Float64 copies with consistent shapes (ValueError naming the field otherwise)."""
        yy = require_matrix(f"{name}.yy", self.yy, (None, None))
        n, d_y = yy.shape
        d_x = require_matrix(f"{name}.xx", self.xx, (n, None)).shape[1]
        shapes = {"yy": (n, d_y), "xx": (n, d_x), "cross_x": (n, d_x), "cross_y": (n, d_y),
                  "linear_y": (n, d_y), "linear_x": (n, d_x)}
        return SampleFactors(**{f.name: np.array(require_matrix(
            f"{name}.{f.name}", getattr(self, f.name), shapes[f.name]), dtype=np.float64)
            for f in fields(self)})

    @classmethod
    def from_rank_one_matrices(cls, hess_y, hess_x, cross, linear_y, linear_x,
                               rtol: float = RANK_ONE_RTOL) -> SampleFactors:
        """Factors of per-sample rank-one matrices, as benchmark_bilevel stores them
        (``hess_inner`` (n, d_y, d_y), ``hess_outer`` (n, d_x, d_x), ``cross`` (n, d_x, d_y),
        ``linear_inner``, ``linear_outer``): A = a aᵀ (PSD) gives a = A[:, k]/√A[k, k] at the
        largest diagonal entry k, C = c eᵀ gives c = C[:, j], e = C[k, :]/C[k, j] at its
        largest entry (k, j). ValueError if a matrix is not rank one (PSD for A) to ``rtol``
        relative, measured as ||A − a aᵀ||_max / max(1, ||A||_max)."""
        def psd_factor(A, name):
            A = np.asarray(A, dtype=np.float64)
            if A.ndim != 3 or A.shape[1] != A.shape[2]:
                raise ValueError(f"{name} must have shape (n, d, d), got {A.shape}")
            diag = np.diagonal(A, axis1=1, axis2=2)
            k = np.argmax(diag, axis=1)
            rows = np.arange(A.shape[0])
            top = diag[rows, k]
            a = np.where(top[:, None] > 0, A[rows, :, k] / np.sqrt(np.maximum(top, 1e-300))[
                :, None], 0.0)
            _check_rank_one(A, a[:, :, None] * a[:, None, :], name, rtol)
            return a

        C = np.asarray(cross, dtype=np.float64)
        if C.ndim != 3:
            raise ValueError(f"cross must have shape (n, d_x, d_y), got {C.shape}")
        flat = np.abs(C).reshape(C.shape[0], -1).argmax(axis=1)
        rows = np.arange(C.shape[0])
        k, j = np.unravel_index(flat, C.shape[1:])
        pivot = C[rows, k, j]
        safe = np.where(pivot != 0, pivot, 1.0)
        cx = C[rows, :, j]
        cy = np.where(pivot[:, None] != 0, C[rows, k, :] / safe[:, None], 0.0)
        _check_rank_one(C, cx[:, :, None] * cy[:, None, :], "cross", rtol)
        return cls(psd_factor(hess_y, "hess_y"), psd_factor(hess_x, "hess_x"), cx, cy,
                   np.asarray(linear_y, dtype=np.float64),
                   np.asarray(linear_x, dtype=np.float64))

    def rank_one_matrices(self) -> tuple[np.ndarray, ...]:
        """The per-sample matrices (hess_y, hess_x, cross, linear_y, linear_x): the inverse of
        :meth:`from_rank_one_matrices` (small n and d: O(n d²) memory)."""
        return (self.yy[:, :, None] * self.yy[:, None, :],
                self.xx[:, :, None] * self.xx[:, None, :],
                self.cross_x[:, :, None] * self.cross_y[:, None, :],
                self.linear_y.copy(), self.linear_x.copy())


def _check_rank_one(M, approx, name, rtol):
    err = np.max(np.abs(M - approx), axis=(1, 2)) / np.maximum(
        1.0, np.max(np.abs(M), axis=(1, 2)))
    if np.any(err > rtol):
        i = int(np.argmax(err))
        raise ValueError(f"{name}[{i}] is not a rank-one{' PSD' if 'hess' in name else ''} "
                         f"matrix: relative residual {err[i]:.3g} > {rtol:g}")


def _householder(d: int, rng: np.random.Generator) -> HouseholderBasis:
    return HouseholderBasis(rng.standard_normal(d))


def _rotation(d: int, rng: np.random.Generator):
    """A random orthogonal basis without coordinate alignment (module docstring)."""
    if d <= DENSE_LIMIT:  # Haar: the Q of a Gaussian matrix with a positive-diagonal R
        return DenseBasis(_orthonormal_columns(rng.standard_normal((d, d))))
    return RandomizedDCTBasis(d, rng)


def _whitened(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """Ξ (n × d) with ΞᵀΞ = n I exactly when n >= d (√n times orthonormal columns); with
    n < d, N(0, 1) draws (no whitening is possible)."""
    if n < d:
        return rng.standard_normal((n, d))
    if d <= DENSE_LIMIT:
        return np.sqrt(n) * _orthonormal_columns(rng.standard_normal((n, d)))
    return np.sqrt(n) * RandomizedDCTBasis(n, rng).apply(np.eye(d, n)).T


def _orthonormal_columns(G: np.ndarray) -> np.ndarray:
    """G R^{-1} with R the positive-diagonal Cholesky factor of GᵀG, twice (CholeskyQR2):
    the Q of G's QR decomposition (Haar on the Stiefel manifold for Gaussian G), orthonormal
    to rounding while cond(G)² << 1/eps, at matrix-multiply speed (LAPACK's Householder QR
    is many times slower on the tall (n, d) arrays here)."""
    Q = G
    for _ in range(2):
        R = np.linalg.cholesky(Q.T @ Q).T
        Q = scipy.linalg.solve_triangular(R, Q.T, trans="T", lower=False).T
    return Q


def _sym_factors(n, d, s, rng, bases):
    """n rows (U diag(s) Uᵀ ξ_i)ᵀ: mean rowᵀrow = U diag(s²) Uᵀ (exactly when whitened)."""
    if bases == "householder":
        U = _householder(d, rng)
        xi = rng.standard_normal((n, d))
        return U.apply(U.apply(xi) * s)
    U = _rotation(d, rng)
    xi = _whitened(n, d, rng)
    return U.apply(U.apply_T(xi) * s)


def _cross_factors(n, d_x, d_y, sv, rng, bases):
    """γ_i = W Σ ξ_i, δ_i = V ξ_i, ξ_i ∈ R^{d_y}: mean γ δᵀ = W Σ Vᵀ (exactly when whitened)."""
    if bases == "householder":
        W, V = _householder(d_x, rng), _householder(d_y, rng)
        xi = rng.standard_normal((n, d_y))
    else:
        W, V = _rotation(d_x, rng), _rotation(d_y, rng)
        xi = _whitened(n, d_y, rng)
    k = sv.shape[0]
    z = np.zeros((n, d_x))
    z[:, :k] = xi[:, :k] * sv
    return W.apply(z), V.apply(xi)


def _level(n, d_x, d_y, mu, L_yy, L_xx, cross_sv, reg, rng, bases) -> SampleQuadratics:
    s_yy = np.geomspace(np.sqrt(mu), np.sqrt(L_yy), d_y)
    Pyy = _sym_factors(n, d_y, s_yy, rng, bases)
    if bases == "householder":  # the benchmark's one zero eigenvalue in the x–x blocks
        s_xx = np.concatenate([[0.0], np.geomspace(np.sqrt(mu), np.sqrt(L_xx), d_x - 1)])
    else:
        s_xx = np.geomspace(np.sqrt(mu), np.sqrt(L_xx), d_x)
    Pxx = _sym_factors(n, d_x, s_xx, rng, bases)
    Cx, Cy = _cross_factors(n, d_x, d_y, cross_sv, rng, bases)
    ly = rng.standard_normal((n, d_y))
    lx = rng.standard_normal((n, d_x))
    return SampleQuadratics(Pyy, Pxx, Cx, Cy, ly, lx, reg)


def _gram_norm(P: np.ndarray) -> float:
    """||PᵀP||_2 through the smaller Gram matrix (equal non-zero spectra)."""
    G = P @ P.T if P.shape[0] <= P.shape[1] else P.T @ P
    return float(np.linalg.eigvalsh(G)[-1]) if G.size else 0.0


def _cross_norm(A: np.ndarray, B: np.ndarray) -> float:
    """||AᵀB||_2 for A (n, a), B (n, b), via an n × n problem when a, b are large."""
    a, b = A.shape[1], B.shape[1]
    if min(a, b) <= DENSE_LIMIT:
        return float(np.linalg.norm(A.T @ B, 2))
    # ||AᵀB||² = λ_max(AAᵀ BBᵀ) = λ_max(S BBᵀ S), S = (AAᵀ)^{1/2}
    ev, Q = np.linalg.eigh(A @ A.T)
    S = (Q * np.sqrt(np.clip(ev, 0.0, None))) @ Q.T
    return float(np.sqrt(max(np.linalg.eigvalsh(S @ (B @ B.T) @ S)[-1], 0.0)))


def batched_cg(matvec, b: np.ndarray, *, rtol: float = CG_RTOL,
               maxiter: int | None = None) -> np.ndarray:
    """Solve M y = b for symmetric positive definite M, batched over the leading axes of b.

    Stops each replica at ||b − M y|| <= rtol ||b|| measured on the true residual (the
    recursive residual drifts in floating point, so CG restarts from the current iterate
    up to three times). Raises RuntimeError when a replica does not reach rtol.
    """
    d = b.shape[-1]
    maxiter = 10 * d + 100 if maxiter is None else maxiter
    bnorm = np.linalg.norm(b, axis=-1)
    y = np.zeros_like(b)
    for _restart in range(4):
        r = b - matvec(y)
        rs = np.sum(r * r, axis=-1)
        target = (rtol * bnorm) ** 2
        if np.all(rs <= target):
            return y
        p = r.copy()
        for _ in range(maxiter):
            active = rs > target * 0.25  # aim below rtol so the true residual meets it
            if not np.any(active):
                break
            Mp = matvec(p)
            pMp = np.sum(p * Mp, axis=-1)
            alpha = np.where(active, rs / np.where(active, pMp, 1.0), 0.0)
            y = y + alpha[..., None] * p
            r = r - alpha[..., None] * Mp
            rs_new = np.sum(r * r, axis=-1)
            beta = np.where(active, rs_new / np.where(active, rs, 1.0), 0.0)
            p = np.where(active[..., None], r + beta[..., None] * p, p)
            rs = np.where(active, rs_new, rs)
    res = np.linalg.norm(b - matvec(y), axis=-1)
    worst = float(np.max(res / np.where(bnorm > 0, bnorm, 1.0)))
    if worst > rtol:
        raise RuntimeError(f"conjugate gradient reached relative residual {worst:.3g} > {rtol:g}")
    return y


class FiniteSumQuadratic(BilevelProblem):
    """The finite-sum quadratic of benchmark_bilevel (docs/baselines.rst §10.2).

    Parameters and defaults are the benchmark's: mu = 0.1, L = 1 (every "L" of the
    benchmark: L_inner_inner, L_inner_outer, L_outer_inner, L_outer_outer), L_cross = 0.1
    (the inner level; the outer cross block is scaled by ``coupling``, see the module
    docstring), n_inner = n_outer = 1024, d_inner = d_outer = 100. Initial points
    ``x0 = −2·1`` and ``y0 = 0``. ``reg >= 0`` adds (reg/2)||y||² to every g_i; it must be
    positive when n_inner < d_inner (the mean Hessian is then singular). ``seed`` seeds a
    ``numpy.random.Generator``; ``bases`` is "random" (default: random orthogonal bases,
    exact spectra, phi convex by construction) or "householder" (the previous instance);
    see the module docstring for the generation, the convexity argument and the draw order.
    :meth:`from_factors` builds an instance from given per-sample factors.

    Minibatch evaluations (``*_batch`` methods) take ``idx``, an integer array of shape
    (..., B) with entries in [0, n) whose leading axes broadcast with the replicas, and
    return the mean over those B samples: an unbiased estimate of the full-mean quantity
    when idx is drawn uniformly.
    """

    name = "finite-sum-quadratic"
    hessian_independent_of_y = True
    #: the generation parameters (None for an instance from user factors)
    mu_param: float | None
    L_param: float | None
    L_cross: float | None
    coupling: float | None

    def __init__(
        self,
        n_inner: int = 1024,
        n_outer: int = 1024,
        d_inner: int = 100,
        d_outer: int = 100,
        mu: float = 0.1,
        L: float = 1.0,
        L_cross: float = 0.1,
        seed: int = 0,
        *,
        reg: float = 0.0,
        bases: str = "random",
        coupling: float = 0.5,
    ):
        n_inner = require_int("n_inner", n_inner, low=1)
        n_outer = require_int("n_outer", n_outer, low=1)
        d_y = require_int("d_inner", d_inner, low=1)
        d_x = require_int("d_outer", d_outer, low=1)
        self.mu_param = require_range("mu", mu, low=0.0, low_inclusive=False)
        self.L_param = require_range("L", L, low=self.mu_param)
        self.L_cross = require_range("L_cross", L_cross, low=0.0, low_inclusive=False)
        self.bases = require_choice("bases", bases, BASES)
        self.coupling = require_range("coupling", coupling, low=0.0, high=1.0,
                                      high_inclusive=False)
        reg = require_range("reg", reg, low=0.0)
        _require_ridge(n_inner, d_y, reg)
        rng = np.random.default_rng(require_int("seed", seed, low=0))
        mu, L_ = self.mu_param, self.L_param
        m = min(d_x, d_y)
        inner_sv = np.geomspace(mu, self.L_cross, m)
        # outer cross block: ||K̄|| = coupling · mu keeps M̄ ⪰ mu (1 − coupling) I (docstring)
        outer_sv = (inner_sv if self.bases == "householder"
                    else inner_sv * (self.coupling * mu / max(mu, self.L_cross)))
        inner = _level(n_inner, d_x, d_y, mu, L_, L_, inner_sv, reg, rng, self.bases)
        outer = _level(n_outer, d_x, d_y, mu, L_, L_, outer_sv, 0.0, rng, self.bases)
        convex = self.bases == "random" and n_outer >= max(d_x, d_y)
        self._assemble(inner, outer, reg, {
            "mu_population": mu, "L_population": L_, "bases": self.bases,
            "phi_convex_by_construction": convex,
            "lambda_min_hessian_phi_lower_bound": mu * (1.0 - self.coupling) if convex
            else None})

    @classmethod
    def from_factors(cls, inner: SampleFactors, outer: SampleFactors, *, reg: float = 0.0,
                     x0=None, y0=None) -> FiniteSumQuadratic:
        """An instance from given per-sample factors (e.g. exported from benchmark_bilevel:
        :meth:`SampleFactors.from_rank_one_matrices`). ``reg`` adds (reg/2)||y||² to every
        g_i (required > 0 when the inner factors do not span R^{d_y}); ``x0``, ``y0`` default
        to −2·1 and 0 as in the benchmark."""
        inner = inner.validated("inner")
        outer = outer.validated("outer")
        if (inner.yy.shape[1], inner.xx.shape[1]) != (outer.yy.shape[1], outer.xx.shape[1]):
            raise ValueError(f"inner and outer factors must have the same (d_inner, d_outer), "
                             f"got {(inner.yy.shape[1], inner.xx.shape[1])} and "
                             f"{(outer.yy.shape[1], outer.xx.shape[1])}")
        reg = require_range("reg", reg, low=0.0)
        self = cls.__new__(cls)
        self.mu_param = self.L_param = self.L_cross = None
        self.bases, self.coupling = "user", None
        _require_ridge(inner.yy.shape[0], inner.yy.shape[1], reg)
        self._assemble(_quadratics(inner, reg), _quadratics(outer, 0.0), reg,
                       {"bases": "user", "phi_convex_by_construction": False})
        if x0 is not None:
            self.x0 = as_vector_batch("x0", x0, self.d_x).reshape(self.d_x)
        if y0 is not None:
            self.y0 = as_vector_batch("y0", y0, self.d_y).reshape(self.d_y)
        return self

    def factors(self) -> tuple[SampleFactors, SampleFactors]:
        """(inner, outer) per-sample factors; :meth:`from_factors` of them (with the same
        ``reg``) is this instance."""
        return tuple(SampleFactors(q.Pyy.copy(), q.Pxx.copy(), q.Cx.copy(), q.Cy.copy(),
                                   q.ly.copy(), q.lx.copy())
                     for q in (self.inner, self.outer))  # type: ignore[return-value]

    def _assemble(self, inner: SampleQuadratics, outer: SampleQuadratics, reg: float,
                  extra: dict) -> None:
        self.inner, self.outer, self.reg = inner, outer, reg
        self.n_inner, self.n_outer = inner.n, outer.n
        self.d_y = self.d_inner = inner.Pyy.shape[1]
        self.d_x = self.d_outer = inner.Pxx.shape[1]
        self.p = 2.0
        self.x0 = np.full(self.d_x, -2.0)
        self.y0 = np.zeros(self.d_y)
        self._chol = None
        if self._dense_inner:
            self._chol = scipy.linalg.cho_factor(self.inner.mean_yy(), lower=True)
        self.constants = self._constants(extra)

    # ---- constants ---------------------------------------------------------------------
    def _constants(self, extra: dict) -> Constants:
        g, f = self.inner, self.outer
        n = self.n_inner
        extra = {**extra, "reg": self.reg}
        sources = {
            "mu,L_y": "spectrum of the empirical mean Ā + reg I (docs/baselines.rst §10.2)",
            "l_g1": "||C̄||_2 = ||∇²_xy g|| (docs/unibio.rst §2.1(iii))",
            "l_f1,l_f2": "joint Lipschitz constants max(||H̄||, ||K̄||), max(||F̄||, ||K̄||)",
            "l_p": "docs/unibio.rst §3.1 (DERIVED) at p = 2: 2 l_g1/mu",
        }
        if self._dense_inner:
            ev = np.linalg.eigvalsh(g.mean_yy())
            mu, L_y = float(ev[0]), float(ev[-1])
        else:
            L_y = _gram_norm(g.Pyy) / n + self.reg
            mu = self.reg  # rank(Ā) <= n < d: λ_min(Ā) = 0 exactly
        l_g1 = _cross_norm(g.Cx, g.Cy) / n
        H_norm = _gram_norm(f.Pxx) / self.n_outer
        F_norm = _gram_norm(f.Pyy) / self.n_outer
        K_norm = _cross_norm(f.Cx, f.Cy) / self.n_outer
        if self.d_x <= DENSE_LIMIT and self.d_y <= DENSE_LIMIT:
            eig = np.linalg.eigvalsh(self.hessian_phi())
            L_phi2 = float(np.max(np.abs(eig)))
            extra["lambda_min_hessian_phi"] = float(eig[0])
            extra["phi_strongly_convex"] = bool(eig[0] > 0)
            sources["L_phi2"] = "||∇²phi||_2 exactly (eigvalsh of the constant ∇²phi)"
        else:
            L_phi2 = H_norm + F_norm * l_g1**2 / mu**2 + 2.0 * K_norm * l_g1 / mu
            sources["L_phi2"] = "bound ||H̄|| + ||F̄|| l_g1²/mu² + 2||K̄|| l_g1/mu (large d)"
        return Constants(
            mu=mu, p=2.0, L_0=L_y, L_1=0.0, l_g1=l_g1, l_g2=0.0, L_H=0.0, C=L_y,
            l_f1=max(H_norm, K_norm), l_f2=max(F_norm, K_norm), C_f=None,
            l_p=2.0 * l_g1 / mu, L_phi1=0.0, L_phi2=L_phi2, L_y=L_y,
            extra=extra, sources=sources,
        )

    @property
    def _dense_inner(self) -> bool:
        """Dense Cholesky of Ā + reg I (see the module docstring) rather than CG."""
        return self.d_y <= DENSE_LIMIT or self.n_inner >= self.d_y

    def hessian_phi(self) -> np.ndarray:
        """∇²phi = H̄ + J*ᵀF̄J* + K̄J* + (K̄J*)ᵀ, J* = −(Ā + reg I)^{-1}C̄ᵀ (d <= 2000)."""
        if max(self.d_x, self.d_y) > DENSE_LIMIT:
            raise ValueError(f"hessian_phi needs d_inner, d_outer <= {DENSE_LIMIT}")
        g, f = self.inner, self.outer
        J = -scipy.linalg.cho_solve(self._chol, g.mean_cross().T)
        KJ = f.mean_cross() @ J
        hess = f.mean_xx() + J.T @ (f.Pyy.T @ (f.Pyy @ J)) / self.n_outer + KJ + KJ.T
        return 0.5 * (hess + hess.T)

    # ---- index validation ----------------------------------------------------------------
    @staticmethod
    def _idx(idx, n: int, name: str = "idx") -> np.ndarray:
        arr = np.asarray(idx)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must be a non-empty integer array of shape (..., B), "
                             f"got dtype {arr.dtype} and shape {arr.shape}")
        if arr.min() < 0 or arr.max() >= n:
            raise ValueError(f"{name} entries must lie in [0, {n - 1}], got range "
                             f"[{arr.min()}, {arr.max()}]")
        return arr

    def _ii(self, idx):
        return self._idx(idx, self.n_inner)

    def _io(self, idx):
        return self._idx(idx, self.n_outer)

    # ---- minibatch evaluations (for a minibatch oracle) -----------------------------------
    def g_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._ii(idx)
        return self.inner.value(x, y, i)

    def f_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._io(idx)
        return self.outer.value(x, y, i)

    def grad_y_g_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._ii(idx)
        return _bcast(self.inner.grad_y(x, y, i), x, y)

    def grad_x_g_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._ii(idx)
        return _bcast(self.inner.grad_x(x, y, i), x, y)

    def hvp_yy_g_batch(self, x, y, v, idx) -> np.ndarray:
        x, y, v, i = self._x(x), self._y(y), self._y(v, "v"), self._ii(idx)
        return _bcast(self.inner.hvp_yy(v, i), x, y, v)

    def jvp_xy_g_batch(self, x, y, v, idx) -> np.ndarray:
        """mean over the batch of ∇²_xy g_i v = C_i v ∈ R^{d_x}."""
        x, y, v, i = self._x(x), self._y(y), self._y(v, "v"), self._ii(idx)
        return _bcast(self.inner.jvp_xy(v, i), x, y, v)

    def jvp_yx_g_batch(self, x, y, w, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._ii(idx)
        w = as_vector_batch("w", w, self.d_x)
        return _bcast(self.inner.jvp_yx(w, i), x, y, w)

    def grad_x_f_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._io(idx)
        return _bcast(self.outer.grad_x(x, y, i), x, y)

    def grad_y_f_batch(self, x, y, idx) -> np.ndarray:
        x, y, i = self._x(x), self._y(y), self._io(idx)
        return _bcast(self.outer.grad_y(x, y, i), x, y)

    # ---- BilevelProblem interface (full means) --------------------------------------------
    def _f(self, x, y):
        return self.outer.value(x, y)

    def _g(self, x, y):
        return self.inner.value(x, y)

    def _grad_x_f(self, x, y):
        return _bcast(self.outer.grad_x(x, y), x, y)

    def _grad_y_f(self, x, y):
        return _bcast(self.outer.grad_y(x, y), x, y)

    def _grad_x_g(self, x, y):
        return _bcast(self.inner.grad_x(x, y), x, y)

    def _grad_y_g(self, x, y):
        return _bcast(self.inner.grad_y(x, y), x, y)

    def _hvp_yy_g(self, x, y, v):
        return _bcast(self.inner.hvp_yy(v), x, y, v)

    def _jvp_xy_g(self, x, y, v):
        return _bcast(self.inner.jvp_xy(v), x, y, v)

    def _jvp_yx_g(self, x, y, w):
        return _bcast(self.inner.jvp_yx(w), x, y, w)

    def _f_u(self, x, y):
        return self._grad_y_f(x, y)

    _gen_hvp = _hvp_yy_g
    _gen_hvp_T = _hvp_yy_g

    def _solve_hessian_yy(self, x, y, rhs):
        """(Ā + reg I)^{-1} rhs: Cholesky or CG to rtol 1e-12 (see the module docstring)."""
        if self._chol is not None:
            flat = rhs.reshape(-1, self.d_y).T
            out = scipy.linalg.cho_solve(self._chol, flat).T.reshape(rhs.shape)
        else:
            out = batched_cg(self.inner.hvp_yy, rhs)
        return _bcast(out, x, y)

    def _y_star(self, x):
        rhs = -(self.inner.jvp_yx(x) + self.inner.ly_mean)
        return self._solve_hessian_yy(x, rhs, rhs)

    def __repr__(self) -> str:
        return (f"FiniteSumQuadratic(n_inner={self.n_inner}, n_outer={self.n_outer}, "
                f"d_inner={self.d_inner}, d_outer={self.d_outer}, reg={self.reg:g}, "
                f"bases={self.bases!r})")


def _quadratics(f: SampleFactors, reg: float) -> SampleQuadratics:
    return SampleQuadratics(f.yy, f.xx, f.cross_x, f.cross_y, f.linear_y, f.linear_x, reg)


def _require_ridge(n_inner: int, d_inner: int, reg: float) -> None:
    if n_inner < d_inner and reg == 0.0:
        raise ValueError(
            f"n_inner must lie in [{d_inner}, inf) (at least d_inner) when reg = 0 "
            f"(the mean lower-level Hessian has rank <= n_inner), got n_inner = "
            f"{n_inner}; pass reg > 0 to use fewer samples"
        )


def householder_instance(n_inner: int = 1024, n_outer: int = 1024, d_inner: int = 100,
                         d_outer: int = 100, mu: float = 0.1, L: float = 1.0,
                         L_cross: float = 0.1, seed: int = 0, *,
                         reg: float = 0.0) -> FiniteSumQuadratic:
    """The previous finite-sum quadratic, one Householder reflection per basis.

    Its blocks stay aligned with the coordinate axes and phi is non-convex on many seeds
    (λ_min(∇²phi) from -0.108 to -0.062 on seeds 0-19 at the defaults); see the module
    docstring."""
    return FiniteSumQuadratic(n_inner, n_outer, d_inner, d_outer, mu, L, L_cross, seed,
                              reg=reg, bases="householder")
