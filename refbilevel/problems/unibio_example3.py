"""UniBiO Example 3 = the Section 6 synthetic problem (docs/unibio.rst §6.1; PAPER + CODE).

    g(x, y) = y^p/p - y sin x,      f(x, y) = sin(clip([y]^{p-1}, -pi/2, pi/2)),   x, y ∈ R,

with p an even integer. Closed forms (DERIVED, sympy-checked in the spec):
y*(x) = [sin x]^{1/(p-1)}, phi(x) = sin(sin x), ∇phi(x) = cos(x) cos(sin x); H ≡ 1 (the
ordinary Hessian (p-1)y^{p-2} is singular at y = 0 for p > 2); f_u = cos(u) 1{|u| <= pi/2}.
"""

from __future__ import annotations

import numpy as np

from refbilevel.power_map import power_map_jacobian_diag, signed_power
from refbilevel.problems.base import BilevelProblem, batch_broadcast
from refbilevel.problems.constants import Constants, lipschitz_hypergradient_constants
from refbilevel.problems.uniformly_convex import uniform_convexity_modulus_1d
from refbilevel.validation import require_even_integer

_HALF_PI = 0.5 * np.pi


class UniBiOExample3(BilevelProblem):
    """The scalar LLUC problem of UniBiO Example 3 / Section 6 (docs/unibio.rst §6.1)."""

    name = "unibio-example3"
    hessian_independent_of_y = True
    supports_array_modules = True

    def __init__(self, p: int = 4):
        self.p = float(require_even_integer("p", p))
        self.d_x = self.d_y = 1
        p_ = self.p
        mu = uniform_convexity_modulus_1d(p_)
        l_f2 = (p_ - 1.0) * _HALF_PI ** ((p_ - 2.0) / (p_ - 1.0))
        l_p, L1, L2 = lipschitz_hypergradient_constants(
            mu=mu, p=p_, l_g1=1.0, l_g2=1.0, L_H=0.0, l_f1=0.0, l_f2=l_f2, C_f=1.0
        )
        self.constants = Constants(
            mu=mu, p=p_,
            L_0=(p_ - 1.0) if p_ > 2 else 1.0, L_1=(p_ - 1.0) if p_ > 2 else 0.0,
            l_g1=1.0, l_g2=1.0, L_H=0.0, C=1.0, l_f1=0.0, l_f2=l_f2, C_f=1.0,
            l_p=l_p, L_phi1=L1, L_phi2=L2,
            extra={
                # the sharp Hölder constant of the odd root (docs/unibio.rst §6.1 table)
                "l_p_exact": 2.0 ** ((p_ - 2.0) / (p_ - 1.0)),
                "mu_nesterov": 2.0 ** (2.0 - p_),
                "phi_inf": -np.sin(1.0),  # phi = sin(sin x) >= -sin 1 (docs/unibio.rst §6.1)
            },
            sources={
                "mu": "docs/unibio.rst §6.1 table, exact 1-D modulus mu_p",
                "L_0,L_1,l_g1,l_g2,L_H,C,l_f1,l_f2,C_f": "docs/unibio.rst §6.1 table (DERIVED)",
                "l_p,L_phi1,L_phi2": "docs/unibio.rst §3.1, §3.3 (DERIVED formulas)",
                "l_p_exact": "docs/unibio.rst §6.1 table, Lemma 4.2 row",
            },
        )

    def _u(self, y):
        return signed_power(y, self.p - 1.0)

    def _f(self, x, y):
        xp = self.xp
        return batch_broadcast(xp.sin(xp.clip(self._u(y), -_HALF_PI, _HALF_PI)), x)[..., 0]

    def _g(self, x, y):
        return (y ** self.p / self.p - y * self.xp.sin(x))[..., 0]

    def _fu_scalar(self, y):
        xp = self.xp
        u = self._u(y)
        return xp.where(xp.abs(u) <= _HALF_PI, xp.cos(u), 0.0)

    def _grad_x_f(self, x, y):
        return batch_broadcast(self.xp.zeros_like(x), y)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self._fu_scalar(y) * power_map_jacobian_diag(y, self.p), x)

    def _grad_x_g(self, x, y):
        return -y * self.xp.cos(x)

    def _grad_y_g(self, x, y):
        return self._u(y) - self.xp.sin(x)

    def _hvp_yy_g(self, x, y, v):
        return batch_broadcast(power_map_jacobian_diag(y, self.p) * v, x)

    def _jvp_xy_g(self, x, y, v):
        return batch_broadcast(-self.xp.cos(x) * v, y)

    _jvp_yx_g = _jvp_xy_g  # 1 × 1 cross block: symmetric

    # Analytic generalized derivatives (docs/unibio.rst §6.1): finite at y = 0 for every p.
    def _f_u(self, x, y):
        return batch_broadcast(self._fu_scalar(y), x)

    def _gen_hvp(self, x, y, v):
        return batch_broadcast(v, x, y)

    _gen_hvp_T = _gen_hvp

    def _y_star(self, x):
        return signed_power(np.sin(x), 1.0 / (self.p - 1.0))

    def _phi(self, x):
        return np.sin(np.sin(x))[..., 0]

    def _grad_phi(self, x):
        return np.cos(x) * np.cos(np.sin(x))
