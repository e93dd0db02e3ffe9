"""Closed-form bilevel problems with a relaxed-smooth upper level (BO-REP; docs/borep.rst §8).

Both have a strongly convex quadratic lower level (closed-form y*) and an upper level that is
(L_{x,0}, L_{x,1}, L_{y,0}, L_{y,1})-smooth (docs/borep.rst §2, Assumption 1) but not L-smooth:
||∇²phi|| grows without bound while ||∇²phi|| <= L_0 + L_1 ||∇phi|| (Hessian form).
∇_y f is bounded everywhere, so docs/borep.rst Assumption 2(i) holds globally; ∇²g is constant
(L_{g_xy} = L_{g_yy} = 0).

- :class:`RelaxedSmoothP1` — "cosh + pseudo-Huber" (``variant="pseudo-huber"``, convex phi)
  or its non-convex ``variant="sine"``.
- :class:`RelaxedSmoothP2` — "quartic + log-cosh".

The defaults reproduce the spec's reference instances draw for draw (legacy
``numpy.random.RandomState`` with seed 0 for P1 and 1 for P2, in the stated order), so the
spec's reference optima (P1: phi* = 14.7260868455; P2: phi* = 3.1324348957) apply to them.

Constants: ``Constants`` holds the docs/unibio.rst §2 names (mu, L_y, l_g1 = ||∇²_xy g||, ...);
BO-REP's own constants go to ``Constants.extra`` under these keys (docs/borep.rst §8, §2):
``L_x0, L_x1, L_y0, L_y1, r_f`` (Assumption 1), ``l_g1_joint`` (BO-REP's l_{g,1}: joint
smoothness of g), ``C_gxy``, ``L_ystar``, ``l_f0``, ``L_gxy = L_gyy = 0``, the Hessian-form
``L0_phi_hessian, L1_phi_hessian`` of phi, and the DERIVED relaxed-smoothness constants of
phi from the remark after Assumption 2, ``L0_phi_relaxed, L1_phi_relaxed, r_phi``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.problems.quadratic import _bcast
from refbilevel.validation import (
    require_int,
    require_matrix,
    require_range,
    require_square_matrix,
    require_vector,
)


def _reference_H(rng: np.random.RandomState, d: int, low: float, high: float) -> np.ndarray:
    """Q diag(linspace(low, high, d)) Qᵀ with Q the first output of QR of rng.randn(d, d)."""
    Q = np.linalg.qr(rng.randn(d, d))[0]
    H = Q @ np.diag(np.linspace(low, high, d)) @ Q.T
    return 0.5 * (H + H.T)


def _spd(name: str, H, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, eigenvalues, eigenvectors) of a symmetric positive definite H."""
    H = require_square_matrix(name, H, d)
    if not np.allclose(H, H.T, rtol=0.0, atol=1e-12 * max(1.0, np.abs(H).max())):
        raise ValueError(f"{name} must be symmetric")
    H = 0.5 * (H + H.T)
    ev, V = np.linalg.eigh(H)
    if ev[0] <= 0:
        raise ValueError(f"{name} must be positive definite, got lambda_min = {ev[0]:g}")
    return H, ev, V


def _relaxed_phi_constants(*, L_x0, L_x1, L_y0, L_y1, r_f, C_gxy, L_ystar, l_f0, mu,
                           L_gxy=0.0, L_gyy=0.0) -> dict[str, float]:
    """The DERIVED (L_0, L_1, r_Phi) relaxed smoothness of phi (docs/borep.rst §2, remark)."""
    s = np.sqrt(1.0 + L_ystar**2)
    L0 = s * (L_x0 + L_x1 * C_gxy * l_f0 / mu + L_gxy * l_f0 / mu
              + C_gxy * (L_y0 + L_y1 * l_f0) / mu + C_gxy * L_gyy * l_f0 / mu**2)
    return {"L0_phi_relaxed": float(L0), "L1_phi_relaxed": float(s * L_x1),
            "r_phi": float(r_f / s)}


