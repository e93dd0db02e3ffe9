"""A uniformly convex lower level whose generalized Hessian is not symmetric, inside
Assumption 3.2 (docs/unibio.rst §1.6, §2.1; DERIVED instance).

    g(x, y) = (1/p)||y||_p^p − <x, y> + ε β(u),      u = [y]^{∘(p-1)},
    f(x, y) = <a, u> + (rho/2)||x||²,

with the smooth bump β(u) = Π_i b((|u_i| − c)/r), b(t) = (1 − t²)^5 on |t| < 1 and 0 beyond
(C⁴), supported where every |u_i| lies in [c − r, c + r], away from the coordinate axes
(0 < c − r). The non-separable family of docs/unibio.rst §1.6 has a y-dependent H that is
unbounded as y_i → 0 (no C, no L_H); here H is bounded and Lipschitz, so the whole of
Assumption 3.2 holds, and H is still not symmetric, so only the H^{-T} hypergradient is right
(the audit note of docs/unibio.rst §1.6).

Derivatives (D = diag(d_i), d_i = (p-1)|y_i|^{p-2} = (p-1)|u_i|^{(p-2)/(p-1)}, the Jacobian
of u = P(y), docs/unibio.rst §1.5):

    ∇_y g = u − x + ε D ∇β(u)
    H     = d∇_y g/du = I + ε (D ∇²β(u) + diag(d' ⊙ ∇β(u))),   d'_i = dd_i/du_i
    ∇²_yy g = H D = D + ε (D ∇²β D + diag(P'' ⊙ ∇β)),        P''_i = dd_i/dy_i
    ∇²_xy g = −I,   f_u = a,   ∇phi(x) = rho x + H^{-T} a   at u = u*(x).

Off the diagonal H_ij = ε d_i ∂²β/∂u_i∂u_j ≠ H_ji = ε d_j ∂²β/∂u_i∂u_j wherever |u_i| ≠ |u_j|
and the bump bends: the H^{-1} form then misses ∇phi. With e_i = 1 − t_i² and β > 0, ∇β = β w
and ∇²β = β (w wᵀ + diag(q − w²)), w_i = −10 t_i sign(u_i)/(r e_i), q_i = (90 t_i² − 10)/(r e_i)²
(b'/b and b''/b), so every product is O(d). Where some e_i < 1e-30, β < 1e-150 and every
derivative of β is below 1e-88: they are set to 0 exactly (below float64 resolution of the
other terms) so that w stays finite.

y*(x): Newton on G(u) = u − x + ε D ∇β(u) = 0 (Jacobian H, ||H − I|| <= 1/2 by the choice of ε
below, so G is a strongly monotone perturbation of the identity) from u = x, to machine
precision; y* = [u*]^{∘1/(p-1)}.

Constants (DERIVED; the bounds of b are exact: B1 = max|b'| = (10/3)(8/9)^4 at t = 1/3,
B2 = max|b''| = 10 at t = 0). On the support, with u_lo = c − r, u_hi = c + r:
|∂β/∂u_i| <= B1/r, ||∇²β||_2 <= ||∇²β||_F <= K := sqrt(d B2² + d(d-1) B1⁴)/r²,
d_i in [d_lo, d_hi] = (p-1)[u_lo, u_hi]^{(p-2)/(p-1)}, |d'_i| <= (p-2) u_lo^{-1/(p-1)},
|P''_i| <= (p-1)(p-2) max(u_lo, u_hi)^{(p-3)/(p-1)}. Hence

- ||∇²_y (β∘P)|| <= M_y := d_hi² K + max|P''| B1/r, so ∇²_yy g ⪰ D − ε M_y 1_support ⪰ (1 − θ) D
  with θ = ε M_y / d_lo (D ⪰ d_lo I on the support): g − (1−θ)(1/p)||y||_p^p is convex and
  g is (mu, p)-uniformly convex with mu = (1 − θ) mu_p d^{1-p/2} (Assumption 3.2(i); the
  modulus of (1/p)||y||_p^p as in :mod:`refbilevel.problems.uniformly_convex`);
- ||H − I|| <= ε M_E, M_E := d_hi K + max|d'| B1/r: C = 1 + ε M_E (3.2(vi)), and every
  eigenvalue and singular value of H is >= 1 − ε M_E >= 1/2 >= mu (3.2(v), both readings);
- l_g1 = 1, l_g2 = 0 (∇²_xy g = −I); l_f1 = rho, l_f2 = 0, C_f = ||a|| (f_u = a);
  l_p = (p l_g1/mu)^{1/(p-1)} (docs/unibio.rst §3.1, DERIVED formula);
- ε = min(strength d_lo / M_y, 1/(2 M_E)): the largest bump these bounds allow for the
  given θ = strength in (0, 1).
- L_H: H depends on y only, through u, and E = (H − I)/ε is C¹ everywhere (β and its first
  four derivatives vanish on the support's boundary; E = 0 off it). Differentiating
  E = D ∇²β + diag(d' ⊙ ∇β) along h gives the terms diag(d' ⊙ h) ∇²β, D ∇³β[h],
  diag(d'' ⊙ h ⊙ ∇β) and diag(d' ⊙ ∇²β h), so ||dE/du|| <= M_3 := 2 max|d'| K + d_hi K_3 +
  max|d''| B1/r with K_3 = sqrt(d B3² + 3d(d-1) B2² B1² + d(d-1)(d-2) B1⁶)/r³ (Frobenius
  bound of ∇³β; B3 = max|b^{(3)}| = 43.670, found from the roots of b^{(4)} as B1, B2 are)
  and |d''_i| <= ((p-2)/(p-1)) u_lo^{-p/(p-1)}; du/dy = D <= d_hi, so L_H = ε M_3 d_hi.
- L_phi2 = L̄ and L_phi1 = l_p L̄ by the derivation of docs/unibio.rst §3.3 with the sharper
  bound ||H^{-1}|| <= s := 1/σ_lo, σ_lo = 1 − ε M_E (Weyl: σ_min(H) >= 1 − ||H − I||, at
  every y, on and off the support), in place of the 1/mu that §3.3 uses (σ_lo >= 1/2 >= mu,
  so 1/mu is a valid but loose bound: s = 1.21 against 1/mu = 18 at the defaults). 1/mu
  enters §3.3 only through ||H^{-1}|| (in ||H_1^{-1} − H_2^{-1}|| <= ||H_1^{-1}|| ||H_1 −
  H_2|| ||H_2^{-1}|| and in ||H^{-T} f_u||), so the same steps give
  L̄ = l_f1 + s l_g1 l_f2 + s C_f l_g2 + s² l_g1 C_f L_H, a bound on the joint Lipschitz
  constant of the surrogate ∇̄f (hence also the constant of Lemma B.4, §3.4) and of eq. (8):
  14.7 at the defaults, where the 1/mu form gives 3137 (and a UniBiO default step of
  1e-6, docs/unibio.rst §7). Checks U4 (eq. (8) with these constants) and U5 (Lemma B.4,
  which recomputes the 1/mu form from the ingredients) test it.
- (L_0, L_1)-smoothness is not stated: with −<x, y> and x unbounded, ∇_y g vanishes at
  every y for some x while ||∇²_yy g|| = ||D(y)|| grows (as for the non-separable family).
"""

