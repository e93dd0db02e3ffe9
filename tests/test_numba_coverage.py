"""Covered (method, problem) pairs that had no Numba kernel (issue #10 item 3): UniBiO over a
FiniteSumOracle and on the sharp-Hölder family, BO-REP and FdeHBO on logistic hyper-cleaning
(the Numba families of refbilevel/backends/numba_families.py). NumPy ↔ Numba parity (X4):
the same iterates to ≤ 1e-12 relative, the same counts and random numbers consumed.
Rounding comparisons only; the convergence of the defaults is the matrix's (claim X5).
"""

from __future__ import annotations

import numpy as np
import pytest

from refbilevel.problems import make_problem
from refbilevel.solver import solve

pytestmark = pytest.mark.numba

FSQ = make_problem("finite-sum-quadratic", n_inner=32, n_outer=16, d_inner=4, d_outer=3)
#: n_inner = n_outer: noise 0 is the full batch, the matrix's oracle (the kernels then keep
#: the y-independent sums of ∇_y G over Epoch-SGD's steps at one x)
FSQ_FULL = make_problem("finite-sum-quadratic", n_inner=24, n_outer=24, d_inner=4, d_outer=3)
CASES = [
    # (problem, method, solve keywords); measured relative differences in the comments
    (FSQ, "unibio", {"oracle": {"batch": 4, "sampler": "shuffled"}}),  # 0
    (FSQ, "unibio", {"oracle": {"batch": 5}}),  # 1.0e-16
    (FSQ_FULL, "unibio", {"noise": 0.0}),  # 0
    ("uniformly-convex-sharp-holder", "unibio", {"noise": 0.1, "problem_params": {"d": 3}}),
    # logistic-cleaning states no smoothness constant for BO-REP's default η: paper mode
    ("logistic-cleaning", "borep", {"noise": 0.1, "mode": "paper"}),  # 1.7e-16
    ("logistic-cleaning", "fdehbo", {"noise": 0.1, "mode": "paper"}),  # 8.2e-15
]


@pytest.mark.parametrize("problem,method,kw", CASES,
                         ids=["unibio-fs-shuffled", "unibio-fs-uniform", "unibio-fs-full-batch",
                              "unibio-sharp-holder",
                              "borep-logistic", "fdehbo-logistic"])
def test_numba_parity_on_the_new_kernels(problem, method, kw):
    """200 iterations, 2 replicas, same seed on both backends (the oracles draw from the
    same named stream): ≤ 1e-12 relative (FdeHBO's finite differences amplify the
    summation-order rounding by 1/δ = 1e3; the others agree to a few ulps)."""
    runs = [solve(problem, method, backend=b, seed=3, replicas=2, T=200, record_every=10, **kw)
            for b in ("numpy", "numba")]
    a, b = runs
    assert np.max(np.abs(a.x - b.x)) <= 1e-12 * np.abs(a.x).max()
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)