_BOREP_SOURCES = {
    "L_x0,L_x1,L_y0,L_y1,r_f": "docs/borep.rst §8 (DERIVED Assumption 1 constants)",
    "l_g1_joint,C_gxy,L_ystar,l_f0": "docs/borep.rst §8 Constants",
    "L0_phi_hessian,L1_phi_hessian": "docs/borep.rst §8 (Hessian form ||∇²phi|| <= L_0 + "
        "L_1||∇phi||)",
    "L0_phi_relaxed,L1_phi_relaxed,r_phi": "docs/borep.rst §2, remark after Assumption 2 (DERIVED)",
    "l_p": "docs/unibio.rst §3.1 (DERIVED) at p = 2: 2 l_g1/mu",
}


class RelaxedSmoothP1(BilevelProblem):
    """BO-REP test problem P1 (docs/borep.rst §8, DERIVED):

        g(x, y) = ½ yᵀHy − yᵀ(Cx + c),   f(x, y) = Σ_i cosh(x_i) + aᵀx + c_ψ Σ_j ψ(y_j),

    ψ(s) = sqrt(1 + s²) (``variant="pseudo-huber"``, phi convex) or ψ(s) = sin s
    (``variant="sine"``, phi non-convex). y* = H^{-1}(Cx + c);
    ∇phi = sinh x + a + c_ψ CᵀH^{-1}ψ'(y*); ∇²phi = diag(cosh x) + c_ψ CᵀH^{-1}diag(ψ''(y*))H^{-1}C.

    The defaults are the spec's reference instance: ``RandomState(seed=0)`` draws, in order,
    Q (QR of randn(d_y, d_y)), C = randn(d_y, d_x)/sqrt(d_x), c = randn(d_y),
    a = 0.5 randn(d_x); H = Q diag(linspace(mu, L_H, d_y)) Qᵀ; d_x = 5, d_y = 8, mu = 0.5,
    L_H = 2, c_ψ = 1. Passing H, C, c or a replaces the drawn value (the draws still happen,
    so the others do not change).
    """

    name = "borep-p1"
    hessian_independent_of_y = True

    def __init__(
        self,
        variant: Literal["pseudo-huber", "sine"] = "pseudo-huber",
        d_x: int = 5,
        d_y: int = 8,
        mu: float = 0.5,
        L_H: float = 2.0,
        c_psi: float = 1.0,
        seed: int = 0,
        *,
        H=None,
        C=None,
        c=None,
        a=None,
    ):
        if variant not in ("pseudo-huber", "sine"):
            raise ValueError(f"variant must be 'pseudo-huber' or 'sine', got {variant!r}")
        self.variant = variant
        self.d_x = require_int("d_x", d_x, low=1)
        self.d_y = require_int("d_y", d_y, low=1)
        self.p = 2.0
        mu = require_range("mu", mu, low=0.0, low_inclusive=False)
        L_H = require_range("L_H", L_H, low=mu)
        self.c_psi = require_range("c_psi", c_psi, low=0.0, low_inclusive=False)
        rng = np.random.RandomState(require_int("seed", seed, low=0))  # the spec's generator
        H_draw = _reference_H(rng, self.d_y, mu, L_H)
        C_draw = rng.randn(self.d_y, self.d_x) / np.sqrt(self.d_x)
        c_draw = rng.randn(self.d_y)
        a_draw = 0.5 * rng.randn(self.d_x)
        self.H, self.H_eigs, self._V = _spd("H", H_draw if H is None else H, self.d_y)
        self.C = C_draw if C is None else require_matrix("C", C, (self.d_y, self.d_x))
        self.c = c_draw if c is None else require_vector("c", c, self.d_y)
        self.a = a_draw if a is None else require_vector("a", a, self.d_x)
        self.constants = self._constants()

    def _constants(self) -> Constants:
        mu, L_y = float(self.H_eigs[0]), float(self.H_eigs[-1])
        C_norm = float(np.linalg.norm(self.C, 2))
        a_norm = float(np.linalg.norm(self.a))
        l_f0 = self.c_psi * np.sqrt(self.d_y)
        joint = np.block([[np.zeros((self.d_x, self.d_x)), -self.C.T], [-self.C, self.H]])
        L_ystar = float(np.linalg.norm(self._Hinv(self.C.T).T, 2))
        A1 = {"L_x0": 2.0 * (1.0 + a_norm), "L_x1": 2.0, "L_y0": self.c_psi, "L_y1": 0.0,
              "r_f": float(1.0 / (2.0 * np.sqrt(2.0)))}
        extra = {
            **A1,
            "l_g1_joint": float(np.linalg.norm(joint, 2)), "C_gxy": C_norm, "L_ystar": L_ystar,
            "l_f0": float(l_f0), "L_gxy": 0.0, "L_gyy": 0.0,
            "L0_phi_hessian": float(1.0 + a_norm + self.c_psi * C_norm * np.sqrt(self.d_y) / mu
                                    + self.c_psi * C_norm**2 / mu**2),
            "L1_phi_hessian": 1.0,
            **_relaxed_phi_constants(**A1, C_gxy=C_norm, L_ystar=L_ystar, l_f0=l_f0, mu=mu),
        }
        return Constants(
            mu=mu, p=2.0, L_0=L_y, L_1=0.0, l_g1=C_norm, l_g2=0.0, L_H=0.0, C=L_y,
            l_f1=None, l_f2=self.c_psi, C_f=float(l_f0), l_p=2.0 * C_norm / mu,
            L_phi1=None, L_phi2=None, L_y=L_y, extra=extra,
            sources={**_BOREP_SOURCES,
                     "l_f1,L_phi1,L_phi2": "None: ∇_x f = sinh x + a is not Lipschitz",
                     "l_f2,C_f": "|ψ''| <= 1, ||c_ψ ψ'(y)|| <= c_ψ sqrt(d_y) (docs/borep.rst §8)"},
        )

    # ---- ψ and its derivatives -------------------------------------------------------------
    def _psi(self, s):
        return np.sqrt(1.0 + s * s) if self.variant == "pseudo-huber" else np.sin(s)

    def _dpsi(self, s):
        return s / np.sqrt(1.0 + s * s) if self.variant == "pseudo-huber" else np.cos(s)

    def _d2psi(self, s):
        return (1.0 + s * s) ** -1.5 if self.variant == "pseudo-huber" else -np.sin(s)

    def _Hinv(self, v):
        return (v @ self._V) / self.H_eigs @ self._V.T

    # ---- BilevelProblem interface -------------------------------------------------------
    def _f(self, x, y):
        return (np.sum(np.cosh(x), axis=-1) + x @ self.a
                + self.c_psi * np.sum(self._psi(y), axis=-1))

    def _g(self, x, y):
        return 0.5 * np.sum(y * (y @ self.H), axis=-1) - np.sum(y * (x @ self.C.T + self.c), -1)

    def _grad_x_f(self, x, y):
        return _bcast(np.sinh(x) + self.a, y)

    def _grad_y_f(self, x, y):
        return _bcast(self.c_psi * self._dpsi(y), x)

    def _grad_x_g(self, x, y):
        return _bcast(-y @ self.C, x)

    def _grad_y_g(self, x, y):
        return y @ self.H - x @ self.C.T - self.c

    def _hvp_yy_g(self, x, y, v):
        return _bcast(v @ self.H, x, y)

    def _jvp_xy_g(self, x, y, v):
        return _bcast(-v @ self.C, x, y)

    def _jvp_yx_g(self, x, y, w):
        return _bcast(-w @ self.C.T, x, y)

    def _f_u(self, x, y):
        return self._grad_y_f(x, y)

    _gen_hvp = _hvp_yy_g
    _gen_hvp_T = _hvp_yy_g

    def _solve_hessian_yy(self, x, y, rhs):
        return _bcast(self._Hinv(rhs), x, y)

    def _y_star(self, x):
        return self._Hinv(x @ self.C.T + self.c)

    def _grad_phi(self, x):
        return np.sinh(x) + self.a + self.c_psi * (self._Hinv(self._dpsi(self._y_star(x)))
                                                   @ self.C)

    def hessian_phi(self, x) -> np.ndarray:
        """∇²phi(x) = diag(cosh x) + c_ψ CᵀH^{-1} diag(ψ''(y*)) H^{-1}C, shape (..., d_x, d_x)."""
        x = self._x(x)
        M = self._Hinv(self.C.T).T  # H^{-1}C, (d_y, d_x)
        w = self._d2psi(self._y_star(x))
        hess = self.c_psi * np.einsum("ji,...j,jk->...ik", M, w, M)
        idx = np.arange(self.d_x)
        hess[..., idx, idx] += np.cosh(x)
        return hess

    def __repr__(self) -> str:
        return f"RelaxedSmoothP1(variant={self.variant!r}, d_x={self.d_x}, d_y={self.d_y})"


