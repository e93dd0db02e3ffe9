"""Exact moments of SID and of the stochastic fixed-point solvers on the linear contraction.

Spec docs/sid_bsgm.rst §14.1 ("Exact SID mean and MSE for general step sequences", "Closed form:
constant step η, additive noise only", golden instance and golden values) and §8
(Theorem S). Nothing here draws a random number: these are the references the Monte Carlo
runs of SID are checked against (claims S1-S4, docs/checks.rst).

The problem is any object with the attributes of
:class:`refbilevel.problems.contraction.LinearContraction`: ``A`` (d×d, ||A|| < 1), ``B``
(d×n), ``c`` (d), ``P`` (d×d), ``Q`` (d×n), ``S`` (n×n), ``p`` (d), ``s`` (n) and the noise
levels ``s_Z``, ``s_Y``, ``s_eps`` (per-entry standard deviations) and ``Sigma_xi``
((d+n)×(d+n)). The oracle is Φ(w,λ;ζ) = (A+Z)w + (B+Y)λ + c + ε and
∇E(w,λ;ξ) = ∇E(w,λ) + ξ (docs/sid_bsgm.rst §14.1, "Stochastic oracle").

Two formulations of the moment recursion are implemented:

* ``form="centered"`` (default): the recursion of docs/sid_bsgm.rst §14.1 written for the errors
  e_i = w_i − w(λ), u_i = v_i − v*, δg = g − ∇E(w(λ), λ) instead of the raw iterates. It is
  the same linear algebra (every random matrix is independent of the current state and has
  zero mean, so second moments propagate exactly), but the affine parts cancel
  analytically, so the MSE is not obtained as a difference of large numbers. This matters
  when the error is small: the raw recursion loses ~7e-9 relative accuracy at deterministic
  (10,10) and 4% at (20,20) (docs/sid_bsgm.rst §14.1, CORRECTED note).
* ``form="raw"``: the augmented-state recursion exactly as the spec writes it
  (y_i = (w_i, 1), z_i = (v_i, g_1, g_2, 1)), kept as an independent cross-check.

Step-size schedules (:class:`StepSchedule`) live here because the recursions, the NumPy
reference, the Numba kernel and the CuPy path must all read the same sequence (η_i)
(docs/sid_bsgm.rst §4.1: one sequence shared by the LL and LS solvers; §14.1: the LS restarts the
index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refbilevel.validation import require_int, require_range

# ----------------------------------------------------------------------------------------
# step sizes
# ----------------------------------------------------------------------------------------

SCHEDULE_KINDS = ("decreasing", "constant")


@dataclass(frozen=True)
class StepSchedule:
    """A step-size sequence (η_i)_{i≥0} with η_i ∈ (0, 1] (docs/sid_bsgm.rst §4.1, §4.3).

    * ``kind="decreasing"``: η_i = β/(γ+i) (Theorem S(a), docs/sid_bsgm.rst §8; the bioptexps code's
      η_0 γ/(γ+i) is the same family with β = η_0 γ). Requires β > 0, γ > 0, β ≤ γ so that
      η_0 ≤ 1.
    * ``kind="constant"``: η_i ≡ η, 0 < η ≤ 1 (Theorem S(b); η = 1 is the deterministic
      fixed-point iteration of Theorem 17).
    """

    kind: str
    beta: float = math.nan
    gamma: float = math.nan
    eta: float = math.nan

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(
                f"step schedule kind must be one of {', '.join(SCHEDULE_KINDS)}; "
                f"got {self.kind!r}"
            )
        if self.kind == "decreasing":
            beta = require_range("beta", self.beta, low=0.0, low_inclusive=False)
            gamma = require_range("gamma", self.gamma, low=0.0, low_inclusive=False)
            if beta > gamma:
                raise ValueError(
                    f"beta must lie in (0, gamma] so that eta_0 = beta/gamma <= 1; "
                    f"got beta={beta:g}, gamma={gamma:g}"
                )
        else:
            require_range("eta", self.eta, low=0.0, high=1.0, low_inclusive=False)

    @classmethod
    def decreasing(cls, beta: float, gamma: float) -> StepSchedule:
        """η_i = β/(γ+i)."""
        return cls("decreasing", beta=float(beta), gamma=float(gamma))

    @classmethod
    def constant(cls, eta: float) -> StepSchedule:
        """η_i ≡ η."""
        return cls("constant", eta=float(eta))

    def values(self, n: int) -> np.ndarray:
        """(η_0, ..., η_{n-1}) as a float64 array."""
        n = require_int("number of steps", n, low=0)
        if self.kind == "decreasing":
            return self.beta / (self.gamma + np.arange(n, dtype=np.float64))
        return np.full(n, self.eta)


def step_sequence(steps: Any, n: int) -> np.ndarray:
    """The first ``n`` step sizes of ``steps`` as a float64 array.

    ``steps`` is a :class:`StepSchedule`, a real number (a constant step) or a 1-D array of
    at least ``n`` values (an explicit sequence). Every value must lie in (0, 1]
    (docs/sid_bsgm.rst §4.1). Anything else, e.g. a schedule given by name only, raises ValueError.
    """
    n = require_int("number of steps", n, low=0)
    if isinstance(steps, StepSchedule):
        return steps.values(n)
    if isinstance(steps, str):
        raise ValueError(
            f"unknown step schedule {steps!r}: pass StepSchedule.decreasing(beta, gamma), "
            "StepSchedule.constant(eta), a constant eta in (0, 1] or an array of steps"
        )
    if np.ndim(steps) == 0:
        return StepSchedule.constant(require_range("steps", steps)).values(n)
    arr = np.asarray(steps, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] < n:
        raise ValueError(
            f"steps given as an array must be 1-D with at least {n} entries, got shape "
            f"{arr.shape}"
        )
    arr = arr[:n]
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0.0) or np.any(arr > 1.0):
        raise ValueError("every step size eta_i must lie in (0, 1] (docs/sid_bsgm.rst §4.1)")
    return arr.copy()


# ----------------------------------------------------------------------------------------
# problem data and exact quantities
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
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
    Sigma_xi: np.ndarray

    @property
    def d(self) -> int:
        return self.A.shape[0]

    @property
    def n(self) -> int:
        return self.B.shape[1]


def problem_data(problem: Any) -> _Data:
    """Read and validate the matrices of a linear-contraction problem (duck-typed)."""
    try:
        raw = {k: getattr(problem, k) for k in _Data.__dataclass_fields__}
    except AttributeError as exc:
        raise ValueError(
            "problem must provide A, B, c, P, Q, S, p, s, s_Z, s_Y, s_eps and Sigma_xi "
            f"(a LinearContraction, docs/sid_bsgm.rst §14.1): {exc}"
        ) from None
    # private C-contiguous copies: callers cannot mutate them, and the Numba kernel sees
    # one array type whatever the problem stores
    A = np.array(raw["A"], dtype=np.float64, order="C")
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {A.shape}")
    d = A.shape[0]
    B = np.array(raw["B"], dtype=np.float64, order="C")
    if B.ndim != 2 or B.shape[0] != d:
        raise ValueError(f"B must have shape ({d}, n), got {B.shape}")
    n = B.shape[1]
    shapes = {"c": (d,), "P": (d, d), "Q": (d, n), "S": (n, n), "p": (d,), "s": (n,),
              "Sigma_xi": (d + n, d + n)}
    arrs = {}
    for name, shape in shapes.items():
        arr = np.array(raw[name], dtype=np.float64, order="C")
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        arrs[name] = arr
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        raise ValueError("A and B must be finite")
    sig = arrs["Sigma_xi"]
    if not np.allclose(sig, sig.T, rtol=0, atol=1e-14 * max(1.0, np.abs(sig).max())):
        raise ValueError("Sigma_xi must be symmetric")
    levels = {k: require_range(k, raw[k], low=0.0) for k in ("s_Z", "s_Y", "s_eps")}
    return _Data(A=A, B=B, **arrs, **levels)  # type: ignore[arg-type]  # keys match fields


@dataclass(frozen=True)
class ExactSolution:
    """w(λ), v(w(λ), λ), ∇E at (w(λ), λ) and ∇f(λ) (docs/sid_bsgm.rst §14.1, "Exact quantities")."""

    w_star: np.ndarray
    v_star: np.ndarray
    g1_star: np.ndarray
    g2_star: np.ndarray
    grad_f: np.ndarray


def exact_solution(problem: Any, lam: Any) -> ExactSolution:
    """Closed forms of docs/sid_bsgm.rst §14.1: w = (I−A)^{-1}(Bλ+c), v = (I−Aᵀ)^{-1}∇₁E,
    ∇f = ∇₂E + Bᵀ v (eq. (4))."""
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    eye = np.eye(D.d)
    w = np.linalg.solve(eye - D.A, D.B @ lam + D.c)
    g1 = D.P @ w + D.Q @ lam + D.p
    g2 = D.Q.T @ w + D.S @ lam + D.s
    v = np.linalg.solve(eye - D.A.T, g1)
    return ExactSolution(w_star=w, v_star=v, g1_star=g1, g2_star=g2, grad_f=g2 + D.B.T @ v)


def _lam(lam: Any, n: int) -> np.ndarray:
    arr = np.asarray(lam, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"lam must have shape ({n},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("lam must be finite")
    return arr


def _w0(w0: Any, d: int) -> np.ndarray:
    if w0 is None:
        return np.zeros(d)
    arr = np.asarray(w0, dtype=np.float64)
    if arr.shape != (d,):
        raise ValueError(f"w0 must have shape ({d},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("w0 must be finite")
    return arr


def _tkJ(t: Any, k: Any, J: Any) -> tuple[int, int, int]:
    return (require_int("t", t, low=0), require_int("k", k, low=0),
            require_int("J", J, low=1))


# ----------------------------------------------------------------------------------------
# exact SID moments
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SIDMoments:
    """Exact first and second moments of the SID error ĝ − ∇f(λ) (docs/sid_bsgm.rst §14.1).

    ``mean_error`` = E ĝ − ∇f, ``bias2`` = ||mean_error||², ``variance`` = tr Cov(ĝ),
    ``mse`` = E||ĝ − ∇f||² = bias2 + variance (bias-variance decomposition (9), docs/sid_bsgm.rst
    §9).
    """

    mean_error: np.ndarray
    mse: float
    bias2: float
    variance: float


V0_STARTS = ("zero", "rhs")


def sid_moments(problem: Any, lam: Any, t: int, k: int, J: int, *, steps: Any,
                w0: Any = None, form: str = "centered", ls_offset: int = 0,
                v0: str = "zero", ll_lambda_noise: bool = True) -> SIDMoments:
    """Exact mean and MSE of SID(λ; t, k, J) for any step sequence (docs/sid_bsgm.rst §14.1).

    Default conventions (docs/sid_bsgm.rst §14.1, "Conventions the golden values assume"): the LL
    uses
    η_0..η_{t-1}, the LS restarts the index and uses η_0..η_{k-1} from v_0 = 0, the four
    sample families are independent and the LL sample perturbs λ too (Y_i in the LL step).

    The other conventions of docs/sid_bsgm.rst §4.4/§14.1 are available to reproduce the variant
    values
    (centered form only): ``ls_offset`` = o makes LS step i use η_{o+i} (o = 1 is the
    bioptexps scheduler offset, o = t continues the LL index); ``v0="rhs"`` starts the LS
    at v_0 = ∇₁Ê_J (bioptexps ``stoch_AID``); ``ll_lambda_noise=False`` drops Y_i from the
    LL step.
    """
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    w0 = _w0(w0, D.d)
    t, k, J = _tkJ(t, k, J)
    ls_offset = require_int("ls_offset", ls_offset, low=0)
    if v0 not in V0_STARTS:
        raise ValueError(f"v0 must be one of {', '.join(V0_STARTS)}; got {v0!r}")
    eta_w = step_sequence(steps, t)
    eta_v = step_sequence(steps, ls_offset + k)[ls_offset:]
    if form == "centered":
        return _moments_centered(D, lam, w0, J, eta_w, eta_v, v0=v0,
                                 ll_lambda_noise=bool(ll_lambda_noise))
    if form == "raw":
        if ls_offset or v0 != "zero" or not ll_lambda_noise:
            raise ValueError("form='raw' implements the default conventions only "
                             "(ls_offset=0, v0='zero', ll_lambda_noise=True)")
        return _moments_raw(D, lam, w0, J, eta_w, eta_v)
    raise ValueError(f"form must be 'centered' or 'raw', got {form!r}")


def _ll_moments(D: _Data, lam, w_star, e0, eta,
                lambda_noise: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean m_i and second moment C_i of e_i = w_i − w(λ), i = t, and E||e_i||² for all i.

    e_{i+1} = M_i e_i + η_i (Z_i w_i + Y_i λ + ε_i), M_i = (1−η_i)I + η_i A, because
    w(λ) = A w(λ) + Bλ + c. The noise is independent of e_i with zero mean and covariance
    η_i² (s_Z² E||w_i||² + s_Y²||λ||² + s_ε²) I  (E[Z x xᵀ Zᵀ] = s_Z² ||x||² I, docs/sid_bsgm.rst
    §14.1).
    """
    d = D.d
    eye = np.eye(d)
    m = e0.copy()
    C = np.outer(e0, e0)
    path = np.empty(eta.shape[0] + 1)
    path[0] = np.trace(C)
    const = (D.s_Y**2 * float(lam @ lam) if lambda_noise else 0.0) + D.s_eps**2
    ww = float(w_star @ w_star)
    for i, h in enumerate(eta):
        M = (1.0 - h) * eye + h * D.A
        ew2 = np.trace(C) + 2.0 * float(m @ w_star) + ww  # E||w_i||²
        noise = h * h * (D.s_Z**2 * ew2 + const)
        m = M @ m
        C = M @ C @ M.T + noise * eye
        path[i + 1] = np.trace(C)
    return m, C, path


