"""Bilevel problems with a lower-level contraction (Grazzi, Pontil, Salzo, JMLR 2023).

    min_λ f(λ) = E(w(λ), λ)   s.t.   w(λ) = Φ(w(λ), λ)          (docs/sid_bsgm.rst §2, eq. (1))

with Φ(·, λ) a contraction: ||∂₁Φ|| <= q < 1. The lower level is a fixed point, not an
argmin, so these problems do not fit :class:`~refbilevel.problems.base.BilevelProblem`;
:class:`FixedPointProblem` is their interface. The hypergradient is (docs/sid_bsgm.rst §3, eq. (4))

    ∇f(λ) = ∇₂E(w(λ), λ) + ∂₂Φ(w(λ), λ)ᵀ v,   v = (I − ∂₁Φᵀ)^{-1} ∇₁E        (LS)

Conventions: w has shape (..., d), λ shape (..., n); leading (replica) axes broadcast;
``vjp_w(w, lam, v)`` = ∂₁Φᵀv, ``vjp_lam(w, lam, v)`` = ∂₂Φᵀv ∈ R^n (the oracles of
docs/sid_bsgm.rst §4.1 without the sample), ``jvp_w``/``jvp_lam`` the untransposed products.

Problems (docs/sid_bsgm.rst §14, DERIVED and numerically checked there):

- :class:`LinearContraction` — Φ = Aw + Bλ + c, quadratic E (§14.1), with the Gaussian
  oracle noise levels of §14.1 as attributes; :func:`golden_instance` is the §14.1 golden
  instance.
- :func:`gd_map_contraction` — the gradient-descent map of a strongly convex quadratic (§14.2).
- :class:`RidgeContraction` — ridge-regularization hyperparameter, non-linear in λ (§14.3).
"""

from __future__ import annotations

import abc
from typing import ClassVar, NamedTuple

import numpy as np
import scipy.linalg

from refbilevel.problems.constants import Constants
from refbilevel.validation import (
    as_vector_batch,
    require_matrix,
    require_range,
    require_square_matrix,
    require_vector,
)


def _lead(*arrays: np.ndarray) -> tuple[int, ...]:
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