from __future__ import annotations

import numpy as np

from refbilevel.power_map import power_map, power_map_jacobian_diag, signed_power
from refbilevel.problems.base import BilevelProblem, batch_broadcast
from refbilevel.problems.constants import Constants, lipschitz_hypergradient_constants
from refbilevel.problems.uniformly_convex import vector_uniform_convexity_modulus
from refbilevel.validation import require_int, require_range, require_vector

#: exact bounds of the bump profile b(t) = (1 - t²)^5 (module docstring)
B1 = (10.0 / 3.0) * (8.0 / 9.0) ** 4
B2 = 10.0


def _profile_bound(order: int) -> float:
    """max over [-1, 1] of |b^{(order)}|: at a root of the next derivative or an end point
    (b is even, so each derivative is even or odd and [0, 1] suffices)."""
    t = np.polynomial.Polynomial([0.0, 1.0])
    f = ((1.0 - t**2) ** 5).deriv(order)
    roots = np.asarray(f.deriv().roots(), dtype=np.complex128)
    real = roots[(np.abs(roots.imag) < 1e-9) & (roots.real >= 0.0) & (roots.real <= 1.0)].real
    return float(np.max(np.abs(f(np.concatenate([real, [0.0, 1.0]])))))


B3 = _profile_bound(3)
#: below this e_i = 1 - t_i² the bump and its derivatives are zero to float64 resolution
_E_FLOOR = 1e-30
NEWTON_TOL = 1e-14  # relative residual of G(u*) = 0 (a few ulps of max(1, ||x||))


