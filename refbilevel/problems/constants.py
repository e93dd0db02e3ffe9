"""The theory constants a problem carries, named as the spec names them.

Names follow docs/unibio.rst §2 (mu, p, L_0, L_1, l_g1, l_g2, L_H, C, l_f1, l_f2, C_f, l_p,
L_phi1, L_phi2), docs/borep.rst §8 and docs/sid_bsgm.rst §14. A constant a problem cannot state is
None;
checks that need it skip that problem and say so. ``sources`` records, per constant, the
spec section its value comes from, so a reader can find the derivation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Constants:
    mu: float | None = None  # LL modulus: strong (p = 2) or (mu, p)-uniform convexity
    p: float = 2.0  # uniform-convexity exponent (docs/unibio.rst §2.1(i))
    L_0: float | None = None  # (L_0, L_1)-smoothness of g in y (docs/unibio.rst §2.1(ii))
    L_1: float | None = None
    l_g1: float | None = None  # Lipschitz const of grad_y g in x; ||∇²_xy g|| <= l_g1
    l_g2: float | None = None  # joint Lipschitz const of ∇²_xy g
    L_H: float | None = None  # joint Lipschitz const of the generalized Hessian H
    C: float | None = None  # ||H|| <= C (Neumann step 1/C, docs/unibio.rst §3.5)
    l_f1: float | None = None  # joint Lipschitz const of ∇_x f
    l_f2: float | None = None  # joint Lipschitz const of f_u
    C_f: float | None = None  # ||f_u|| <= C_f
    l_p: float | None = None  # Hölder const of y*: ||Δy*|| <= l_p ||Δx||^{1/(p-1)} (Lemma 4.2)
    L_phi1: float | None = None  # Hölder-smoothness of phi (Thm 4.1 eq. (8))
    L_phi2: float | None = None
    L_y: float | None = None  # largest eigenvalue of ∇²_yy g where it is bounded
    extra: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lipschitz_hypergradient_constants(
    *, mu: float, p: float, l_g1: float, l_g2: float, L_H: float, l_f1: float, l_f2: float,
    C_f: float,
) -> tuple[float, float, float]:
    """(l_p, L_phi1, L_phi2) from the DERIVED formulas of docs/unibio.rst §3.1 and §3.3.

    l_p = (p l_g1 / mu)^{1/(p-1)};  L̄ = l_f1 + l_g1 l_f2/mu + C_f l_g2/mu + l_g1 C_f L_H/mu²;
    L_phi1 = l_p L̄;  L_phi2 = L̄.
    """
    l_p = (p * l_g1 / mu) ** (1.0 / (p - 1.0))
    L_bar = l_f1 + l_g1 * l_f2 / mu + C_f * l_g2 / mu + l_g1 * C_f * L_H / mu**2
    return l_p, l_p * L_bar, L_bar


def surrogate_lipschitz_constant(c: Constants) -> float | None:
    """L̄ of docs/unibio.rst §3.3 from a problem's stated ingredients: the constant of the
    surrogate error ||∇̄f(x, y) − ∇φ(x)|| ≤ L̄ ||y − y*(x)|| (Lemma B.4, §3.4; claim U5).

    It equals ``L_phi2`` for the problems whose constants come from
    :func:`lipschitz_hypergradient_constants`; a problem may store a sharper ``L_phi2`` for
    eq. (8) alone (the quadratic stores ||∇²φ||), which does not bound the surrogate error.
    None if an ingredient is missing; C_f may be missing where it multiplies only zeros
    (l_g2 = L_H = 0, e.g. the quadratic, whose ∇_y f is unbounded)."""
    if any(v is None for v in (c.mu, c.l_g1, c.l_g2, c.L_H, c.l_f1, c.l_f2)):
        return None
    if c.C_f is None and (c.l_g2 != 0 or c.L_H != 0):
        return None
    assert c.mu is not None and c.l_g1 is not None and c.l_g2 is not None
    assert c.L_H is not None and c.l_f1 is not None and c.l_f2 is not None
    return lipschitz_hypergradient_constants(
        mu=c.mu, p=c.p, l_g1=c.l_g1, l_g2=c.l_g2, L_H=c.L_H, l_f1=c.l_f1, l_f2=c.l_f2,
        C_f=0.0 if c.C_f is None else c.C_f)[2]