def _moments_centered(D: _Data, lam, w0, J, eta_w, eta_v, *, v0: str = "zero",
                      ll_lambda_noise: bool = True) -> SIDMoments:
    d, n = D.d, D.n
    ex = exact_solution(D, lam)
    v_star = ex.v_star
    # LL
    m_e, C_e, _ = _ll_moments(D, lam, ex.w_star, w0 - ex.w_star, eta_w, ll_lambda_noise)
    # mini-batch gradients: δg = g − ∇E(w(λ),λ) = G_w e_t + ξ̄, G_w = [P; Qᵀ]
    Gw = np.vstack([D.P, D.Q.T])
    mu_g = Gw @ m_e
    S_gg = Gw @ C_e @ Gw.T + D.Sigma_xi / J
    mu_g1 = mu_g[:d]
    S_g1g = S_gg[:d]  # rows of δg₁ against all of δg (d × (d+n))
    # LS on u_i = v_i − v*, driven by δg₁ (fixed during the LS):
    # u_{i+1} = M_iᵀ u_i + η_i δg₁ + η_i Z_iᵀ v_i, v* = Aᵀ v* + ∇₁E(w(λ),λ).
    eye = np.eye(d)
    if v0 == "zero":  # u_0 = −v*
        mu_u = -v_star.copy()
        S_uu = np.outer(v_star, v_star)
        S_ug = -np.outer(v_star, mu_g)  # E[u δgᵀ], d × (d+n)
    else:  # v_0 = ∇₁Ê_J: u_0 = δg₁ + a, a = ∇₁E(w(λ),λ) − v*
        a = ex.g1_star - v_star
        mu_u = mu_g1 + a
        S_uu = S_gg[:d, :d] + np.outer(mu_g1, a) + np.outer(a, mu_g1) + np.outer(a, a)
        S_ug = S_g1g + np.outer(a, mu_g)
    vv = float(v_star @ v_star)
    for h in eta_v:
        Mt = (1.0 - h) * eye + h * D.A.T
        ev2 = np.trace(S_uu) + 2.0 * float(mu_u @ v_star) + vv  # E||v_i||²
        S_ug1 = S_ug[:, :d]
        S_uu = (Mt @ S_uu @ Mt.T + h * (Mt @ S_ug1 + S_ug1.T @ Mt.T) + h * h * S_g1g[:, :d]
                + h * h * D.s_Z**2 * ev2 * eye)
        S_ug = Mt @ S_ug + h * S_g1g
        mu_u = Mt @ mu_u + h * mu_g1
    ev2 = np.trace(S_uu) + 2.0 * float(mu_u @ v_star) + vv  # E||v_k||²
    # ĝ − ∇f = δg₂ + Bᵀ u_k + Ȳ_Jᵀ v_k
    mean = mu_g[d:] + D.B.T @ mu_u
    S_g2g2 = S_gg[d:, d:]
    S_ug2 = S_ug[:, d:]
    second = (np.trace(S_g2g2) + 2.0 * np.trace(D.B.T @ S_ug2)
              + np.trace(D.B.T @ S_uu @ D.B) + n * D.s_Y**2 / J * ev2)
    bias2 = float(mean @ mean)
    return SIDMoments(mean_error=mean, mse=float(second), bias2=bias2,
                      variance=float(second) - bias2)


