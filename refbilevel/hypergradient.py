"""Exact (deterministic) hypergradient formulas, evaluated at any y.

At y = y*(x) both equal ∇phi(x); at other y they are the surrogate ∇̄f(x, y) of
docs/unibio.rst §3.4 (eq. (34)).

- :func:`generalized_hypergradient`: UniBiO Thm 4.1 eq. (7) in its vector form
  ∇_x f - ∇²_xy g H^{-T} f_u (docs/unibio.rst §1.6, §3.3).
- :func:`ghadimi_wang_hypergradient`: the classical ∇_x f - ∇²_xy g [∇²_yy g]^{-1} ∇_y f
  (Ghadimi & Wang 2018; docs/baselines.rst §0.1; docs/fdehbo.rst eq. (2)).
- :func:`h_inverse_hypergradient`: the H^{-1} reading quoted by the paper's summaries. It is
  wrong for non-symmetric H and exists only as the negative control of claim U3.
"""

from __future__ import annotations

import numpy as np

from refbilevel.problems.base import BilevelProblem


def _solve(M: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    M, r = np.broadcast_arrays(M, rhs[..., None])
    return np.linalg.solve(M, r)[..., 0]


def generalized_hypergradient(problem: BilevelProblem, x, y) -> np.ndarray:
    """∇_x f - ∇²_xy g H^{-T} f_u at (x, y) (UniBiO Thm 4.1 eq. (7); docs/unibio.rst §1.6)."""
    x, y = problem._x(x), problem._y(y)
    H = problem.generalized_hessian(x, y)
    z = _solve(np.swapaxes(H, -1, -2), problem._f_u(x, y))
    return problem._grad_x_f(x, y) - problem._jvp_xy_g(x, y, z)


def h_inverse_hypergradient(problem: BilevelProblem, x, y) -> np.ndarray:
    """∇_x f - ∇²_xy g H^{-1} f_u: the WRONG form for non-symmetric H (claim U3's control)."""
    x, y = problem._x(x), problem._y(y)
    z = _solve(problem.generalized_hessian(x, y), problem._f_u(x, y))
    return problem._grad_x_f(x, y) - problem._jvp_xy_g(x, y, z)


def ghadimi_wang_hypergradient(problem: BilevelProblem, x, y) -> np.ndarray:
    """∇_x f - ∇²_xy g [∇²_yy g]^{-1} ∇_y f (Ghadimi & Wang 2018; docs/baselines.rst §0.1)."""
    x, y = problem._x(x), problem._y(y)
    z = problem._solve_hessian_yy(x, y, problem._grad_y_f(x, y))
    return problem._grad_x_f(x, y) - problem._jvp_xy_g(x, y, z)