def _bcast(out: np.ndarray, *arrays: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(out.shape[:-1], _lead(*arrays)) + out.shape[-1:]
    return out if out.shape == shape else np.broadcast_to(out, shape).copy()


def _symmetric(name: str, M, dim: int) -> np.ndarray:
    M = require_square_matrix(name, M, dim)
    if not np.allclose(M, M.T, rtol=0.0, atol=1e-12 * max(1.0, float(np.abs(M).max(initial=0)))):
        raise ValueError(f"{name} must be symmetric")
    return 0.5 * (M + M.T)


def contraction_modulus(A: np.ndarray) -> float:
    """q = ||A||_2, validated to lie in [0, 1) (docs/sid_bsgm.rst §6, Assumption A(i))."""
    q = float(np.linalg.norm(A, 2)) if A.size else 0.0
    return require_range("q", q, low=0.0, high=1.0, high_inclusive=False)


class FixedPointProblem(abc.ABC):
    """A bilevel problem whose lower level is the fixed point of a contraction (see module).

    Subclasses implement the underscored methods on validated float64 arrays and set
    ``d``, ``n`` and ``constants`` (whose ``extra`` holds docs/sid_bsgm.rst's names: q, L_f, ...).
    """

    name: ClassVar[str] = "abstract-fixed-point"
    d: int
    n: int
    constants: Constants
    x0: np.ndarray | None = None  # a default start λ_0, where the instance has one

    # ---- validation ----------------------------------------------------------------------
    def _w(self, w, name: str = "w") -> np.ndarray:
        return as_vector_batch(name, w, self.d)

    def _lam(self, lam, name: str = "lam") -> np.ndarray:
        return as_vector_batch(name, lam, self.n)

    @property
    def q(self) -> float:
        """The contraction modulus sup ||∂₁Φ|| (Assumption A(i))."""
        return float(self.constants.extra["q"])

    # ---- the map and its products -----------------------------------------------------------
    def phi_map(self, w, lam) -> np.ndarray:
        """Φ(w, λ) ∈ R^d."""
        return self._phi_map(self._w(w), self._lam(lam))

    def vjp_w(self, w, lam, v) -> np.ndarray:
        """∂₁Φ(w, λ)ᵀ v ∈ R^d."""
        return self._vjp_w(self._w(w), self._lam(lam), self._w(v, "v"))

    def vjp_lam(self, w, lam, v) -> np.ndarray:
        """∂₂Φ(w, λ)ᵀ v ∈ R^n."""
        return self._vjp_lam(self._w(w), self._lam(lam), self._w(v, "v"))

    def jvp_w(self, w, lam, u) -> np.ndarray:
        """∂₁Φ(w, λ) u ∈ R^d for u ∈ R^d."""
        return self._jvp_w(self._w(w), self._lam(lam), self._w(u, "u"))

    def jvp_lam(self, w, lam, u) -> np.ndarray:
        """∂₂Φ(w, λ) u ∈ R^d for u ∈ R^n."""
        return self._jvp_lam(self._w(w), self._lam(lam), self._lam(u, "u"))

    def jacobian_w(self, w, lam) -> np.ndarray:
        """∂₁Φ as a (..., d, d) array (small d; tests)."""
        w, lam = self._w(w), self._lam(lam)
        cols = []
        for j in range(self.d):
            e = np.zeros(_lead(w, lam) + (self.d,))
            e[..., j] = 1.0
            cols.append(self._jvp_w(w, lam, e))
        return np.stack(cols, axis=-1)

    # ---- upper level ---------------------------------------------------------------------
    def E(self, w, lam) -> np.ndarray:
        """E(w, λ), shape (...)."""
        return self._E(self._w(w), self._lam(lam))

    def grad_E(self, w, lam) -> tuple[np.ndarray, np.ndarray]:
        """(∇₁E(w, λ), ∇₂E(w, λ)), shapes (..., d) and (..., n)."""
        return self._grad_E(self._w(w), self._lam(lam))

    # ---- ground truth --------------------------------------------------------------------
    def w_star(self, lam) -> np.ndarray:
        """The fixed point w(λ)."""
        return self._w_star(self._lam(lam))

    def solve_ls(self, w, lam) -> np.ndarray:
        """v(w, λ) = (I − ∂₁Φ(w, λ)ᵀ)^{-1} ∇₁E(w, λ), the solution of (LS) at any w."""
        return self._solve_ls(self._w(w), self._lam(lam))

    def v_star(self, lam) -> np.ndarray:
        """v(w(λ), λ), the (LS) solution on the solution path."""
        lam = self._lam(lam)
        return self._solve_ls(self._w_star(lam), lam)

    def f(self, lam) -> np.ndarray:
        """f(λ) = E(w(λ), λ)."""
        lam = self._lam(lam)
        return self._E(self._w_star(lam), lam)

    def grad_f(self, lam) -> np.ndarray:
        """∇f(λ), eq. (4); subclasses with a simpler closed form override ``_grad_f``."""
        return self._grad_f(self._lam(lam))

    def _grad_f(self, lam):
        w = self._w_star(lam)
        _, g2 = self._grad_E(w, lam)
        return g2 + self._vjp_lam(w, lam, self._solve_ls(w, lam))

    def _solve_ls(self, w, lam):
        """Dense default: (I − Jᵀ)^{-1}∇₁E with J = ∂₁Φ built column by column."""
        J = self.jacobian_w(w, lam)
        g1, _ = self._grad_E(w, lam)
        M = np.eye(self.d) - np.swapaxes(J, -1, -2)
        M, r = np.broadcast_arrays(M, g1[..., None])
        return np.linalg.solve(M, r)[..., 0]

    # ---- subclass interface --------------------------------------------------------------
    @abc.abstractmethod
    def _phi_map(self, w, lam): ...
    @abc.abstractmethod
    def _vjp_w(self, w, lam, v): ...
    @abc.abstractmethod
    def _vjp_lam(self, w, lam, v): ...
    @abc.abstractmethod
    def _jvp_w(self, w, lam, u): ...
    @abc.abstractmethod
    def _jvp_lam(self, w, lam, u): ...
    @abc.abstractmethod
    def _E(self, w, lam): ...
    @abc.abstractmethod
    def _grad_E(self, w, lam): ...
    @abc.abstractmethod
    def _w_star(self, lam): ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}(d={self.d}, n={self.n}, q={self.q:.6g})"