def _moments_raw(D: _Data, lam, w0, J, eta_w, eta_v) -> SIDMoments:
    """The augmented-state recursion exactly as docs/sid_bsgm.rst §14.1 writes it."""
    d, n = D.d, D.n
    ex = exact_solution(D, lam)
    b = D.B @ lam + D.c
    y0 = np.append(w0, 1.0)
    Sy = np.outer(y0, y0)
    Eww = np.zeros((d + 1, d + 1))
    Eww[:d, :d] = np.eye(d)
    for h in eta_w:
        N = np.eye(d + 1)
        N[:d, :d] = (1.0 - h) * np.eye(d) + h * D.A
        N[:d, d] = h * b
        noise = h * h * (D.s_Z**2 * np.trace(Sy[:d, :d]) + D.s_Y**2 * float(lam @ lam)
                         + D.s_eps**2)
        Sy = N @ Sy @ N.T + noise * Eww
    m_t, S_t = Sy[:d, d], Sy[:d, :d]
    Gw = np.vstack([D.P, D.Q.T])
    gc = np.concatenate([D.Q @ lam + D.p, D.S @ lam + D.s])
    Eg = Gw @ m_t + gc
    Egg = (Gw @ S_t @ Gw.T + np.outer(Gw @ m_t, gc) + np.outer(gc, Gw @ m_t)
           + np.outer(gc, gc) + D.Sigma_xi / J)
    m = 2 * d + n + 1
    Sz = np.zeros((m, m))
    Sz[d:m - 1, d:m - 1] = Egg
    Sz[d:m - 1, m - 1] = Eg
    Sz[m - 1, d:m - 1] = Eg
    Sz[m - 1, m - 1] = 1.0
    Evv = np.zeros((m, m))
    Evv[:d, :d] = np.eye(d)
    for h in eta_v:
        Mb = np.eye(m)
        Mb[:d, :d] = (1.0 - h) * np.eye(d) + h * D.A.T
        Mb[:d, d:2 * d] = h * np.eye(d)
        Sz = Mb @ Sz @ Mb.T + h * h * D.s_Z**2 * np.trace(Sz[:d, :d]) * Evv
    L = np.hstack([D.B.T, np.zeros((n, d)), np.eye(n), -ex.grad_f[:, None]])
    mse = float(np.trace(L @ Sz @ L.T) + n * D.s_Y**2 / J * np.trace(Sz[:d, :d]))
    mean = L @ Sz[:, m - 1]
    bias2 = float(mean @ mean)
    return SIDMoments(mean_error=mean, mse=mse, bias2=bias2, variance=mse - bias2)


