"""ℓ_p data hyper-cleaning lower level on synthetic data (UniBiO Example 2; docs/unibio.rst §6.2).

    g(λ, w) = (1/n) Σ_i σ(λ_i) |a_iᵀw - b_i|^p + c ||w||_p^p        (σ = sigmoid; eq. (13))
    f(λ, w) = (1/(2m)) ||A_val w - b_val||²                           (clean validation loss)

The UL variable λ ∈ R^n weighs the n training samples; the LL is (mu, p)-uniformly convex
but, for p > 2, not strongly convex (the paper's key point). The paper's experiment uses an
RNN on SNLI; here the data are synthetic regression rows (spec: "the example only motivates
it"): b = A w_true + noise, and a fraction ``corruption`` of training targets is replaced by
N(0, 3²) draws (the regression analogue of label flipping). y* = w*(λ) has no closed form and
is computed by damped Newton to machine precision.

Constants: mu = c p mu_p d^{1-p/2}, from the c||w||_p^p term alone (DERIVED, docs/unibio.rst §6.2
with
the exact 1-D modulus mu_p in place of Lindqvist's smaller 1/(2^{p-1}-1)); the data term only
adds convexity. The paper's mu_1 (via the ℓ_p minimum singular value) is NOT RECOVERED.
"""

from __future__ import annotations

import numpy as np

from refbilevel.power_map import power_map
from refbilevel.problems.base import BilevelProblem, batch_broadcast
from refbilevel.problems.constants import Constants
from refbilevel.problems.newton import damped_newton
from refbilevel.problems.uniformly_convex import uniform_convexity_modulus_1d
from refbilevel.validation import require_int, require_range


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free form


class LpHyperCleaning(BilevelProblem):
    """ℓ_p hyper-cleaning: weights λ on n noisy training rows (docs/unibio.rst §6.2)."""

    name = "lp-hypercleaning"
    hessian_independent_of_y = False

    def __init__(self, n: int = 20, d: int = 5, m: int = 30, p: float = 3.0, c: float = 0.1,
                 corruption: float = 0.3, seed: int = 0):
        self.d_x = require_int("n", n, low=1)
        self.d_y = require_int("d", d, low=1)
        self.m = require_int("m", m, low=1)
        self.p = require_range("p", p, low=2.0)
        self.c = require_range("c", c, low=0.0, low_inclusive=False)
        corruption = require_range("corruption", corruption, low=0.0, high=1.0)
        rng = np.random.default_rng(seed)
        w_true = rng.standard_normal(self.d_y)
        self.A = rng.standard_normal((self.d_x, self.d_y))
        self.b = self.A @ w_true + 0.1 * rng.standard_normal(self.d_x)
        flip = rng.random(self.d_x) < corruption
        self.b[flip] = 3.0 * rng.standard_normal(int(flip.sum()))
        self.corrupted = flip
        self.A_val = rng.standard_normal((self.m, self.d_y))
        self.b_val = self.A_val @ w_true + 0.1 * rng.standard_normal(self.m)
        mu = self.c * self.p * uniform_convexity_modulus_1d(self.p) * self.d_y ** (1 - self.p / 2)
        self.constants = Constants(
            mu=mu, p=self.p, l_f1=0.0,
            extra={"n_corrupted": int(flip.sum())},
            sources={"mu": "docs/unibio.rst §6.2 (DERIVED; c||w||_p^p term, exact 1-D modulus)"},
        )

    def _r(self, y):
        return y @ self.A.T - self.b

    def _f(self, x, y):
        res = y @ self.A_val.T - self.b_val
        return batch_broadcast(0.5 * np.sum(res * res, axis=-1, keepdims=True) / self.m, x)[..., 0]

    def _g(self, x, y):
        r = self._r(y)
        return (np.sum(_sigmoid(x) * np.abs(r) ** self.p, axis=-1) / self.d_x
                + self.c * np.sum(np.abs(y) ** self.p, axis=-1))

    def _grad_x_f(self, x, y):
        return batch_broadcast(np.zeros_like(x), y)

    def _grad_y_f(self, x, y):
        return batch_broadcast((y @ self.A_val.T - self.b_val) @ self.A_val / self.m, x)

    def _grad_x_g(self, x, y):
        s = _sigmoid(x)
        return s * (1 - s) * np.abs(self._r(y)) ** self.p / self.d_x

    def _grad_y_g(self, x, y):
        p = self.p
        return (p / self.d_x * (_sigmoid(x) * power_map(self._r(y), p)) @ self.A
                + self.c * p * power_map(y, p))

    def _curvature(self, x, y):
        """Per-row and per-coordinate weights of ∇²_ww g = Aᵀ diag(row) A + diag(coord)."""
        p = self.p
        row = p * (p - 1) / self.d_x * _sigmoid(x) * np.abs(self._r(y)) ** (p - 2)
        coord = self.c * p * (p - 1) * np.abs(y) ** (p - 2)
        return row, coord

    def _hvp_yy_g(self, x, y, v):
        row, coord = self._curvature(x, y)
        return (row * (v @ self.A.T)) @ self.A + coord * v

    def _cross_weights(self, x, y):
        s = _sigmoid(x)
        return self.p / self.d_x * s * (1 - s) * power_map(self._r(y), self.p)

    def _jvp_xy_g(self, x, y, v):
        return self._cross_weights(x, y) * (v @ self.A.T)

    def _jvp_yx_g(self, x, y, w):
        return (self._cross_weights(x, y) * w) @ self.A

    def _solve_hessian_yy(self, x, y, rhs):
        row, coord = self._curvature(x, y)
        Hm = np.einsum("...i,ij,ik->...jk", row, self.A, self.A)
        idx = np.arange(self.d_y)
        Hm[..., idx, idx] += coord
        Hm, r = np.broadcast_arrays(Hm, rhs[..., None])
        return np.linalg.solve(Hm, r)[..., 0]

    def _y_star(self, x):
        y0 = np.zeros(x.shape[:-1] + (self.d_y,))
        return damped_newton(lambda y: self._g(x, y), lambda y: self._grad_y_g(x, y),
                             lambda y, r: self._solve_hessian_yy(x, y, r), y0)