# ---- §14.1 ---------------------------------------------------------------------------------
class LinearContraction(FixedPointProblem):
    """Φ(w, λ) = Aw + Bλ + c, E = ½wᵀPw + wᵀQλ + ½λᵀSλ + pᵀw + sᵀλ (docs/sid_bsgm.rst §14.1).

    Closed forms: w(λ) = (I − A)^{-1}(Bλ + c), W = w'(λ) = (I − A)^{-1}B,
    v(w, λ) = (I − Aᵀ)^{-1}∇₁E(w, λ), ∇f = ∇₂E + Bᵀv, ∇²f = WᵀPW + WᵀQ + QᵀW + S (constant,
    so L_f = ||∇²f||_2 exactly).

    Oracle noise (§14.1; the oracle layer draws it): a sample ζ = (Z, Y, ε) has i.i.d.
    N(0, s_Z²) entries in Z (d × d), N(0, s_Y²) in Y (d × n) and ε ~ N(0, s_eps² I_d), with
    Φ(w, λ; ζ) = (A + Z)w + (B + Y)λ + c + ε; ξ ~ N(0, Sigma_xi) in R^{d+n} is added to
    (∇₁E, ∇₂E). Attributes ``s_Z, s_Y, s_eps, Sigma_xi``.

    ``constants.extra`` (docs/sid_bsgm.rst §6, §7, §14.1 names): q = ||A||, L_f,
    lambda_min_hessian_f,
    mu_1 = ||P||, mu_2 = ||Q||, nu_1 = nu_2 = 0, L_Phi = ||B||, the joint hat_mu_1 =
    max(||P||, ||Q||), hat_mu_2 = max(||Q||, ||S||), hat_nu_1 = hat_nu_2 = 0, L_v = mu_1/(1−q)
    (Lemma 20 analogue), L_f_lemma3 (the DERIVED Lemma 3(iii) bound), L_E = None (A(iv) fails:
    ∇₁E is affine in w), sigma_2 = 2 d s_Z², sigma_prime_1 = d s_Z², sigma_prime_2 = n s_Y²,
    s_1 = tr Σ_ξ,11, s_2 = tr Σ_ξ,22. λ-dependent constants are methods: :meth:`sigma_1`,
    :meth:`D_w`.
    """

    name = "linear-contraction"
    #: a start λ_0 (set on the default instance; solve's default start when present)
    x0: np.ndarray

    def __init__(self, A, B, c, P, Q, S, p, s, *, s_Z: float = 0.0, s_Y: float = 0.0,
                 s_eps: float = 0.0, Sigma_xi=None, extra: dict | None = None,
                 sources: dict | None = None):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got shape {A.shape}")
        self.d = d = A.shape[0]
        self.A = require_square_matrix("A", A, d)
        B = np.asarray(B, dtype=np.float64)
        if B.ndim != 2 or B.shape[0] != d:
            raise ValueError(f"B must have shape ({d}, n), got {B.shape}")
        self.n = n = B.shape[1]
        self.B = require_matrix("B", B, (d, n))
        q = contraction_modulus(self.A)
        self.c = require_vector("c", c, d)
        self.P = _symmetric("P", P, d)
        self.Q = require_matrix("Q", Q, (d, n))
        self.S = _symmetric("S", S, n)
        self.p = require_vector("p", p, d)
        self.s = require_vector("s", s, n)
        self.s_Z = require_range("s_Z", s_Z, low=0.0)
        self.s_Y = require_range("s_Y", s_Y, low=0.0)
        self.s_eps = require_range("s_eps", s_eps, low=0.0)
        Sig = np.zeros((d + n, d + n)) if Sigma_xi is None else _symmetric(
            "Sigma_xi", Sigma_xi, d + n)
        if Sig.size and np.linalg.eigvalsh(Sig)[0] < -1e-12 * max(1.0, np.abs(Sig).max()):
            raise ValueError("Sigma_xi must be positive semidefinite")
        self.Sigma_xi = Sig
        self._lu = scipy.linalg.lu_factor(np.eye(d) - self.A)
        self.W = scipy.linalg.lu_solve(self._lu, self.B)
        self._w_c = scipy.linalg.lu_solve(self._lu, self.c)
        self.constants = self._constants(q, extra or {}, sources or {})

    @classmethod
    def default_instance(cls) -> LinearContraction:
        """The §14.1 golden instance (:func:`golden_instance`), started at its λ (``x0``)."""
        g = golden_instance()
        g.problem.x0 = g.lam
        return g.problem

    def hessian_f(self, lam=None) -> np.ndarray:
        """∇²f = WᵀPW + WᵀQ + QᵀW + S (constant); broadcast over lam's leading axes if given."""
        W, P, Q = self.W, self.P, self.Q
        hess = W.T @ P @ W + W.T @ Q + Q.T @ W + self.S
        hess = 0.5 * (hess + hess.T)
        if lam is None:
            return hess
        lam = self._lam(lam)
        return np.broadcast_to(hess, lam.shape[:-1] + hess.shape).copy()

    def _constants(self, q: float, extra: dict, sources: dict) -> Constants:
        d, n = self.d, self.n
        ev = np.linalg.eigvalsh(self.hessian_f())
        nrm = lambda M: float(np.linalg.norm(M, 2)) if M.size else 0.0  # noqa: E731
        P_n, Q_n, S_n, L_Phi = nrm(self.P), nrm(self.Q), nrm(self.S), nrm(self.B)
        hat_mu_1, hat_mu_2 = max(P_n, Q_n), max(Q_n, S_n)
        ex = {
            "q": q, "L_f": float(np.max(np.abs(ev))), "lambda_min_hessian_f": float(ev[0]),
            "mu_1": P_n, "mu_2": Q_n, "nu_1": 0.0, "nu_2": 0.0, "L_Phi": L_Phi,
            "hat_mu_1": hat_mu_1, "hat_mu_2": hat_mu_2, "hat_nu_1": 0.0, "hat_nu_2": 0.0,
            "L_v": P_n / (1.0 - q),
            # Lemma 3(iii) with hat_nu = 0, so the unbounded B = sup||∇₁E|| drops out
            "L_f_lemma3": (1.0 + L_Phi / (1.0 - q)) * (hat_mu_2 + L_Phi * hat_mu_1 / (1.0 - q)),
            "L_E": None,
            "sigma_2": 2.0 * d * self.s_Z**2, "sigma_prime_1": d * self.s_Z**2,
            "sigma_prime_2": n * self.s_Y**2,
            "s_1": float(np.trace(self.Sigma_xi[:d, :d])),
            "s_2": float(np.trace(self.Sigma_xi[d:, d:])),
        }
        ex.update(extra)
        src = {
            "q": "||A||_2 (docs/sid_bsgm.rst §6 A(i), §14.1)",
            "L_f": "||∇²f||_2 exactly, ∇²f constant (docs/sid_bsgm.rst §14.1)",
            "mu_1,mu_2,nu_1,nu_2,L_Phi,hat_*": "docs/sid_bsgm.rst §6-7 reconstructions; §14.1 "
                "values",
            "L_v": "docs/sid_bsgm.rst §7, Lemma 20 analogue (DERIVED)",
            "L_f_lemma3": "docs/sid_bsgm.rst §7, Lemma 3(iii) DERIVED bound",
            "L_E": "None: A(iv) fails for affine ∇₁E (docs/sid_bsgm.rst §14.1)",
            "sigma_2,sigma_prime_*,s_*": "docs/sid_bsgm.rst §14.1 Assumption constants",
        }
        src.update(sources)
        return Constants(extra=ex, sources=src)

    # λ-dependent assumption constants (docs/sid_bsgm.rst §14.1)
    def sigma_1(self, lam) -> np.ndarray:
        """σ₁(λ) = 2 d s_Z²||w(λ)||² + d s_Y²||λ||² + d s_eps² (Assumption C(ii))."""
        lam = self._lam(lam)
        w = self._w_star(lam)
        d = self.d
        return (2 * d * self.s_Z**2 * np.sum(w * w, -1) + d * self.s_Y**2 * np.sum(lam * lam, -1)
                + d * self.s_eps**2)

    def D_w(self, lam, w0=0.0) -> np.ndarray:
        """||w0 − w(λ)|| (Assumption B(iii) at λ)."""
        lam = self._lam(lam)
        return np.linalg.norm(self._w_star(lam) - w0, axis=-1)

    # ---- interface ------------------------------------------------------------------------
    def _phi_map(self, w, lam):
        return w @ self.A.T + lam @ self.B.T + self.c

    def _vjp_w(self, w, lam, v):
        return _bcast(v @ self.A, w, lam)

    def _vjp_lam(self, w, lam, v):
        return _bcast(v @ self.B, w, lam)

    def _jvp_w(self, w, lam, u):
        return _bcast(u @ self.A.T, w, lam)

    def _jvp_lam(self, w, lam, u):
        return _bcast(u @ self.B.T, w, lam)

    def _E(self, w, lam):
        return (0.5 * np.sum(w * (w @ self.P), -1) + np.sum(w * (lam @ self.Q.T), -1)
                + 0.5 * np.sum(lam * (lam @ self.S), -1) + w @ self.p + lam @ self.s)

    def _grad_E(self, w, lam):
        g1 = w @ self.P + lam @ self.Q.T + self.p
        g2 = w @ self.Q + lam @ self.S + self.s
        return g1, g2

    def _w_star(self, lam):
        return lam @ self.W.T + self._w_c

    def _solve_ls(self, w, lam):
        g1, _ = self._grad_E(w, lam)
        flat = g1.reshape(-1, self.d).T
        return scipy.linalg.lu_solve(self._lu, flat, trans=1).T.reshape(g1.shape)