def sid_moments_closed_form(problem: Any, lam: Any, t: int, k: int, J: int, *, eta: float,
                            w0: Any = None) -> SIDMoments:
    """Closed form for a constant step η and additive noise only (s_Z = s_Y = 0),
    docs/sid_bsgm.rst §14.1.

    M = (1−η)I + ηA, R_k = (I−Aᵀ)^{-1}(I − (Mᵀ)^k), G_k = Qᵀ + Bᵀ R_k P;
    E ĝ − ∇f = G_k M^t (w_0 − w) − Bᵀ(I−Aᵀ)^{-1}(Mᵀ)^k ∇₁E(w, λ);
    Cov ĝ = G_k (η² s_ε² Σ_{i<t} M^i M^{iᵀ}) G_kᵀ
            + [Σ₂₂ + Bᵀ R_k Σ₁₁ R_kᵀ B + Σ₂₁ R_kᵀ B + Bᵀ R_k Σ₁₂] / J.
    """
    D = problem_data(problem)
    if D.s_Z != 0.0 or D.s_Y != 0.0:
        raise ValueError(
            f"the closed form needs s_Z = s_Y = 0 (additive noise only); got "
            f"s_Z={D.s_Z:g}, s_Y={D.s_Y:g}"
        )
    lam = _lam(lam, D.n)
    w0 = _w0(w0, D.d)
    t, k, J = _tkJ(t, k, J)
    eta = require_range("eta", eta, low=0.0, high=1.0, low_inclusive=False)
    d = D.d
    ex = exact_solution(D, lam)
    eye = np.eye(d)
    M = (1.0 - eta) * eye + eta * D.A
    Mt_k = np.linalg.matrix_power(M.T, k)
    inv = np.linalg.inv(eye - D.A.T)
    Rk = inv @ (eye - Mt_k)
    Gk = D.Q.T + D.B.T @ Rk @ D.P
    mean = Gk @ np.linalg.matrix_power(M, t) @ (w0 - ex.w_star) - D.B.T @ inv @ Mt_k @ ex.g1_star
    Sw = np.zeros((d, d))
    Mi = eye.copy()
    for _ in range(t):
        Sw += Mi @ Mi.T
        Mi = M @ Mi
    Sig = D.Sigma_xi
    S11, S12, S21, S22 = Sig[:d, :d], Sig[:d, d:], Sig[d:, :d], Sig[d:, d:]
    BR = D.B.T @ Rk
    cov = (Gk @ (eta**2 * D.s_eps**2 * Sw) @ Gk.T
           + (S22 + BR @ S11 @ BR.T + S21 @ BR.T + BR @ S12) / J)
    bias2 = float(mean @ mean)
    var = float(np.trace(cov))
    return SIDMoments(mean_error=mean, mse=bias2 + var, bias2=bias2, variance=var)