class RelaxedSmoothP2(BilevelProblem):
    """BO-REP test problem P2 (docs/borep.rst §8, DERIVED):

        g(x, y) = ½ (y − Bx − b)ᵀ H (y − Bx − b),   f(x, y) = ¼||x||⁴ + Σ_j log cosh(y_j − t_j).

    y* = Bx + b; ∇phi = ||x||² x + Bᵀ tanh(Bx + b − t);
    ∇²phi = ||x||² I + 2xxᵀ + Bᵀ diag(sech²(Bx + b − t)) B. phi is convex and coercive.

    Defaults = the spec's reference instance: ``RandomState(seed=1)`` draws, in order, Q (QR
    of randn(d_y, d_y)), B = randn(d_y, d_x)/sqrt(d_x), b = randn(d_y), t = randn(d_y);
    H = Q diag(linspace(mu, L_H, d_y)) Qᵀ with mu = 1, L_H = 3; d_x = 4, d_y = 6.
    """

    name = "borep-p2"
    hessian_independent_of_y = True

    def __init__(
        self,
        d_x: int = 4,
        d_y: int = 6,
        mu: float = 1.0,
        L_H: float = 3.0,
        seed: int = 1,
        *,
        H=None,
        B=None,
        b=None,
        t=None,
    ):
        self.d_x = require_int("d_x", d_x, low=1)
        self.d_y = require_int("d_y", d_y, low=1)
        self.p = 2.0
        mu = require_range("mu", mu, low=0.0, low_inclusive=False)
        L_H = require_range("L_H", L_H, low=mu)
        rng = np.random.RandomState(require_int("seed", seed, low=0))  # the spec's generator
        H_draw = _reference_H(rng, self.d_y, mu, L_H)
        B_draw = rng.randn(self.d_y, self.d_x) / np.sqrt(self.d_x)
        b_draw = rng.randn(self.d_y)
        t_draw = rng.randn(self.d_y)
        self.H, self.H_eigs, self._V = _spd("H", H_draw if H is None else H, self.d_y)
        self.B = B_draw if B is None else require_matrix("B", B, (self.d_y, self.d_x))
        self.b = b_draw if b is None else require_vector("b", b, self.d_y)
        self.t = t_draw if t is None else require_vector("t", t, self.d_y)
        self.constants = self._constants()

    def _constants(self) -> Constants:
        mu, L_y = float(self.H_eigs[0]), float(self.H_eigs[-1])
        HB = self.H @ self.B
        C_gxy = float(np.linalg.norm(HB, 2))
        B_norm = float(np.linalg.norm(self.B, 2))
        l_f0 = float(np.sqrt(self.d_y))
        joint = np.block([[self.B.T @ HB, -HB.T], [-HB, self.H]])
        A1 = {"L_x0": 1.0, "L_x1": 6.0, "L_y0": 1.0, "L_y1": 0.0,
              "r_f": float(1.0 / (6.0 * np.sqrt(2.0)))}
        extra = {
            **A1,
            "l_g1_joint": float(np.linalg.norm(joint, 2)), "C_gxy": C_gxy, "L_ystar": B_norm,
            "l_f0": l_f0, "L_gxy": 0.0, "L_gyy": 0.0,
            "L0_phi_hessian": float(3.0 + 3.0 * B_norm * np.sqrt(self.d_y) + B_norm**2),
            "L1_phi_hessian": 3.0,
            **_relaxed_phi_constants(**A1, C_gxy=C_gxy, L_ystar=B_norm, l_f0=l_f0, mu=mu),
        }
        return Constants(
            mu=mu, p=2.0, L_0=L_y, L_1=0.0, l_g1=C_gxy, l_g2=0.0, L_H=0.0, C=L_y,
            l_f1=None, l_f2=1.0, C_f=l_f0, l_p=2.0 * C_gxy / mu,
            L_phi1=None, L_phi2=None, L_y=L_y, extra=extra,
            sources={**_BOREP_SOURCES,
                     "l_f1,L_phi1,L_phi2": "None: ∇_x f = ||x||² x is not Lipschitz",
                     "l_f2,C_f": "tanh is 1-Lipschitz and bounded by 1 (docs/borep.rst §8)"},
        )

    def _Hinv(self, v):
        return (v @ self._V) / self.H_eigs @ self._V.T

    def _resid(self, x, y):
        return y - x @ self.B.T - self.b

    # ---- BilevelProblem interface -------------------------------------------------------
    def _f(self, x, y):
        s = y - self.t
        a = np.abs(s)
        logcosh = a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)  # overflow-free log cosh
        return 0.25 * np.sum(x * x, axis=-1) ** 2 + np.sum(logcosh, axis=-1)

    def _g(self, x, y):
        r = self._resid(x, y)
        return 0.5 * np.sum(r * (r @ self.H), axis=-1)

    def _grad_x_f(self, x, y):
        return _bcast(np.sum(x * x, axis=-1, keepdims=True) * x, y)

    def _grad_y_f(self, x, y):
        return _bcast(np.tanh(y - self.t), x)

    def _grad_x_g(self, x, y):
        return -(self._resid(x, y) @ self.H) @ self.B

    def _grad_y_g(self, x, y):
        return self._resid(x, y) @ self.H

    def _hvp_yy_g(self, x, y, v):
        return _bcast(v @ self.H, x, y)

    def _jvp_xy_g(self, x, y, v):
        return _bcast(-(v @ self.H) @ self.B, x, y)

    def _jvp_yx_g(self, x, y, w):
        return _bcast(-(w @ self.B.T) @ self.H, x, y)

    def _f_u(self, x, y):
        return self._grad_y_f(x, y)

    _gen_hvp = _hvp_yy_g
    _gen_hvp_T = _hvp_yy_g

    def _solve_hessian_yy(self, x, y, rhs):
        return _bcast(self._Hinv(rhs), x, y)

    def _y_star(self, x):
        return x @ self.B.T + self.b

    def _grad_phi(self, x):
        return (np.sum(x * x, axis=-1, keepdims=True) * x
                + np.tanh(self._y_star(x) - self.t) @ self.B)

    def hessian_phi(self, x) -> np.ndarray:
        """∇²phi(x) = ||x||² I + 2xxᵀ + Bᵀ diag(sech²(Bx + b − t)) B, shape (..., d_x, d_x)."""
        x = self._x(x)
        e = np.exp(-np.abs(self._y_star(x) - self.t))
        sech2 = (2.0 * e / (1.0 + e * e)) ** 2  # overflow-free sech²
        hess = np.einsum("ji,...j,jk->...ik", self.B, sech2, self.B)
        hess += 2.0 * x[..., :, None] * x[..., None, :]
        idx = np.arange(self.d_x)
        hess[..., idx, idx] += np.sum(x * x, axis=-1)[..., None]
        return hess

    def __repr__(self) -> str:
        return f"RelaxedSmoothP2(d_x={self.d_x}, d_y={self.d_y})"
