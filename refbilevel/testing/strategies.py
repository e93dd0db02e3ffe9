"""Hypothesis strategies drawing the library's problems with their constants
(docs/testing.rst).

Each strategy draws a family's *parameters* (dimension, p, seed of the random matrices) and
builds the problem from them, so Hypothesis shrinks a failing example to the simplest
instance of the family: dimension 1, the first p listed (2), seed 0. The problem carries its
constants (``problem.constants``: mu, l_p, L_phi1, L_phi2, ...; docs/unibio.rst §3,
docs/borep.rst §2) and its closed forms (y*, phi, ∇phi).

Families (docs/design.rst, "Problems"):

* :func:`lluc_problems`: the lower-level uniformly convex (LLUC) problems of UniBiO
  (docs/unibio.rst §6): Example 3, the separable and non-separable uniformly convex families,
  the sharp Hölder instance, ℓ_p hyper-cleaning;
* :func:`quadratic_problems`: strongly convex quadratics (p = 2; the LLSC baselines,
  docs/baselines.rst);
* :func:`relaxed_smooth_problems`: BO-REP's two relaxed-smooth problems (docs/borep.rst §8);
* :func:`contraction_cases`: random linear contractions with a hyperparameter λ for SID
  (docs/sid_bsgm.rst §14);
* :func:`problems`: any of the bilevel families above;
* :func:`upper_points`, :func:`lower_points`: points x and y (near y*(x) at a drawn scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refbilevel.problems.base import BilevelProblem

#: the LLUC families :func:`lluc_problems` can draw
LLUC_FAMILIES = ("uniformly-convex-separable", "unibio-example3", "uniformly-convex-sharp-holder",
                 "uniformly-convex-nonseparable", "lp-hypercleaning")


def exponents(low: float = 2.0, high: float = 8.0) -> st.SearchStrategy[float]:
    """The uniform-convexity exponent p: the integers 2, 3, 4 first (shrinking goes to 2),
    then any real in [low, high]."""
    simple = [float(p) for p in (2, 3, 4) if low <= p <= high]
    return st.one_of(st.sampled_from(simple), st.floats(low, high)) if simple else \
        st.floats(low, high)


def _family(name: str, max_dim: int, p: st.SearchStrategy[float] | None) -> st.SearchStrategy:
    from refbilevel.problems import unibio_example3, uniformly_convex

    dims = st.integers(1, max_dim)
    seeds = st.integers(0, 2**16)
    if name == "unibio-example3":
        even = st.sampled_from([2, 4, 6, 8]) if p is None else p.map(lambda v: 2 * round(v / 2))
        return st.builds(unibio_example3.UniBiOExample3, p=even)
    p = exponents() if p is None else p
    if name == "uniformly-convex-separable":
        return st.builds(uniformly_convex.SeparableUniformlyConvex, d=dims, p=p)
    if name == "uniformly-convex-sharp-holder":
        return st.builds(uniformly_convex.SharpHolderUniformlyConvex, d=dims, p=p)
    if name == "uniformly-convex-nonseparable":
        return st.builds(uniformly_convex.NonSeparableUniformlyConvex, d_y=dims, d_x=dims,
                         p=p, seed=seeds)
    if name == "lp-hypercleaning":
        from refbilevel.problems.hypercleaning import LpHyperCleaning

        # n >= d rows: with fewer, the Newton solve for y* starts at a singular Hessian
        # (the p > 2 regularizer has zero curvature at w = 0 and A^T A is rank-deficient)
        return dims.flatmap(lambda d: st.builds(
            LpHyperCleaning, n=st.integers(d, 2 * max_dim), d=st.just(d),
            m=st.integers(1, 2 * max_dim), p=p, seed=seeds))
    raise ValueError(f"family must be one of {', '.join(LLUC_FAMILIES)}; got {name!r}")


def lluc_problems(families: Sequence[str] = LLUC_FAMILIES, *, max_dim: int = 3,
                  p: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[BilevelProblem]:
    """An LLUC problem of one of ``families`` (default: all), dimensions up to ``max_dim``,
    exponent from ``p`` (default :func:`exponents`; Example 3 rounds it to an even integer)."""
    if not families:
        raise ValueError(f"families must name at least one of {', '.join(LLUC_FAMILIES)}")
    return st.one_of(*[_family(f, max_dim, p) for f in families])


def quadratic_problems(max_dim: int = 4) -> st.SearchStrategy[BilevelProblem]:
    """A strongly convex quadratic (p = 2) with d_x, d_y <= max_dim, mu <= L <= 10 mu."""
    from refbilevel.problems.quadratic import StronglyConvexQuadratic

    @st.composite
    def build(draw: st.DrawFn) -> BilevelProblem:
        mu = draw(st.sampled_from([0.1, 0.5, 1.0]))
        cond = draw(st.sampled_from([1.0, 10.0]) | st.floats(1.0, 10.0))
        return StronglyConvexQuadratic(d_x=draw(st.integers(1, max_dim)),
                                       d_y=draw(st.integers(1, max_dim)), mu=mu,
                                       L=mu * cond, seed=draw(st.integers(0, 2**16)))

    return build()


def relaxed_smooth_problems() -> st.SearchStrategy[BilevelProblem]:
    """BO-REP's problems P1 and P2 (docs/borep.rst §8), built when drawn."""
    from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2

    return st.sampled_from([RelaxedSmoothP1, RelaxedSmoothP2]).map(lambda cls: cls())