# ----------------------------------------------------------------------------------------
# deterministic SID (Theorem 17', docs/sid_bsgm.rst §8 "Deterministic linear rates", §14.1 test 4)
# ----------------------------------------------------------------------------------------


def sid_deterministic(problem: Any, lam: Any, t: int, k: int, *, steps: Any = 1.0,
                      w0: Any = None) -> np.ndarray:
    """ĝ of SID without noise (exact oracles, J irrelevant), by direct iteration.

    With η ≡ 1 this is w_{i+1} = Φ(w_i, λ), v_{i+1} = Aᵀ v_i + ∇₁E(w_t, λ) (docs/sid_bsgm.rst §4.3).
    The moment recursion is inaccurate here (the MSE is a difference of large numbers), so
    the error is computed from this iterate directly (docs/sid_bsgm.rst §14.1, CORRECTED note).
    """
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    w = _w0(w0, D.d).copy()
    t = require_int("t", t, low=0)
    k = require_int("k", k, low=0)
    eta_w = step_sequence(steps, t)
    eta_v = step_sequence(steps, k)
    b = D.B @ lam + D.c
    for h in eta_w:
        w = (1.0 - h) * w + h * (D.A @ w + b)
    g1 = D.P @ w + D.Q @ lam + D.p
    g2 = D.Q.T @ w + D.S @ lam + D.s
    v = np.zeros(D.d)
    for h in eta_v:
        v = (1.0 - h) * v + h * (D.A.T @ v + g1)
    return g2 + D.B.T @ v


