"""Vector lower levels with (mu, p)-uniform convexity (UniBiO, docs/unibio.rst §2.1, §6.4, §1.6).

Two families, any dimension and any real p >= 2 (sign-preserving powers make non-integer p
well defined, docs/unibio.rst §1.2):

- :class:`SeparableUniformlyConvex` — the DERIVED Example-4-like instance of docs/unibio.rst
  §6.4: g = (1/p) Σ|y_i|^p - <sin x, y>, f = <c, [y]^{∘(p-1)}>; H = I, f_u = c, closed-form
  y*, phi, ∇phi.
- :class:`NonSeparableUniformlyConvex` — the instance of docs/unibio.rst §1.6 used to show that
  the vector hypergradient needs H^{-T}: g = (1/p)||y||_p^p + ½ yᵀAy - xᵀBy with A positive
  definite and non-diagonal, f = <c, [y]^{∘(p-1)}> + (rho/2)||x||². Its generalized Hessian
  H = I + A D(y)^{-1} is not symmetric; y* has no closed form and is computed by damped Newton
  to machine precision (:mod:`refbilevel.problems.newton`).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.optimize import minimize_scalar

from refbilevel.power_map import power_map, power_map_jacobian_diag, signed_power
from refbilevel.problems.base import BilevelProblem, batch_broadcast
from refbilevel.problems.constants import Constants, lipschitz_hypergradient_constants
from refbilevel.problems.newton import damped_newton
from refbilevel.problems.spectra import orthogonal_matrix, spd_matrix
from refbilevel.validation import require_int, require_range, require_vector


@functools.lru_cache(maxsize=64)
def uniform_convexity_modulus_1d(p: float) -> float:
    """The exact modulus mu_p of s -> |s|^p / p in the (mu/p)|Δ|^p convention.

    By p-homogeneity mu_p = min_s [ |s+1|^p - |s|^p - p [s]^{p-1} ] (docs/unibio.rst §6.1
    table: 1, 1/3, 0.10129, 0.029243 for p = 2, 4, 6, 8). Lindqvist's 1/(2^{p-1}-1) is a
    lower bound of it. The minimizer lies in [-1, 0] (both other terms are >= 1 outside).
    """
    p = require_range("p", p, low=2.0)

    def h(s: float) -> float:
        return abs(s + 1.0) ** p - abs(s) ** p - p * np.sign(s) * abs(s) ** (p - 1.0)

    grid = np.linspace(-1.0, 0.0, 2001)
    vals = np.array([h(s) for s in grid])
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(h, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return float(min(res.fun, vals[i]))


def vector_uniform_convexity_modulus(p: float, d: int) -> float:
    """Modulus of (1/p)Σ|y_i|^p w.r.t. (mu/p)||Δ||_2^p in R^d: mu_p d^{1 - p/2} (DERIVED).

    Coordinatewise inequality with the 1-D modulus, then ||Δ||_p^p >= d^{1-p/2} ||Δ||_2^p
    for p >= 2.
    """
    return uniform_convexity_modulus_1d(p) * d ** (1.0 - p / 2.0)


class SeparableUniformlyConvex(BilevelProblem):
    """g = (1/p)Σ|y_i|^p - <sin x, y>, f = <c, [y]^{∘(p-1)}> (docs/unibio.rst §6.4, DERIVED).

    y* = [sin x]^{∘1/(p-1)}, phi = <c, sin x>, ∇phi = c ⊙ cos x; H = I and f_u = c exactly,
    so the generalized quantities are finite at y_i = 0 (their analytic limits, §1.5).
    """

    name = "uniformly-convex-separable"
    hessian_independent_of_y = True
    supports_array_modules = True

    def __init__(self, d: int = 3, p: float = 4.0, c=None):
        self.d_x = self.d_y = require_int("d", d, low=1)
        self.p = require_range("p", p, low=2.0)
        self.c = (
            np.linspace(1.0, -0.5, self.d_y) if c is None else require_vector("c", c, self.d_y)
        )
        mu = vector_uniform_convexity_modulus(self.p, self.d_y)
        C_f = float(np.linalg.norm(self.c))
        l_p, L1, L2 = lipschitz_hypergradient_constants(
            mu=mu, p=self.p, l_g1=1.0, l_g2=1.0, L_H=0.0, l_f1=0.0, l_f2=0.0, C_f=C_f
        )
        # (L_0, L_1)-smoothness (docs/unibio.rst §2.1(ii)), DERIVED: |y|^{p-2} <= 1 + |y|^{p-1} and
        # |y_i|^{p-1} <= |∇_y g|_i + 1, so ||∇²g|| <= (p-1)(2 + ||∇_y g||); p = 2: ∇²g = I
        L_0, L_1_ = (1.0, 0.0) if self.p == 2 else (2.0 * (self.p - 1.0), self.p - 1.0)
        self.constants = Constants(
            mu=mu, p=self.p, L_0=L_0, L_1=L_1_, l_g1=1.0, l_g2=1.0, L_H=0.0, C=1.0, l_f1=0.0,
            l_f2=0.0, C_f=C_f, l_p=l_p, L_phi1=L1, L_phi2=L2,
            extra={"phi_inf": -float(np.sum(np.abs(self.c)))},
            sources={
                "L_0,L_1": "DERIVED (see the comment in __init__)",
                "mu": "docs/unibio.rst §6.1 table (1-D modulus) × d^{1-p/2} (DERIVED)",
                "l_g1,l_g2,L_H,C,l_f2,C_f": "docs/unibio.rst §6.4 (DERIVED instance)",
                "l_p,L_phi1,L_phi2": "docs/unibio.rst §3.1, §3.3 (DERIVED formulas)",
            },
        )

    def _f(self, x, y):
        return power_map(y, self.p) @ self.c

    def _g(self, x, y):
        xp = self.xp
        return xp.sum(xp.abs(y) ** self.p, axis=-1) / self.p - xp.sum(xp.sin(x) * y, axis=-1)

    def _grad_x_f(self, x, y):
        return batch_broadcast(self.xp.zeros_like(x), y)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self.c * power_map_jacobian_diag(y, self.p), x)

    def _grad_x_g(self, x, y):
        return -self.xp.cos(x) * y

    def _grad_y_g(self, x, y):
        return power_map(y, self.p) - self.xp.sin(x)

    def _hvp_yy_g(self, x, y, v):
        return batch_broadcast(power_map_jacobian_diag(y, self.p) * v, x)

    def _jvp_xy_g(self, x, y, v):
        return batch_broadcast(-self.xp.cos(x) * v, y)

    def _jvp_yx_g(self, x, y, w):
        return batch_broadcast(-self.xp.cos(x) * w, y)

    def _f_u(self, x, y):
        return batch_broadcast(self.c, x, y)

    def _gen_hvp(self, x, y, v):
        return batch_broadcast(v, x, y)

    _gen_hvp_T = _gen_hvp

    def _y_star(self, x):
        return signed_power(np.sin(x), 1.0 / (self.p - 1.0))

    def _phi(self, x):
        return np.sin(x) @ self.c

    def _grad_phi(self, x):
        return self.c * np.cos(x)


class NonSeparableUniformlyConvex(BilevelProblem):
    """g = (1/p)||y||_p^p + ½yᵀAy - xᵀBy, f = <c, [y]^{∘(p-1)}> + (rho/2)||x||² (docs/unibio.rst
    §1.6).

    H = (D(y) + A) D(y)^{-1} = I + A D(y)^{-1} is not symmetric when A is not diagonal; its
    eigenvalues are those of I + D^{-1/2} A D^{-1/2}, hence >= 1 >= mu (DERIVED), but
    ||H v|| >= mu ||v|| is not guaranteed because H depends on y (Lemma B.2's hypothesis
    fails). H and ||H|| are unbounded as y_i -> 0 (p > 2): C and L_H are None.
    ∇phi = rho x + B H^{-T} c at y* = rho x + B (D + A)^{-1} (D c).
    """

    name = "uniformly-convex-nonseparable"
    hessian_independent_of_y = False
    supports_array_modules = True

    def __init__(self, d_y: int = 3, d_x: int | None = None, p: float = 4.0, *,
                 A=None, B=None, c=None, rho: float = 0.5, seed: int = 0,
                 a_eigs: tuple[float, float] = (0.5, 2.0)):
        self.d_y = require_int("d_y", d_y, low=1)
        self.d_x = self.d_y if d_x is None else require_int("d_x", d_x, low=1)
        self.p = require_range("p", p, low=2.0)
        self.rho = require_range("rho", rho, low=0.0)
        rng = np.random.default_rng(seed)
        if A is None:
            lo, hi = (require_range("a_eigs[0]", a_eigs[0], low=0.0, low_inclusive=False),
                      require_range("a_eigs[1]", a_eigs[1], low=a_eigs[0]))
            A = spd_matrix(np.linspace(lo, hi, self.d_y), orthogonal_matrix(self.d_y, rng))
        A = np.asarray(A, dtype=np.float64)
        if A.shape != (self.d_y, self.d_y) or not np.allclose(A, A.T, atol=1e-12):
            raise ValueError(f"A must be a symmetric ({self.d_y}, {self.d_y}) matrix")
        a_min = float(np.linalg.eigvalsh(A)[0])
        if a_min <= 0:
            raise ValueError(f"A must be positive definite (lambda_min(A) > 0), got {a_min:g}")
        self.A = A
        self.B = (rng.standard_normal((self.d_x, self.d_y)) / np.sqrt(self.d_y)
                  if B is None else np.asarray(B, dtype=np.float64))
        if self.B.shape != (self.d_x, self.d_y):
            raise ValueError(f"B must have shape ({self.d_x}, {self.d_y}), got {self.B.shape}")
        self.c = (np.linspace(1.0, -0.5, self.d_y) if c is None
                  else require_vector("c", c, self.d_y))
        mu = vector_uniform_convexity_modulus(self.p, self.d_y)
        l_g1 = float(np.linalg.norm(self.B, 2))
        self.constants = Constants(
            mu=mu, p=self.p, l_g1=l_g1, l_g2=0.0, L_H=None, C=None, l_f1=self.rho, l_f2=0.0,
            C_f=float(np.linalg.norm(self.c)), l_p=(self.p * l_g1 / mu) ** (1 / (self.p - 1)),
            extra={"lambda_min_A": a_min},
            sources={"mu": "docs/unibio.rst §6.1 (1-D modulus) × d^{1-p/2}; A only adds convexity",
                     "l_p": "docs/unibio.rst §3.1 (DERIVED)"},
        )

    def _f(self, x, y):
        return power_map(y, self.p) @ self.c + 0.5 * self.rho * self.xp.sum(x * x, axis=-1)

    def _g(self, x, y):
        xp = self.xp
        return (xp.sum(xp.abs(y) ** self.p, axis=-1) / self.p
                + 0.5 * xp.sum((y @ self.A) * y, axis=-1) - xp.sum((x @ self.B) * y, axis=-1))

    def _grad_x_f(self, x, y):
        return batch_broadcast(self.rho * x, y)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self.c * power_map_jacobian_diag(y, self.p), x)

    def _grad_x_g(self, x, y):
        return batch_broadcast(-y @ self.B.T, x)

    def _grad_y_g(self, x, y):
        return power_map(y, self.p) + y @ self.A - x @ self.B

    def _hvp_yy_g(self, x, y, v):
        return batch_broadcast(power_map_jacobian_diag(y, self.p) * v + v @ self.A, x)

    def _jvp_xy_g(self, x, y, v):
        return batch_broadcast(-v @ self.B.T, x, y)

    def _jvp_yx_g(self, x, y, w):
        return batch_broadcast(-w @ self.B, x, y)

    def _f_u(self, x, y):
        return batch_broadcast(self.c, x, y)

    def _solve_hessian_yy(self, x, y, rhs):
        Hm = self.A + _diag(power_map_jacobian_diag(y, self.p))
        Hm, r = np.broadcast_arrays(Hm, rhs[..., None])
        return np.linalg.solve(Hm, r)[..., 0]

    def _y_star(self, x):
        b = x @ self.B
        y0 = signed_power(b, 1.0 / (self.p - 1.0))
        return damped_newton(
            lambda y: (np.sum(np.abs(y) ** self.p, axis=-1) / self.p
                       + 0.5 * np.einsum("...i,ij,...j->...", y, self.A, y)
                       - np.sum(b * y, axis=-1)),
            lambda y: power_map(y, self.p) + y @ self.A - b,
            lambda y, r: self._solve_hessian_yy(x, y, r),
            y0,
        )


def _diag(d: np.ndarray) -> np.ndarray:
    out = np.zeros(d.shape + (d.shape[-1],))
    idx = np.arange(d.shape[-1])
    out[..., idx, idx] = d
    return out


class SharpHolderUniformlyConvex(SeparableUniformlyConvex):
    """The separable lower level with an upper level whose ∇phi is exactly Hölder (DERIVED).

    g = (1/p)Σ|y_i|^p - <sin x, y> (as :class:`SeparableUniformlyConvex`) and
    f = Σ_i F_p(y_i) with F_p(t) = ((p-1)/p)|t|^p for |t| <= 1, |t|^{p-1} - 1/p beyond, so
    that f_u = clip(y, -1, 1) (1-Lipschitz and bounded: Assumption 3.3(ii),(iii)). Then
    y* = [sin x]^{∘1/(p-1)} (|y*| <= 1), H = I and
    ```
    phi(x) = ((p-1)/p) Σ_i |sin x_i|^{p/(p-1)},    ∇phi(x) = cos x ⊙ [sin x]^{∘1/(p-1)} .
    ```
    Unlike UniBiO Example 3 and the separable family (whose ∇phi is smooth), ∇phi here has
    the exact local exponent 1/(p-1) at x = 0: the Hölder term of UniBiO Thm 4.1 eq. (8) is
    attained, so a larger exponent fails for every constant (claim U4's negative control).
    Not from the paper: an instance built for the checks, satisfying every listed item of
    Assumptions 3.2-3.3 (docs/unibio.rst §2) with the constants below.

    Constants (docs/unibio.rst §2 names, DERIVED): mu, L_0, L_1, l_g1 = l_g2 = 1, L_H = 0, C = 1
    as the separable family (same g); l_f1 = 0 (∇_x f = 0), l_f2 = 1 (clip is 1-Lipschitz),
    C_f = √d (||clip(y)|| <= √d); l_p, L_phi1, L_phi2 from the formulas of §3.1, §3.3.
    """

    name = "uniformly-convex-sharp-holder"
    hessian_independent_of_y = True

    def __init__(self, d: int = 1, p: float = 4.0):
        self.d_x = self.d_y = require_int("d", d, low=1)
        self.p = require_range("p", p, low=2.0)
        mu = vector_uniform_convexity_modulus(self.p, self.d_y)
        C_f = float(np.sqrt(self.d_y))
        l_p, L1, L2 = lipschitz_hypergradient_constants(
            mu=mu, p=self.p, l_g1=1.0, l_g2=1.0, L_H=0.0, l_f1=0.0, l_f2=1.0, C_f=C_f
        )
        L_0, L_1_ = (1.0, 0.0) if self.p == 2 else (2.0 * (self.p - 1.0), self.p - 1.0)
        e = 1.0 / (self.p - 1.0)
        self.constants = Constants(
            mu=mu, p=self.p, L_0=L_0, L_1=L_1_, l_g1=1.0, l_g2=1.0, L_H=0.0, C=1.0, l_f1=0.0,
            l_f2=1.0, C_f=C_f, l_p=l_p, L_phi1=L1, L_phi2=L2,
            extra={
                "phi_inf": 0.0,
                # |[a]^e - [b]^e| <= 2^{1-e}|a - b|^e per coordinate (the odd-root constant),
                # attained by ∇phi at x = ±h e_1, h -> 0: ∇phi(h) - ∇phi(-h) ~ 2^{1-e}(2h)^e
                "holder_constant_at_0": 2.0 ** (1.0 - e),
            },
            sources={
                "mu,L_0,L_1,l_g1,l_g2,L_H,C": "as SeparableUniformlyConvex (same g; DERIVED)",
                "l_f1,l_f2,C_f": "f_u = clip(y, -1, 1), ∇_x f = 0 (DERIVED)",
                "l_p,L_phi1,L_phi2": "docs/unibio.rst §3.1, §3.3 (DERIVED formulas)",
            },
        )

    def _F(self, y):
        xp = self.xp
        a = xp.abs(y)
        return xp.where(a <= 1.0, (self.p - 1.0) / self.p * a**self.p,
                        a ** (self.p - 1.0) - 1.0 / self.p)

    def _f(self, x, y):
        return batch_broadcast(self._F(y), x).sum(axis=-1)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self.xp.clip(y, -1.0, 1.0) * power_map_jacobian_diag(y, self.p),
                               x)

    def _f_u(self, x, y):
        return batch_broadcast(self.xp.clip(y, -1.0, 1.0), x)

    def _phi(self, x):
        return (self.p - 1.0) / self.p * np.sum(np.abs(np.sin(x)) ** (self.p / (self.p - 1.0)),
                                                 axis=-1)

    def _grad_phi(self, x):
        return np.cos(x) * signed_power(np.sin(x), 1.0 / (self.p - 1.0))
