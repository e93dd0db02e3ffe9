"""Finite-difference Hessian- and Jacobian-vector products (FdeHBO; NumPy reference).

Yang, Xiao, Ji, "Achieving O(ε^{-1.5}) Complexity in Hessian/Jacobian-free Stochastic
Bilevel Optimization" (NeurIPS 2023), eqs. (9), (11) (docs/fdehbo.rst §2): central
differences of gradients along v, with perturbation delta > 0,

    H̃(x, y, v, δ; ψ) = [∇_y G(x, y + δv; ψ) - ∇_y G(x, y - δv; ψ)] / (2δ)  ≈ ∇²_yy g v   (9)
    J̃(x, y, v, δ; ξ) = [∇_x G(x, y + δv; ξ) - ∇_x G(x, y - δv; ξ)] / (2δ)  ≈ ∇²_xy g v   (11)

Both gradient calls use the SAME sample (docs/fdehbo.rst §2): the estimator draws the sample once
with ``oracle.draw`` and passes it as ``sample=`` to both calls. With additive noise the
noise then cancels in the difference (up to rounding); with two independent samples it
would add noise of size std √2 / (2δ), which blows up as δ -> 0.

Error (Lemma 5, DERIVED version, docs/fdehbo.rst §2; claim F1): if ∇²_yy g (resp. ∇²_xy g) is
L-Lipschitz in y, ||H̃ - ∇²_yy g v|| <= (L/2) δ ||v||² (resp. for J̃), independent of the
dimension; exactly zero (up to rounding ~ eps ||∇g|| / δ) when ∇g is quadratic in y (e.g. g
quadratic or cubic), and O(δ²) when g has a Lipschitz third derivative.

Hessian-free estimators built from them:

    ∇̃_v R = H̃(x, y, v, δ; ψ) - ∇_y F(x, y; ψ)           (8)  gradient of the LS quadratic
    ∇̃ f  = ∇_x F(x, y; ξ) - J̃(x, y, v, δ; ξ)                  the hypergradient estimate

(F's noise is an independent draw of its own oracle kind.) Draw order, which the Numba
kernels reproduce: fd_hvp/fd_jvp: the one shared sample; fd_hypergradient: ∇_x F, then J̃'s
sample; fd_ls_gradient: H̃'s sample, then ∇_y F.

Counts (per replica): a finite-difference product is 2 gradient calls on 1 sample
(fd_hvp: 2 grad_y_g, 1 sample; fd_jvp: 2 grad_x_g, 1 sample).
"""

from __future__ import annotations

from refbilevel.backends.registry import register
from refbilevel.estimators._common import batch_xy, counts, require_oracle, require_positive
from refbilevel.estimators.result import Estimate


def check_fd_args(problem, x, y, v, delta):
    delta = require_positive("delta", delta)
    x, y, vs, batch = batch_xy(problem, x, y, v=(v, problem.d_y))
    return x, y, vs["v"], batch, delta


def fd_product_core(oracle, x, y, v, delta, kind: str):
    """Central difference of ∇_y G (kind "grad_y_g") or ∇_x G ("grad_x_g") along v, both
    calls on one sample."""
    grad = oracle.grad_y_g if kind == "grad_y_g" else oracle.grad_x_g
    sample = oracle.draw(kind, y.shape[:-1])
    gp = grad(x, y + delta * v, sample=sample)
    gm = grad(x, y - delta * v, sample=sample)
    return (gp - gm) / (2.0 * delta)


@register("estimator", "fd_hvp", "numpy")
def fd_hvp(oracle, x, y, v, delta: float) -> Estimate:
    """H̃ ≈ ∇²_yy g v by eq. (9) (value (..., d_y)); counts 2 grad_y_g, 1 sample."""
    require_oracle(oracle)
    x, y, v, _, delta = check_fd_args(oracle.problem, x, y, v, delta)
    return Estimate(value=fd_product_core(oracle, x, y, v, delta, "grad_y_g"),
                    counts=counts(grad_y_g=2, samples=1))


@register("estimator", "fd_jvp", "numpy")
def fd_jvp(oracle, x, y, v, delta: float) -> Estimate:
    """J̃ ≈ ∇²_xy g v by eq. (11) (value (..., d_x)); counts 2 grad_x_g, 1 sample."""
    require_oracle(oracle)
    x, y, v, _, delta = check_fd_args(oracle.problem, x, y, v, delta)
    return Estimate(value=fd_product_core(oracle, x, y, v, delta, "grad_x_g"),
                    counts=counts(grad_x_g=2, samples=1))


@register("estimator", "fd_hypergradient", "numpy")
def fd_hypergradient(oracle, x, y, v, delta: float) -> Estimate:
    """∇_x F - J̃(x, y, v, δ): FdeHBO's fully first-order hypergradient (docs/fdehbo.rst §2), with v
    the current linear-system iterate (≈ [∇²_yy g]^{-1} ∇_y f, "+z" convention)."""
    require_oracle(oracle)
    x, y, v, _, delta = check_fd_args(oracle.problem, x, y, v, delta)
    gx = oracle.grad_x_f(x, y)
    value = gx - fd_product_core(oracle, x, y, v, delta, "grad_x_g")
    return Estimate(value=value, counts=counts(grad_x_f=1, grad_x_g=2, samples=2))


@register("estimator", "fd_ls_gradient", "numpy")
def fd_ls_gradient(oracle, x, y, v, delta: float) -> Estimate:
    """H̃(x, y, v, δ) - ∇_y F: the Hessian-free gradient (8) of the LS quadratic at v
    (value (..., d_y))."""
    require_oracle(oracle)
    x, y, v, _, delta = check_fd_args(oracle.problem, x, y, v, delta)
    ht = fd_product_core(oracle, x, y, v, delta, "grad_y_g")
    value = ht - oracle.grad_y_f(x, y)
    return Estimate(value=value, counts=counts(grad_y_f=1, grad_y_g=2, samples=2))