def sid_deterministic_error(problem: Any, lam: Any, t: int, k: int, *, steps: Any = 1.0,
                            w0: Any = None, centered: bool = False) -> float:
    """||ĝ − ∇f(λ)|| of deterministic SID (docs/sid_bsgm.rst §14.1 golden deterministic values).

    ``centered=False`` runs the iteration and subtracts ∇f (the spec's reference method;
    float64 floors the result near 1e-15·||∇f||). ``centered=True`` iterates the errors
    themselves, e_{i+1} = M_i e_i, u_{i+1} = M_iᵀ u_i + η_i P e_t (u_0 = −v*), and returns
    ||Qᵀe_t + Bᵀu_k||: the same quantity without cancellation, accurate far below that
    floor (used where the claim's bound is tiny, e.g. claim S3's negative control).
    """
    if not centered:
        g = sid_deterministic(problem, lam, t, k, steps=steps, w0=w0)
        return float(np.linalg.norm(g - exact_solution(problem, lam).grad_f))
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    t = require_int("t", t, low=0)
    k = require_int("k", k, low=0)
    ex = exact_solution(D, lam)
    e = _w0(w0, D.d) - ex.w_star
    for h in step_sequence(steps, t):
        e = (1.0 - h) * e + h * (D.A @ e)
    dg1 = D.P @ e
    u = -ex.v_star
    for h in step_sequence(steps, k):
        u = (1.0 - h) * u + h * (D.A.T @ u + dg1)
    return float(np.linalg.norm(D.Q.T @ e + D.B.T @ u))


@dataclass(frozen=True)
class DeterministicConstant:
    """C_det = c_w D_w + L_Φ L_E/(1−q) of Corollary 10' (docs/sid_bsgm.rst §9, §14.1 suggested
    test 4).

    c_w = μ₂ + ν₂ L_E/(1−q) + L_Φ L_v with ν₁ = ν₂ = 0 (Φ is affine), L_v = μ₁/(1−q),
    μ₁ = ||P||, μ₂ = ||Q||, L_Φ = ||B||, D_w = ||w_0 − w(λ)||, and L_E the largest
    ||∇₁E(w_t, λ)|| on the deterministic LL path (A(iv) fails for affine ∇₁E; the proofs use
    L_E only as a bound on the ∇₁E values met, docs/sid_bsgm.rst §14.1).
    """

    C: float
    q: float
    c_w: float
    D_w: float
    L_E: float
    L_Phi: float


def deterministic_constant(problem: Any, lam: Any, *, w0: Any = None,
                           t_max: int = 200) -> DeterministicConstant:
    """The constant of ||ĝ − ∇f|| ≤ C q^{min(t,k)} for η ≡ 1 (DERIVED, docs/sid_bsgm.rst §8, §9)."""
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    w = _w0(w0, D.d)
    t_max = require_int("t_max", t_max, low=0)
    ex = exact_solution(D, lam)
    q = float(np.linalg.norm(D.A, 2))
    mu1, mu2 = float(np.linalg.norm(D.P, 2)), float(np.linalg.norm(D.Q, 2))
    L_Phi = float(np.linalg.norm(D.B, 2))
    D_w = float(np.linalg.norm(w - ex.w_star))
    b = D.B @ lam + D.c
    L_E = 0.0
    for _ in range(t_max + 1):
        L_E = max(L_E, float(np.linalg.norm(D.P @ w + D.Q @ lam + D.p)))
        w = D.A @ w + b
    L_v = mu1 / (1.0 - q)
    c_w = mu2 + L_Phi * L_v
    return DeterministicConstant(C=c_w * D_w + L_Phi * L_E / (1.0 - q), q=q, c_w=c_w,
                                 D_w=D_w, L_E=L_E, L_Phi=L_Phi)