class GoldenInstance(NamedTuple):
    """The §14.1 golden instance: the problem, its λ, the LL start w_0 and η_i = 3/(3 + i)."""

    problem: LinearContraction
    lam: np.ndarray
    w0: np.ndarray

    @staticmethod
    def eta(i):
        """Step sizes η_i = 3/(3 + i), i = 0, 1, ... (η_0 = 1); shared by the LL and LS loops."""
        return 3.0 / (3.0 + np.asarray(i, dtype=np.float64))


def golden_instance() -> GoldenInstance:
    """The golden instance of docs/sid_bsgm.rst §14.1 (d = 3, n = 2, with its noise levels).

    Exact values there: w(λ) = [2.60700389, −0.98249027, 0.11478599],
    f(λ) = 3.583456638253417, ∇f(λ) = [9.95313177, −2.68231994], L_f = 13.454566537070583.
    """
    problem = LinearContraction(
        A=[[0.5, 0.2, 0.0], [-0.1, 0.3, 0.2], [0.1, 0.0, -0.4]],
        B=[[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]],
        c=[1.0, -1.0, 0.5],
        P=[[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]],
        Q=[[0.3, 0.0], [0.0, 0.2], [0.1, -0.1]],
        S=np.diag([0.5, 1.0]),
        p=[-1.0, 0.5, 0.0],
        s=[0.1, -0.2],
        s_Z=0.1, s_Y=0.1, s_eps=0.5, Sigma_xi=np.eye(5),
    )
    return GoldenInstance(problem, np.array([0.5, -0.3]), np.zeros(3))