class UniformlyConvexBump(BilevelProblem):
    """(1/p)||y||_p^p − <x, y> + ε·bump([y]^{∘(p-1)}): non-symmetric H inside Assumption 3.2
    (docs/unibio.rst §1.6 audit note, §2.1; DERIVED instance)."""

    name = "uniformly-convex-bump"
    hessian_independent_of_y = False
    supports_array_modules = True

    def __init__(self, d: int = 3, p: float = 4.0, *, center: float = 0.6,
                 radius: float = 0.4, strength: float = 0.5, a=None, rho: float = 0.5):
        self.d_x = self.d_y = require_int("d", d, low=1)
        self.p = require_range("p", p, low=2.0)
        self.radius = require_range("radius", radius, low=0.0, low_inclusive=False)
        self.center = require_range("center", center, low=self.radius, low_inclusive=False)
        self.strength = require_range("strength", strength, low=0.0, high=1.0,
                                      low_inclusive=False, high_inclusive=False)
        self.rho = require_range("rho", rho, low=0.0)
        self.a = (np.linspace(1.0, -0.5, self.d_y) if a is None
                  else require_vector("a", a, self.d_y))
        self.eps, self.constants = self._constants()

    # ---- constants (module docstring) ---------------------------------------------------
    def _constants(self) -> tuple[float, Constants]:
        p, d, r = self.p, self.d_y, self.radius
        u_lo, u_hi = self.center - r, self.center + r
        d_lo, d_hi = ((p - 1.0) * u ** ((p - 2.0) / (p - 1.0)) for u in (u_lo, u_hi))
        dprime = (p - 2.0) * u_lo ** (-1.0 / (p - 1.0))
        pdd = (p - 1.0) * (p - 2.0) * max(u ** ((p - 3.0) / (p - 1.0)) for u in (u_lo, u_hi))
        K = np.sqrt(d * B2**2 + d * (d - 1) * B1**4) / r**2
        M_y = d_hi**2 * K + pdd * B1 / r
        M_E = d_hi * K + dprime * B1 / r
        eps = min(self.strength * d_lo / M_y, 0.5 / M_E)
        theta = eps * M_y / d_lo
        mu = float((1.0 - theta) * vector_uniform_convexity_modulus(p, d))
        C_f = float(np.linalg.norm(self.a))
        K3 = np.sqrt(d * B3**2 + 3 * d * (d - 1) * B2**2 * B1**2
                     + d * (d - 1) * (d - 2) * B1**6) / r**3
        d2prime = (p - 2.0) / (p - 1.0) * u_lo ** (-p / (p - 1.0))
        L_H = float(eps * (2.0 * dprime * K + d_hi * K3 + d2prime * B1 / r) * d_hi)
        l_p, _, _ = lipschitz_hypergradient_constants(
            mu=mu, p=p, l_g1=1.0, l_g2=0.0, L_H=L_H, l_f1=self.rho, l_f2=0.0, C_f=C_f)
        # §3.3's L̄ with ||H^{-1}|| <= 1/σ_lo instead of 1/mu (module docstring); l_g1 = 1,
        # l_g2 = l_f2 = 0
        sigma_lo = 1.0 - eps * M_E
        L_phi2 = self.rho + C_f * L_H / sigma_lo**2
        L_phi1 = l_p * L_phi2
        return float(eps), Constants(
            mu=mu, p=p, l_g1=1.0, l_g2=0.0, L_H=L_H, C=float(1.0 + eps * M_E),
            l_f1=self.rho, l_f2=0.0, C_f=C_f, l_p=float(l_p), L_phi1=float(L_phi1),
            L_phi2=float(L_phi2),
            extra={"eps": float(eps), "theta": float(theta), "M_y": float(M_y),
                   "M_E": float(M_E), "sigma_min_H_lower_bound": float(1.0 - eps * M_E),
                   "support_u": (u_lo, u_hi)},
            sources={
                "mu": "(1 - theta) mu_p d^{1-p/2}: Hessian comparison on the bump's support "
                      "(module docstring; docs/unibio.rst §2.1(i), DERIVED)",
                "C": "1 + eps M_E, ||H - I|| <= eps M_E (module docstring, DERIVED)",
                "l_g1,l_g2,l_f1,l_f2,C_f": "∇²_xy g = -I, f_u = a, ∇_x f = rho x (DERIVED)",
                "l_p,L_phi1,L_phi2": "docs/unibio.rst §3.1, §3.3 (DERIVED formulas; §3.3 with "
                                     "||H^{-1}|| <= 1/(1 - eps M_E) instead of 1/mu, module "
                                     "docstring)",
                "L_H": "eps M_3 d_hi: derivative bound of H on the support (module docstring)",
            })

    # ---- the bump in u (module docstring) ------------------------------------------------
    def _bump(self, u):
        """(β, w, q) at u: ∇β = β w, ∇²β = β (w wᵀ + diag(q − w²))."""
        xp = self.xp
        t = (xp.abs(u) - self.center) / self.radius
        e = 1.0 - t * t
        alive = e > _E_FLOOR
        inside = xp.all(alive, axis=-1)
        e_safe = xp.where(alive, e, 1.0)
        beta = xp.where(inside, xp.prod(e_safe, axis=-1) ** 5, 0.0)
        w = -10.0 * t * xp.sign(u) / (self.radius * e_safe)
        q = (90.0 * t * t - 10.0) / (self.radius * e_safe) ** 2
        return beta, w, q

    def _hess_bump_vp(self, beta, w, q, v):
        """∇²β v = β (w (w·v) + (q − w²) v)."""
        return beta[..., None] * (w * self.xp.sum(w * v, axis=-1)[..., None] + (q - w * w) * v)

    def _dd_du(self, u):
        """d'_i = d d_i / d u_i = (p-2)|u_i|^{-1/(p-1)} sign(u_i) (only used where β > 0)."""
        xp = self.xp
        safe = xp.where(u == 0.0, 1.0, u)
        return (self.p - 2.0) * xp.sign(safe) * xp.abs(safe) ** (-1.0 / (self.p - 1.0))

    def _dd_dy(self, y):
        """P''_i = d d_i / d y_i = (p-1)(p-2)|y_i|^{p-3} sign(y_i) (only used where β > 0)."""
        xp = self.xp
        safe = xp.where(y == 0.0, 1.0, y)
        return ((self.p - 1.0) * (self.p - 2.0) * xp.sign(safe)
                * xp.abs(safe) ** (self.p - 3.0))

    # ---- BilevelProblem interface ---------------------------------------------------------
    def _f(self, x, y):
        xp = self.xp
        return power_map(y, self.p) @ self.a + 0.5 * self.rho * xp.sum(x * x, axis=-1)

    def _g(self, x, y):
        xp = self.xp
        beta, _, _ = self._bump(power_map(y, self.p))
        return (xp.sum(xp.abs(y) ** self.p, axis=-1) / self.p - xp.sum(x * y, axis=-1)
                + self.eps * beta)

    def _grad_x_f(self, x, y):
        return batch_broadcast(self.rho * x, y)

    def _grad_y_f(self, x, y):
        return batch_broadcast(self.a * power_map_jacobian_diag(y, self.p), x)

    def _grad_x_g(self, x, y):
        return batch_broadcast(-y, x)

    def _grad_y_g(self, x, y):
        u = power_map(y, self.p)
        beta, w, _ = self._bump(u)
        D = power_map_jacobian_diag(y, self.p)
        return u - x + self.eps * D * beta[..., None] * w

    def _hvp_yy_g(self, x, y, v):
        u = power_map(y, self.p)
        beta, w, q = self._bump(u)
        D = power_map_jacobian_diag(y, self.p)
        bend = D * self._hess_bump_vp(beta, w, q, D * v)
        diag = self._dd_dy(y) * beta[..., None] * w * v
        return batch_broadcast(D * v + self.eps * (bend + diag), x)

    def _jvp_xy_g(self, x, y, v):
        return batch_broadcast(-v, x, y)

    def _jvp_yx_g(self, x, y, w):
        return batch_broadcast(-w, x, y)

    def _f_u(self, x, y):
        return batch_broadcast(self.a, x, y)

    def _gen_hvp(self, x, y, v):
        u = power_map(y, self.p)
        return batch_broadcast(self._H_apply(u, v, transpose=False), x)

    def _gen_hvp_T(self, x, y, v):
        u = power_map(y, self.p)
        return batch_broadcast(self._H_apply(u, v, transpose=True), x)

    def _H_apply(self, u, v, *, transpose: bool):
        """H v = v + ε (D ∇²β v + d'∇β v); Hᵀ v = v + ε (∇²β D v + d'∇β v)."""
        beta, w, q = self._bump(u)
        D = (self.p - 1.0) * self.xp.abs(u) ** ((self.p - 2.0) / (self.p - 1.0))
        diag = self._dd_du(u) * beta[..., None] * w * v
        bend = (self._hess_bump_vp(beta, w, q, D * v) if transpose
                else D * self._hess_bump_vp(beta, w, q, v))
        return v + self.eps * (bend + diag)

    def _H_dense(self, u):
        """H at u as a (..., d, d) array (NumPy; the Newton solve of y*)."""
        beta, w, q = self._bump(u)
        D = (self.p - 1.0) * np.abs(u) ** ((self.p - 2.0) / (self.p - 1.0))
        hess = beta[..., None, None] * (w[..., :, None] * w[..., None, :]
                                        + _diag(q - w * w))
        return (np.eye(self.d_y) + self.eps * (D[..., :, None] * hess
                                               + _diag(self._dd_du(u) * beta[..., None] * w)))

    def _G(self, u, x):
        beta, w, _ = self._bump(u)
        D = (self.p - 1.0) * np.abs(u) ** ((self.p - 2.0) / (self.p - 1.0))
        return u - x + self.eps * D * beta[..., None] * w

    def _u_star(self, x):
        """Newton on G(u) = 0 from u = x (module docstring), to machine precision."""
        if self.xp is not np:
            raise NotImplementedError("y* is ground truth, computed on the host (NumPy)")
        u = np.array(x, dtype=np.float64, copy=True)
        scale = np.maximum(1.0, np.linalg.norm(x, axis=-1))
        res = np.linalg.norm(self._G(u, x), axis=-1)
        for _ in range(100):
            if np.all(res <= NEWTON_TOL * scale):
                break
            step = np.linalg.solve(self._H_dense(u), self._G(u, x)[..., None])[..., 0]
            u_new = u - step
            res_new = np.linalg.norm(self._G(u_new, x), axis=-1)
            if np.all(res_new >= res):  # rounding floor reached everywhere
                break
            better = res_new < res
            u = np.where(better[..., None], u_new, u)
            res = np.where(better, res_new, res)
        if np.any(res > 1e2 * NEWTON_TOL * scale):
            raise RuntimeError(f"uniformly-convex-bump: Newton for y* stopped at relative "
                               f"residual {float(np.max(res / scale)):.3e}; the ground truth "
                               "would be wrong")
        return u

    def _y_star(self, x):
        return signed_power(self._u_star(x), 1.0 / (self.p - 1.0))

    def _phi(self, x):
        return self._u_star(x) @ self.a + 0.5 * self.rho * np.sum(x * x, axis=-1)

    def _grad_phi(self, x):
        u = self._u_star(x)
        HT = np.swapaxes(self._H_dense(u), -1, -2)
        rhs = np.broadcast_to(self.a, u.shape)[..., None]
        return self.rho * x + np.linalg.solve(HT, rhs)[..., 0]

    def structured_points(self, rng: np.random.Generator, n: int):
        """x with u*(x) inside the bump's support, where H is not symmetric: u is drawn in the
        support (random signs) and x = u + ε D ∇β(u) solves G(u) = 0, so y*(x) = P^{-1}(u)."""
        mag = rng.uniform(self.center - 0.9 * self.radius, self.center + 0.9 * self.radius,
                          (n, self.d_y))
        u = rng.choice([-1.0, 1.0], (n, self.d_y)) * mag
        x = self._G(u, np.zeros_like(u))
        return x, signed_power(u, 1.0 / (self.p - 1.0))

    def __repr__(self) -> str:
        return (f"UniformlyConvexBump(d={self.d_y}, p={self.p:g}, eps={self.eps:.3g}, "
                f"support |u_i| in [{self.center - self.radius:g}, "
                f"{self.center + self.radius:g}])")


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out