# ----------------------------------------------------------------------------------------
# stochastic fixed-point solvers (Theorem S, docs/sid_bsgm.rst §8; claim S4)
# ----------------------------------------------------------------------------------------


def ll_error_moments(problem: Any, lam: Any, t: int, *, steps: Any,
                     w0: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean m_t and second moment C_t = E[e_t e_tᵀ] of the LL error e_t = w_t − w(λ) of
    the stochastic KM iteration (6) (docs/sid_bsgm.rst §8, §14.1; the recursion of
    :func:`ll_error_path`, which returns only tr C_i along the path)."""
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    t = require_int("t", t, low=0)
    ex = exact_solution(D, lam)
    m, C, _ = _ll_moments(D, lam, ex.w_star, _w0(w0, D.d) - ex.w_star, step_sequence(steps, t))
    return m, C


def ll_error_path(problem: Any, lam: Any, t: int, *, steps: Any, w0: Any = None) -> np.ndarray:
    """Exact E||w_i − w(λ)||², i = 0..t, of the stochastic KM iteration (6) (docs/sid_bsgm.rst §8,
    §14.1).

    Recursion on the mean and second moment of e_i = w_i − w(λ) (see :func:`_ll_moments`).
    """
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    t = require_int("t", t, low=0)
    ex = exact_solution(D, lam)
    _, _, path = _ll_moments(D, lam, ex.w_star, _w0(w0, D.d) - ex.w_star,
                             step_sequence(steps, t))
    return path


def ls_error_path(problem: Any, lam: Any, k: int, *, steps: Any,
                  g1: Any = None) -> np.ndarray:
    """Exact E||v_i − v̂||², i = 0..k, of the LS solver (7) with a fixed right-hand side.

    Conditionally on (w_t, ∇₁Ê_J) (docs/sid_bsgm.rst §8: Theorem S is applied conditionally), the
    LS is
    v_{i+1} = (1−η_i)v_i + η_i((A+Ẑ_i)ᵀ v_i + g₁) with v_0 = 0 and v̂ = (I−Aᵀ)^{-1} g₁.
    ``g1`` defaults to ∇₁E(w(λ), λ). For u_i = v_i − v̂:
    E u_{i+1} = M_iᵀ E u_i, E u_{i+1}u_{i+1}ᵀ = M_iᵀ E[u_i u_iᵀ] M_i + η_i² s_Z² E||v_i||² I.
    """
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    k = require_int("k", k, low=0)
    eta = step_sequence(steps, k)
    d = D.d
    g1v = exact_solution(D, lam).g1_star if g1 is None else np.asarray(g1, dtype=np.float64)
    if g1v.shape != (d,) or not np.all(np.isfinite(g1v)):
        raise ValueError(f"g1 must be a finite vector of shape ({d},), got {g1v.shape}")
    vhat = np.linalg.solve(np.eye(d) - D.A.T, g1v)
    m = -vhat
    C = np.outer(vhat, vhat)
    vv = float(vhat @ vhat)
    path = np.empty(k + 1)
    path[0] = np.trace(C)
    for i, h in enumerate(eta):
        Mt = (1.0 - h) * np.eye(d) + h * D.A.T
        ev2 = np.trace(C) + 2.0 * float(m @ vhat) + vv
        m = Mt @ m
        C = Mt @ C @ Mt.T + h * h * D.s_Z**2 * ev2 * np.eye(d)
        path[i + 1] = np.trace(C)
    return path


@dataclass(frozen=True)
class TheoremSConstants:
    """Constants of Theorem S(a) (docs/sid_bsgm.rst §8): c = 1−q², ν, and whether its conditions
    hold."""

    c: float
    nu: float
    conditions_hold: bool
    sigma1: float
    sigma2: float


def theorem_s_constants(q: float, sigma1: float, sigma2: float, beta: float, gamma: float,
                        dist0_sq: float) -> TheoremSConstants:
    """ν = max{γ ||x_0 − x̄||², β²σ₁/(βc/2 − 1)} when βc/2 > 1 and
    γ ≥ β max{1, 2σ₂/c} (Theorem S(a), DERIVED, docs/sid_bsgm.rst §8); then E||x_i − x̄||² ≤ "
        "ν/(γ+i)."""
    q = require_range("q", q, low=0.0, high=1.0, high_inclusive=False)
    c = 1.0 - q * q
    ok = beta * c / 2.0 > 1.0 and gamma >= beta * max(1.0, 2.0 * sigma2 / c)
    nu = max(gamma * dist0_sq, beta**2 * sigma1 / (beta * c / 2.0 - 1.0)) if ok else math.inf
    return TheoremSConstants(c=c, nu=nu, conditions_hold=ok, sigma1=sigma1, sigma2=sigma2)


def ll_theorem_s(problem: Any, lam: Any, *, beta: float, gamma: float,
                 w0: Any = None) -> TheoremSConstants:
    """Theorem S(a) for the LL solver on the linear contraction (docs/sid_bsgm.rst §14.1, C(ii)):
    σ₂ = 2 d s_Z², σ₁ = 2 d s_Z² ||w(λ)||² + d s_Y² ||λ||² + d s_ε²."""
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    ex = exact_solution(D, lam)
    d = D.d
    sigma2 = 2 * d * D.s_Z**2
    sigma1 = (2 * d * D.s_Z**2 * float(ex.w_star @ ex.w_star) + d * D.s_Y**2 * float(lam @ lam)
              + d * D.s_eps**2)
    dist0 = float(np.sum((_w0(w0, d) - ex.w_star) ** 2))
    return theorem_s_constants(float(np.linalg.norm(D.A, 2)), sigma1, sigma2, beta, gamma,
                               dist0)


def ls_theorem_s(problem: Any, lam: Any, *, beta: float, gamma: float,
                 g1: Any = None) -> TheoremSConstants:
    """Theorem S(a) for the LS solver with fixed right-hand side g₁ (docs/sid_bsgm.rst §8): the
    oracle
    noise Ẑᵀv has E||Ẑᵀv||² = d s_Z² ||v||² ≤ 2 d s_Z² ||v − v̂||² + 2 d s_Z² ||v̂||², so
    σ₂ = 2 d s_Z², σ₁ = 2 d s_Z² ||v̂||², and ||x_0 − x̄|| = ||v̂|| (v_0 = 0)."""
    D = problem_data(problem)
    lam = _lam(lam, D.n)
    d = D.d
    g1v = exact_solution(D, lam).g1_star if g1 is None else np.asarray(g1, dtype=np.float64)
    vhat = np.linalg.solve(np.eye(d) - D.A.T, g1v)
    vv = float(vhat @ vhat)
    return theorem_s_constants(float(np.linalg.norm(D.A, 2)), 2 * d * D.s_Z**2 * vv,
                               2 * d * D.s_Z**2, beta, gamma, vv)


# ----------------------------------------------------------------------------------------
# random instances (tests and theory checks)
# ----------------------------------------------------------------------------------------


def random_linear_contraction(d: int, n: int, rng: np.random.Generator, *, q: float = 0.8,
                              s_Z: float = 0.05, s_Y: float = 0.05, s_eps: float = 0.3,
                              xi_scale: float = 1.0, full_sigma: bool = True):
    """A random :class:`~refbilevel.problems.contraction.LinearContraction` with ||A|| = q.

    Spectra by construction (docs/design.rst): A = U diag(σ) Vᵀ with Haar U, V and singular values
    σ ∈ [0.2q, q], the largest equal to q; P and S symmetric positive definite with
    eigenvalues in [0.5, 2]; B, Q with N(0, 1/d) entries; Σ_ξ = xi_scale² · (a random SPD
    matrix with eigenvalues in [0.25, 1]) if ``full_sigma`` (so ξ has correlated
    components), else xi_scale² · I. Draw order from ``rng``: U, V, σ, B, c, P's basis and
    eigenvalues, Q, S's basis and eigenvalues, p, s, Σ_ξ's basis and eigenvalues.
    """
    from refbilevel.problems.contraction import LinearContraction
    from refbilevel.problems.spectra import orthogonal_matrix, spd_matrix

    d = require_int("d", d, low=1)
    n = require_int("n", n, low=1)
    q = require_range("q", q, low=0.0, high=1.0, high_inclusive=False)
    U, V = orthogonal_matrix(d, rng), orthogonal_matrix(d, rng)
    sv = q * rng.uniform(0.2, 1.0, d)
    sv[0] = q
    A = (U * sv) @ V.T
    B = rng.standard_normal((d, n)) / np.sqrt(d)
    c = rng.standard_normal(d)
    P = spd_matrix(rng.uniform(0.5, 2.0, d), orthogonal_matrix(d, rng))
    Q = rng.standard_normal((d, n)) / np.sqrt(d)
    S = spd_matrix(rng.uniform(0.5, 2.0, n), orthogonal_matrix(n, rng))
    p = rng.standard_normal(d)
    s = rng.standard_normal(n)
    if full_sigma:
        Sig = spd_matrix(rng.uniform(0.25, 1.0, d + n), orthogonal_matrix(d + n, rng))
    else:
        Sig = np.eye(d + n)
    return LinearContraction(A, B, c, P, Q, S, p, s, s_Z=s_Z, s_Y=s_Y, s_eps=s_eps,
                             Sigma_xi=xi_scale**2 * Sig)