# ---- §14.2 ---------------------------------------------------------------------------------
def gd_map_contraction(H, K, h, alpha_ll: float, *, P, Q, S, p, s, s_Z: float = 0.0,
                       s_Y: float = 0.0, s_eps: float = 0.0, Sigma_xi=None) -> LinearContraction:
    """The gradient-descent map of ℓ = ½wᵀHw − wᵀ(Kλ + h) as a :class:`LinearContraction`.

    Φ(w, λ) = w − α_LL ∇₁ℓ = (I − α_LL H)w + α_LL(Kλ + h) (docs/sid_bsgm.rst §14.2, eq. (3)), so
    A = I − α_LL H (symmetric), B = α_LL K, c = α_LL h and
    q = max(|1 − α_LL μ|, |1 − α_LL L|) < 1 iff 0 < α_LL < 2/L (μ, L the extreme eigenvalues
    of H). w(λ) = H^{-1}(Kλ + h) and ∇f = ∇₂E + KᵀH^{-1}∇₁E do not depend on α_LL.
    The upper level (P, Q, S, p, s) and noise levels are those of :class:`LinearContraction`.
    """
    H = np.asarray(H, dtype=np.float64)
    d: int | None = int(H.shape[0]) if H.ndim == 2 else None
    H = _symmetric("H", H, d)  # type: ignore[arg-type]  # None = "any size", checked inside
    ev = np.linalg.eigvalsh(H)
    if ev[0] <= 0:
        raise ValueError(f"H must be positive definite, got lambda_min(H) = {ev[0]:g}")
    mu, L = float(ev[0]), float(ev[-1])
    alpha = require_range("alpha_ll", alpha_ll, low=0.0, high=2.0 / L, low_inclusive=False,
                          high_inclusive=False)
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != H.shape[0]:
        raise ValueError(f"K must have shape ({H.shape[0]}, n), got {K.shape}")
    h = require_vector("h", h, H.shape[0])
    return LinearContraction(
        np.eye(H.shape[0]) - alpha * H, alpha * K, alpha * h, P, Q, S, p, s,
        s_Z=s_Z, s_Y=s_Y, s_eps=s_eps, Sigma_xi=Sigma_xi,
        extra={"alpha_ll": alpha, "mu_ll": mu, "L_ll": L,
               "q_formula": max(abs(1.0 - alpha * mu), abs(1.0 - alpha * L))},
        sources={"q_formula": "docs/sid_bsgm.rst §14.2: max(|1 − α μ|, |1 − α L|)"},
    )


