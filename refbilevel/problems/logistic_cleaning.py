"""Logistic data hyper-cleaning: a non-quadratic lower level with a y-dependent Hessian
(FdeHBO's §10.2 test problem; docs/fdehbo.rst §10.2, §9.2).

    g(x, y) = (1/N) Σ_i σ(x_i) ℓ(b_i a_iᵀy) + (μ/2)||y||²,   ℓ(z) = log(1 + e^{−z})
    f(x, y) = (c_f/(2m)) ||C y − e||² + (ρ/2)||x||²

The upper-level variable x ∈ R^N weighs the N training rows through the sigmoid σ (a fraction
``corruption`` of the labels b_i ∈ {±1} is flipped); y ∈ R^q is a linear classifier; the
upper level is the squared validation error of its margins against clean targets e_j = ±1
(weight c_f, ``upper_scale``: with the 1/N of g, ∇Φ is O(c_f/N), and c_f sets how much
Φ's curvature, hence the oracle noise, matters against the step sizes), plus a small ridge
ρ that keeps the stationary points bounded (as x_i → ±∞, σ'(x_i) → 0 and ∇Φ would vanish
at infinity). Φ is nonconvex in x. g is μ-strongly convex, its Hessian
∇²_yy g = (1/N)Σ σ(x_i) ℓ''(z_i) a_i a_iᵀ + μI depends on y (ℓ'' = σ(z)σ(−z)), so the
finite differences (9), (11) of FdeHBO carry an O(δ²) bias (docs/fdehbo.rst §2, §10.2).
y*(x) has no closed form: damped Newton to machine precision
(:func:`refbilevel.problems.newton.damped_newton`); ∇Φ is the Ghadimi–Wang formula (2) at
y*.

Constants (DERIVED here; docs/fdehbo.rst §5 names): mu = μ; L_y = ||A||²/(4N) + μ bounds
∇²_yy g (σ ≤ 1, ℓ'' ≤ ¼); ``extra["L_gyy"]`` = (|ℓ'''|_max/N) Σ_i ||a_i||³ with
|ℓ'''|_max = 1/(6√3) bounds the Lipschitz constant of ∇²_yy g in y; ``extra["L_gxy"]`` =
(1/(16N)) (Σ_i ||a_i||⁴)^{1/2} bounds that of ∇²_xy g in y (σ' ≤ ¼, |d/dz σ(−z)| ≤ ¼).

No Lipschitz constant of ∇φ is stated, on purpose. Rigorous ingredients of L̄
(docs/unibio.rst §3.3) exist: l_g1 = ||A||/(4N), l_f1 = ρ, l_f2 = c_f||C||²/m, a joint
L_H and l_g2 from the bounds above, and C_f = (c_f/m)||C||(||C|| R_y + ||e||) with
R_y = ||A||/(2μ√N) ≥ ||y*(x)|| for every x. On the default instance they give L̄ ≈ 120,
against ||∇²φ|| ≈ 0.012 measured by finite differences of the exact ∇φ along random
directions (worst-case σ(x_i) ≈ 1 and ||y*|| ≈ R_y, ten times the actual, compound through
the 1/μ² term); default step sizes computed from it would not move in any practical horizon.
Methods whose defaults need L_φ therefore refuse this problem in the "default" and "theory"
modes and run it in "paper" mode, with the authors' fixed values (docs/design.rst).

Per-sample functions for row-weight oracles (:class:`refbilevel.oracles.row_weights.
RowWeightOracle`): every method ``*_weighted(x, y, [v,] w)`` evaluates the same quantity with
the lower-level rows weighted by w_i (g(·; w) = (1/N)Σ w_i σ(x_i) ℓ_i + (μ/2)||y||²) or the
upper-level rows by u_j; w ≡ 1 gives the exact functions.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.problems.base import BilevelProblem, batch_broadcast
from refbilevel.problems.constants import Constants
from refbilevel.problems.newton import damped_newton
from refbilevel.validation import require_int, require_range

#: max |ℓ'''(z)| = max |σ(z)σ(−z)(1 − 2σ(z))| = 1/(6√3)
_L3 = 1.0 / (6.0 * math.sqrt(3.0))


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form


def _softplus(z):
    return np.logaddexp(0.0, z)


class LogisticCleaning(BilevelProblem):
    """Logistic hyper-cleaning (see the module docstring)."""

    name = "logistic-cleaning"
    hessian_independent_of_y = False

    def __init__(self, n: int = 40, d: int = 5, m: int = 30, mu: float = 0.1,
                 rho: float = 0.01, corruption: float = 0.2, upper_scale: float = 1.0,
                 seed: int = 0):
        self.d_x = require_int("n", n, low=1)
        self.d_y = require_int("d", d, low=1)
        self.m = require_int("m", m, low=1)
        self.mu = require_range("mu", mu, low=0.0, low_inclusive=False)
        self.rho = require_range("rho", rho, low=0.0)
        self.upper_scale = require_range("upper_scale", upper_scale, low=0.0,
                                         low_inclusive=False)
        corruption = require_range("corruption", corruption, low=0.0, high=1.0)
        self.p = 2.0
        rng = np.random.default_rng(seed)
        w_true = rng.standard_normal(self.d_y)
        self.A = rng.standard_normal((self.d_x, self.d_y))
        b = np.sign(self.A @ w_true + 0.3 * rng.standard_normal(self.d_x))
        b[b == 0] = 1.0
        flip = rng.random(self.d_x) < corruption
        b[flip] = -b[flip]
        self.b = b
        self.corrupted = flip
        self.Ab = self.A * b[:, None]  # rows b_i a_i
        self.C = rng.standard_normal((self.m, self.d_y))
        e = np.sign(self.C @ w_true)
        e[e == 0] = 1.0
        self.e = e
        norms = np.linalg.norm(self.A, axis=1)
        N = self.d_x
        L_y = float(np.linalg.norm(self.A, 2) ** 2 / (4 * N) + self.mu)
        self.constants = Constants(
            mu=self.mu, p=2.0, L_y=L_y,
            extra={"L_gyy": float(_L3 * np.sum(norms**3) / N),
                   "L_gxy": float(np.sqrt(np.sum(norms**4)) / (16 * N)),
                   "n_corrupted": int(flip.sum())},
            sources={"mu, L_y, L_gyy, L_gxy": "DERIVED bounds of the module docstring "
                                               "(docs/fdehbo.rst §5, §10.2)"})

    # ---- weighted (per-sample) functions ------------------------------------------------
    def _margins(self, y):
        return y @ self.Ab.T  # z_i = b_i a_iᵀ y, shape (..., N)

    def g_weighted(self, x, y, w):
        s = _sigmoid(x)
        return (np.sum(w * s * _softplus(-self._margins(y)), -1) / self.d_x
                + 0.5 * self.mu * np.sum(y * y, -1))

    def grad_y_g_weighted(self, x, y, w):
        coef = -w * _sigmoid(x) * _sigmoid(-self._margins(y)) / self.d_x
        return coef @ self.Ab + self.mu * y

    def grad_x_g_weighted(self, x, y, w):
        s = _sigmoid(x)
        return w * s * (1 - s) * _softplus(-self._margins(y)) / self.d_x

    def hvp_yy_g_weighted(self, x, y, v, w):
        z = self._margins(y)
        curv = w * _sigmoid(x) * _sigmoid(z) * _sigmoid(-z) / self.d_x
        return (curv * (v @ self.Ab.T)) @ self.Ab + self.mu * v

    def _cross(self, x, y, w):
        s = _sigmoid(x)
        return -w * s * (1 - s) * _sigmoid(-self._margins(y)) / self.d_x

    def jvp_xy_g_weighted(self, x, y, v, w):
        return self._cross(x, y, w) * (v @ self.Ab.T)

    def jvp_yx_g_weighted(self, x, y, u, w):
        return (self._cross(x, y, w) * u) @ self.Ab

    def grad_y_f_weighted(self, x, y, u):
        return self.upper_scale * ((u * (y @ self.C.T - self.e)) @ self.C) / self.m

    def grad_x_f_weighted(self, x, y, u):
        return batch_broadcast(self.rho * x, y)

    # ---- the BilevelProblem interface (w ≡ 1) ---------------------------------------------
    def _f(self, x, y):
        r = y @ self.C.T - self.e
        return (0.5 * self.upper_scale * np.sum(r * r, -1) / self.m
                + 0.5 * self.rho * np.sum(x * x, -1))

    def _g(self, x, y):
        return self.g_weighted(x, y, 1.0)

    def _grad_x_f(self, x, y):
        return self.grad_x_f_weighted(x, y, 1.0)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self.grad_y_f_weighted(x, y, 1.0), x)

    def _grad_x_g(self, x, y):
        return self.grad_x_g_weighted(x, y, 1.0)

    def _grad_y_g(self, x, y):
        return self.grad_y_g_weighted(x, y, 1.0)

    def _hvp_yy_g(self, x, y, v):
        return self.hvp_yy_g_weighted(x, y, v, 1.0)

    def _jvp_xy_g(self, x, y, v):
        return self.jvp_xy_g_weighted(x, y, v, 1.0)

    def _jvp_yx_g(self, x, y, w):
        return self.jvp_yx_g_weighted(x, y, w, 1.0)

    def _solve_hessian_yy(self, x, y, rhs):
        z = self._margins(y)
        curv = _sigmoid(x) * _sigmoid(z) * _sigmoid(-z) / self.d_x
        Hm = np.einsum("...i,ij,ik->...jk", curv, self.Ab, self.Ab)
        idx = np.arange(self.d_y)
        Hm[..., idx, idx] += self.mu
        Hm, r = np.broadcast_arrays(Hm, rhs[..., None])
        return np.linalg.solve(Hm, r)[..., 0]

    def _y_star(self, x):
        # one-entry cache: a trace asks for ∇Φ and then y* at the same (large) batch of
        # points, and each Newton solve costs seconds there; equal inputs give equal outputs
        last = getattr(self, "_y_star_last", None)
        if last is not None and last[0].shape == x.shape and np.array_equal(last[0], x):
            return last[1].copy()
        y0 = np.zeros(x.shape[:-1] + (self.d_y,))
        y = damped_newton(lambda y: self._g(x, y), lambda y: self._grad_y_g(x, y),
                          lambda y, r: self._solve_hessian_yy(x, y, r), y0)
        self._y_star_last = (np.array(x, copy=True), y.copy())
        return y