def problems(max_dim: int = 3) -> st.SearchStrategy[BilevelProblem]:
    """Any bilevel problem with a closed form: LLUC, quadratic or relaxed-smooth."""
    return st.one_of(lluc_problems(max_dim=max_dim), quadratic_problems(max_dim),
                     relaxed_smooth_problems())


class ContractionCase(NamedTuple):
    """A SID instance: the fixed-point problem and the hyperparameter λ to differentiate at."""

    problem: Any  # refbilevel.problems.contraction.LinearContraction
    lam: np.ndarray
    seed: int


def contraction_cases(max_d: int = 3, max_n: int = 2, *,
                      full_sigma: st.SearchStrategy[bool] | None = None
                      ) -> st.SearchStrategy[ContractionCase]:
    """A random linear contraction (:func:`refbilevel.sid_moments.random_linear_contraction`,
    ||A|| = 0.7, noise scales 0.2 / 0.2 / 0.5) of state dimension d <= max_d and
    hyperparameter dimension n <= max_n, and a standard normal λ, from a drawn seed."""

    @st.composite
    def build(draw: st.DrawFn) -> ContractionCase:
        from refbilevel.sid_moments import random_linear_contraction

        d, n = draw(st.integers(1, max_d)), draw(st.integers(1, max_n))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        prob = random_linear_contraction(d, n, rng, q=0.7, s_Z=0.2, s_Y=0.2, s_eps=0.5,
                                         full_sigma=draw(full_sigma or st.booleans()))
        return ContractionCase(prob, rng.standard_normal(n), seed)

    return build()


def upper_points(problem: BilevelProblem, bound: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """x in [-bound, bound]^{d_x} (shrinks to 0)."""
    return hnp.arrays(np.float64, problem.d_x,
                      elements=st.floats(-bound, bound, allow_subnormal=False))


def lower_points(problem: BilevelProblem, x: np.ndarray, *, log10_scale: tuple[float, float]
                 = (-8.0, 1.0)) -> st.SearchStrategy[np.ndarray]:
    """y = y*(x) + 10^s u with s drawn in ``log10_scale`` and u a drawn direction in
    [-1, 1]^{d_y} (the distance to the lower-level solution is what the bounds depend on)."""
    ys = problem.y_star(x)

    @st.composite
    def build(draw: st.DrawFn) -> np.ndarray:
        s = draw(st.floats(*log10_scale))
        u = draw(hnp.arrays(np.float64, problem.d_y,
                            elements=st.floats(-1.0, 1.0, allow_subnormal=False)))
        return ys + 10.0**s * u

    return build()