# ---- §14.3 ---------------------------------------------------------------------------------
class RidgeContraction(FixedPointProblem):
    """Ridge hyperparameter λ (scalar) with the GD map as lower level (docs/sid_bsgm.rst §14.3).

        ℓ(w, λ) = (1/2N)||Xw − y||² + (λ/2)||w||²,   Φ(w, λ) = w − α_LL((H_X + λI)w − b),
        E(w) = (1/2N_v)||X_v w − y_v||²,

    H_X = XᵀX/N, b = Xᵀy/N. ∂₁Φ = I − α_LL(H_X + λI) (symmetric), ∂₂Φ = −α_LL w (unbounded
    in w: Assumption B(iv) holds only on the solution path, Remark 1(iii)).
    w(λ) = (H_X + λI)^{-1}b; ∇f(λ) = −w(λ)ᵀ(H_X + λI)^{-1}∇₁E(w(λ)); with M = (H_X + λI)^{-1}
    and G = ∇₁E(w(λ)), f''(λ) = 2 wᵀM²G + (Mw)ᵀ P_v (Mw), P_v = X_vᵀX_v/N_v (DERIVED).

    The feasible set is Λ = [lam_min, lam_max]; the contraction modulus
    q = sup_Λ max(|1 − α(μ_X + λ)|, |1 − α(L_X + λ)|) (attained at an end point) must be < 1.
    ``alpha_ll`` defaults to 1/(L_X + lam_max). Methods accept λ outside Λ, where q may be >= 1.

    Per-sample oracle pieces (§14.3): the rows x_j of ``X_train`` and entries y_j of
    ``y_train``; :meth:`phi_map_sample` Φ(w, λ; j) = w − α_LL(x_j x_jᵀw − x_j y_j + λw), which
    averages over j to Φ exactly, and :meth:`vjp_w_sample`.
    """

    name = "ridge-contraction"

    def __init__(self, X_train, y_train, X_val, y_val, *, alpha_ll: float | None = None,
                 lam_range: tuple[float, float] = (0.01, 10.0)):
        X = require_matrix("X_train", X_train, (None, None))
        self.N, self.d = X.shape
        self.n = 1
        self.X_train = X
        self.y_train = require_vector("y_train", y_train, self.N)
        self.X_val = require_matrix("X_val", X_val, (None, self.d))
        self.N_val = self.X_val.shape[0]
        self.y_val = require_vector("y_val", y_val, self.N_val)
        self.H_X = 0.5 * (X.T @ X + (X.T @ X).T) / self.N
        self.b = X.T @ self.y_train / self.N
        self.P_v = self.X_val.T @ self.X_val / self.N_val
        self._ev, self._V = np.linalg.eigh(self.H_X)
        self.mu_X, self.L_X = float(self._ev[0]), float(self._ev[-1])
        lo = require_range("lam_range[0]", lam_range[0], low=-self.mu_X, low_inclusive=False)
        hi = require_range("lam_range[1]", lam_range[1], low=lo)
        self.lam_min, self.lam_max = lo, hi
        self.alpha_ll = (1.0 / (self.L_X + hi) if alpha_ll is None else
                         require_range("alpha_ll", alpha_ll, low=0.0, low_inclusive=False))
        q = max(self.q_at(lo), self.q_at(hi))
        require_range("q", q, low=0.0, high=1.0, high_inclusive=False)
        self.constants = self._constants(q)

    @classmethod
    def from_seed(cls, d: int = 5, N: int = 40, N_val: int = 30, seed: int = 0, *,
                  noise: float = 0.5, **kwargs) -> RidgeContraction:
        """Gaussian design: X, X_val ~ N(0, 1); y = X w_true + noise·N(0, 1), w_true ~ N(0, I).

        Draw order from ``numpy.random.default_rng(seed)``: w_true, X, y noise, X_val,
        y_val noise.
        """
        rng = np.random.default_rng(seed)
        w_true = rng.standard_normal(d)
        X = rng.standard_normal((N, d))
        y = X @ w_true + noise * rng.standard_normal(N)
        Xv = rng.standard_normal((N_val, d))
        yv = Xv @ w_true + noise * rng.standard_normal(N_val)
        return cls(X, y, Xv, yv, **kwargs)

    @classmethod
    def default_instance(cls) -> RidgeContraction:
        """:meth:`from_seed` with its defaults (d = 5, N = 40, N_val = 30, seed 0)."""
        return cls.from_seed()

    def q_at(self, lam: float) -> float:
        """q(λ) = max(|1 − α(μ_X + λ)|, |1 − α(L_X + λ)|) (docs/sid_bsgm.rst §14.3)."""
        a = self.alpha_ll
        return max(abs(1.0 - a * (self.mu_X + lam)), abs(1.0 - a * (self.L_X + lam)))

    def _constants(self, q: float) -> Constants:
        a = self.alpha_ll
        grid = np.linspace(self.lam_min, self.lam_max, 2001)[:, None]
        curv = np.abs(self.hessian_f(grid)[:, 0, 0])
        return Constants(
            extra={
                "q": q, "alpha_ll": a, "lam_min": self.lam_min, "lam_max": self.lam_max,
                "mu_X": self.mu_X, "L_X": self.L_X,
                "L_Phi": float(a * np.linalg.norm(self._w_star(np.array([self.lam_min])))),
                "mu_1": float(np.linalg.eigvalsh(self.P_v)[-1]), "mu_2": 0.0,
                "nu_1": 0.0, "nu_2": a, "L_E": None,
                "L_f_grid": float(curv.max()),
            },
            sources={
                "q": "docs/sid_bsgm.rst §14.3, sup over Λ (end points)",
                "L_Phi": "sup_Λ ||∂₂Φ(w(λ), λ)|| = α||w(lam_min)|| (||w(λ)|| decreases in λ)",
                "mu_1,mu_2,nu_1,nu_2": "docs/sid_bsgm.rst §6 A(ii)-(iii): ∇₁E = P_v w − r_v, "
                                       "∂₂Φ = −α w",
                "L_f_grid": "max |f''| on a 2001-point grid of Λ: an estimate, not a bound",
            },
        )

    # ---- helpers in the eigenbasis of H_X ---------------------------------------------------
    def _resolvent(self, lam, v, power: int = 1):
        """(H_X + λI)^{-power} v, batched."""
        return ((v @ self._V) / (self._ev + lam) ** power) @ self._V.T

    def _j(self, j) -> np.ndarray:
        arr = np.asarray(j)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"j must be an integer array, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.N):
            raise ValueError(f"j entries must lie in [0, {self.N - 1}], got range "
                             f"[{arr.min()}, {arr.max()}]")
        return arr

    # ---- interface ------------------------------------------------------------------------
    def _phi_map(self, w, lam):
        return w - self.alpha_ll * (w @ self.H_X + lam * w - self.b)

    def _vjp_w(self, w, lam, v):
        return _bcast(v - self.alpha_ll * (v @ self.H_X + lam * v), w)

    _jvp_w = _vjp_w  # ∂₁Φ symmetric

    def _vjp_lam(self, w, lam, v):
        return _bcast(-self.alpha_ll * np.sum(w * v, axis=-1, keepdims=True), lam)

    def _jvp_lam(self, w, lam, u):
        return _bcast(-self.alpha_ll * w * u, lam)

    def _E(self, w, lam):
        res = w @ self.X_val.T - self.y_val
        out = 0.5 * np.mean(res * res, axis=-1)
        return np.broadcast_to(out, _lead(w, lam)).copy()

    def _grad_E(self, w, lam):
        g1 = (w @ self.X_val.T - self.y_val) @ self.X_val / self.N_val
        g1 = _bcast(g1, lam)
        return g1, np.zeros(g1.shape[:-1] + (1,))

    def _w_star(self, lam):
        return self._resolvent(lam, self.b)

    def _solve_ls(self, w, lam):
        g1, _ = self._grad_E(w, lam)
        return self._resolvent(lam, g1) / self.alpha_ll

    def _grad_f(self, lam):
        w = self._w_star(lam)
        g1, _ = self._grad_E(w, lam)
        return -np.sum(w * self._resolvent(lam, g1), axis=-1, keepdims=True)

    def hessian_f(self, lam) -> np.ndarray:
        """f''(λ) = 2 wᵀM²G + (Mw)ᵀP_v(Mw), shape (..., 1, 1)."""
        lam = self._lam(lam)
        w = self._w_star(lam)
        G, _ = self._grad_E(w, lam)
        Mw = self._resolvent(lam, w)
        out = 2.0 * np.sum(w * self._resolvent(lam, G, 2), -1) + np.sum(Mw * (Mw @ self.P_v), -1)
        return out[..., None, None]

    # ---- per-sample oracle pieces --------------------------------------------------------
    def phi_map_sample(self, w, lam, j) -> np.ndarray:
        """Φ(w, λ; j) = w − α_LL(x_j x_jᵀw − x_j y_j + λw); j broadcasts with the replicas."""
        w, lam, j = self._w(w), self._lam(lam), self._j(j)
        xj, yj = self.X_train[j], self.y_train[j]
        return w - self.alpha_ll * (xj * (np.sum(xj * w, -1) - yj)[..., None] + lam * w)

    def vjp_w_sample(self, w, lam, v, j) -> np.ndarray:
        """∂₁Φ(w, λ; j)ᵀv = v − α_LL(x_j x_jᵀv + λv)."""
        w, lam, v, j = self._w(w), self._lam(lam), self._w(v, "v"), self._j(j)
        xj = self.X_train[j]
        out = v - self.alpha_ll * (xj * np.sum(xj * v, -1)[..., None] + lam * v)
        return _bcast(out, w)
