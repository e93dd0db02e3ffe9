"""Neumann-series hypergradient estimators (NumPy reference, batched over replicas).

The hypergradient ∇phi = ∇_x f - ∇²_xy g H^{-T} f_u needs the product of an inverse with a
vector. A Neumann series replaces the inverse by a truncated sum of powers of I - alpha H^T,
using only Hessian-vector products (docs/unibio.rst §3.5; docs/baselines.rst §1-§3):

    H^{-T} = alpha Σ_{k>=0} (I - alpha H^T)^k,     0 < alpha <= 1/C,  ||H|| <= C.

Two truncations (``truncation=``):

- ``"fixed"`` (stocBiO, Ji-Yang-Liang 2021; docs/baselines.rst §2): Q HVPs on independent samples,
  u_0 = v_0, u_j = u_{j-1} - alpha Ĥ_j u_{j-1} (j = 1..Q), and

      start=0:  z = alpha Σ_{j=0}^{Q} u_j        (the stocBiO paper: Q+1 terms, Q HVPs)
      start=1:  z = alpha Σ_{j=1}^{Q} u_j        (the UniBiO authors' code, docs/unibio.rst §3.5
      CODE:
                                                 the q = 0 term is omitted; its limit is
                                                 H^{-T} v_0 - alpha v_0, a bias of
                                                 alpha ∇²_xy g v_0 that does not vanish as Q grows)

- ``"randomized"`` (BSA, Ghadimi-Wang 2018; TTSA; UniBiO Lemma B.5 as reconstructed in
  docs/unibio.rst §3.5): draw q̂ ~ Uniform{0, ..., Q-1} and

      z = Q alpha Π_{j=1}^{q̂} (I - alpha Ĥ_j^T) v_0,
      E z = alpha Σ_{q=0}^{Q-1} (I - alpha H^T)^q v_0,

  so with alpha = 1/C this is the (Q/C) scaling of docs/unibio.rst §3.5, with bias
  ||E ĝ - ∇̄f|| <= (l_g1 C_f/mu)(1 - mu/C)^Q (claim U6; :func:`neumann_bias_exact`).

Two variants (``variant=``):

- ``"classical"``: Ghadimi-Wang, v_0 = ∇_y F, Ĥ = ∇²_yy G (oracle kinds grad_y_f, hvp);
- ``"generalized"``: UniBiO, v_0 = F_u, products with H^T = D(y)^{-1} ∇²_yy g (oracle kinds
  f_u, gen_hvp), i.e. the H^{-T} form of docs/unibio.rst §1.6 (the H^{-1} form is wrong for a
  non-symmetric H). For p = 2 both variants coincide.

Then ĝ = ∇_x F - ∇²_xy G z. Sign convention: "+z" (docs/baselines.rst §0.1).

Draw order (what the Numba kernels reproduce): [randomized: q̂ for all replicas, one
``rng.integers(0, Q, size=R)`` from ``oracle.rng``], ∇_x F, v_0, the HVPs in order, the JVP.
Each oracle call is a fresh sample drawn as one (R, dim) block. With randomized truncation
and R replicas, HVP step j is evaluated for the whole batch for j = 1..max_r q̂_r (one
noise block per step) and applied only to replicas with q̂_r >= j: for R = 1 exactly q̂
products are drawn; for R > 1 the unused noise of stopped replicas is simply discarded.

Counts (per replica, ``Estimate.counts``; docs/unibio.rst §4.2 "1 ∇_x F, 1 F_u, Q generalized
HVPs, 1 JVP"; benchmark_bilevel counts BSA the same way, docs/baselines.rst §0.2): 1 grad_x_f,
1 grad_y_f (or f_u), Q hvp (or gen_hvp), 1 jvp, Q + 3 samples. For ``"randomized"`` these
are the paper's budget (the sample bar-xi = {xi, zeta^(0..Q)} of §3.5), not the realized
q̂ <= Q - 1 products; the oracle's own counters record what was evaluated.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends.registry import register
from refbilevel.estimators._common import (
    batch_xy,
    counts,
    n_replicas,
    require_choice,
    require_oracle,
    require_positive,
    require_steps,
)
from refbilevel.estimators.result import Estimate
from refbilevel.hypergradient import generalized_hypergradient, ghadimi_wang_hypergradient

TRUNCATIONS = ("fixed", "randomized")
VARIANTS = ("classical", "generalized")


def default_alpha(problem, variant: str) -> float:
    """1/C for the generalized variant (||H|| <= C, docs/unibio.rst §2.1(vi)); 1/L_y (or 1/C at
    p = 2, where H = ∇²_yy g) for the classical one. ValueError when the problem states
    neither (e.g. Example 3's ∇²_yy g = (p-1)y^{p-2} is unbounded: pass alpha)."""
    c = problem.constants
    if variant == "generalized":
        bound = c.C
    else:
        bound = c.L_y if c.L_y is not None else (c.C if problem.p == 2 else None)
    if bound is None or not bound > 0:
        raise ValueError(
            f"alpha is required: {type(problem).__name__} states no bound "
            f"{'C on ||H||' if variant == 'generalized' else 'L_y on ||∇²_yy g||'} "
            "(alpha must lie in (0, 1/bound] for the Neumann series to converge)"
        )
    return 1.0 / bound


def check_neumann_args(problem, Q, alpha, truncation, variant, start):
    """Validate and normalize the Neumann parameters (shared by every backend)."""
    truncation = require_choice("truncation", truncation, TRUNCATIONS)
    variant = require_choice("variant", variant, VARIANTS)
    start = require_choice("start", start, (0, 1))
    if truncation == "randomized" and start != 0:
        raise ValueError("start=1 (omit the q = 0 term) applies only to truncation='fixed'")
    Q = require_steps("Q", Q, low=1 if truncation == "randomized" else 0)
    alpha = default_alpha(problem, variant) if alpha is None else require_positive("alpha", alpha)
    return Q, alpha, truncation, variant, start


def neumann_counts(Q: int, variant: str):
    gen = variant == "generalized"
    return counts(grad_x_f=1, grad_y_f=0 if gen else 1, f_u=1 if gen else 0,
                  hvp=0 if gen else Q, gen_hvp=Q if gen else 0, jvp=1, samples=Q + 3)


def neumann_core(oracle, x, y, batch, Q, alpha, truncation, variant, start, xp=np):
    """The estimator on validated, batch-broadcast inputs; ``xp`` is numpy or cupy and
    ``oracle`` a GaussianOracle or its device adaptor (refbilevel/backends/cupy_oracle.py).
    """
    gen = variant == "generalized"
    if truncation == "randomized":
        R = n_replicas(batch)
        qhat = xp.asarray(oracle.rng.integers(0, Q, size=R).reshape(batch))
        n_steps = int(qhat.max()) if R else 0
    gx = oracle.grad_x_f(x, y)
    v = oracle.f_u(x, y) if gen else oracle.grad_y_f(x, y)
    product = oracle.gen_hvp_T if gen else oracle.hvp_yy_g
    if truncation == "fixed":
        s = v.copy() if start == 0 else xp.zeros_like(v)
        for _ in range(Q):
            v = v - alpha * product(x, y, v)
            s = s + v
        z = alpha * s
    else:
        for j in range(1, n_steps + 1):
            active = (qhat >= j)[..., None]
            v = xp.where(active, v - alpha * product(x, y, v), v)
        z = Q * alpha * v
    return gx - oracle.jvp_xy_g(x, y, z)


@register("estimator", "neumann", "numpy")
def neumann_hypergradient(oracle, x, y, Q: int, *, alpha: float | None = None,
                          truncation: str = "fixed", variant: str = "classical",
                          start: int = 0) -> Estimate:
    """Neumann-series hypergradient estimate at (x, y) (see the module docstring).

    Parameters
    ----------
    oracle : GaussianOracle over the problem; its Generator supplies every random number.
    x, y : (..., d_x), (..., d_y); leading axes are replicas and broadcast.
    Q : number of HVPs (fixed, Q >= 0) or the truncation level (randomized, Q >= 1).
    alpha : Neumann step in (0, 1/C]; default 1/C (generalized) or 1/L_y (classical).
    truncation : "fixed" (stocBiO) or "randomized" (BSA/TTSA/UniBiO, docs/unibio.rst §3.5).
    variant : "classical" (∇²_yy g, ∇_y f) or "generalized" (H^T, f_u; docs/unibio.rst §1.6).
    start : fixed truncation only; 0 = stocBiO's sum from j = 0, 1 = the UniBiO code's sum
        from j = 1 (omits the q = 0 term; biased, see the module docstring).

    Returns an :class:`Estimate` with value (..., d_x) and per-replica counts.
    """
    require_oracle(oracle)
    problem = oracle.problem
    Q, alpha, truncation, variant, start = check_neumann_args(
        problem, Q, alpha, truncation, variant, start)
    x, y, batch = batch_xy(problem, x, y)
    value = neumann_core(oracle, x, y, batch, Q, alpha, truncation, variant, start)
    return Estimate(value=value, counts=neumann_counts(Q, variant))


# ---- exact expectations (no sampling) -------------------------------------------------------
def neumann_expectation_exact(problem, x, y, Q: int, alpha: float, *,
                              truncation: str = "randomized", variant: str = "generalized",
                              start: int = 0) -> np.ndarray:
    """E[ĝ] of the estimator, computed from exact products (no sampling).

    With independent zero-mean noise the expectation of a product of independent factors is
    the product of the expectations, so: fixed -> the deterministic sum itself; randomized ->
    ∇_x f - ∇²_xy g [alpha Σ_{q=0}^{Q-1} (I - alpha H^T)^q] v_0 (docs/unibio.rst §3.5; Q = 0
    gives the empty sum, i.e. ∇_x f).
    """
    truncation = require_choice("truncation", truncation, TRUNCATIONS)
    variant = require_choice("variant", variant, VARIANTS)
    start = require_choice("start", start, (0, 1))
    Q = require_steps("Q", Q, low=0)
    alpha = require_positive("alpha", alpha)
    x, y, _ = batch_xy(problem, x, y)
    gen = variant == "generalized"
    v = problem.f_u(x, y) if gen else problem.grad_y_f(x, y)
    product = problem.gen_hvp_T if gen else problem.hvp_yy_g
    if truncation == "fixed":
        s = v.copy() if start == 0 else np.zeros_like(v)
        for _ in range(Q):
            v = v - alpha * product(x, y, v)
            s = s + v
    else:
        s = v.copy() if Q >= 1 else np.zeros_like(v)
        for _ in range(1, Q):
            v = v - alpha * product(x, y, v)
            s = s + v
    return problem.grad_x_f(x, y) - problem.jvp_xy_g(x, y, alpha * s)


def neumann_bias_exact(problem, x, y, Q: int, C: float, *, truncation: str = "randomized",
                       variant: str = "generalized", start: int = 0) -> np.ndarray:
    """E[ĝ(x, y)] - ∇̄f(x, y) with alpha = 1/C, exactly (claim U6; docs/unibio.rst §3.5).

    The target ∇̄f(x, y) is the exact surrogate of docs/unibio.rst §3.4 eq. (34): the generalized
    ∇_x f - ∇²_xy g H^{-T} f_u (variant "generalized") or Ghadimi-Wang (variant "classical");
    both equal ∇phi(x) at y = y*(x). For the randomized truncation the bias equals
    ∇²_xy g H^{-T} (I - H^T/C)^Q f_u, whose norm is <= (l_g1 C_f/mu)(1 - mu/C)^Q when
    ||I - H^T/C|| <= 1 - mu/C (e.g. H symmetric, mu I <= H <= C I).
    """
    C = require_positive("C", C)
    expectation = neumann_expectation_exact(problem, x, y, Q, 1.0 / C, truncation=truncation,
                                            variant=variant, start=start)
    target = (generalized_hypergradient if variant == "generalized"
              else ghadimi_wang_hypergradient)(problem, x, y)
    return expectation - target
