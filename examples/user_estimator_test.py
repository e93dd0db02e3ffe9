"""Testing one's own estimator against refbilevel's ground truth (docs/testing.rst)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refbilevel.oracles import GaussianOracle
from refbilevel.testing import assert_hypergradient_close, assert_mean_matches
from refbilevel.testing.strategies import quadratic_problems, upper_points


def my_hypergradient(oracle, x, y):
    """The estimator under test: ∇_x F − ∇²_xy G [∇²_yy G]⁻¹ ∇_y F, one oracle sample each."""
    v = oracle.problem.solve_hessian_yy(x, y, oracle.grad_y_f(x, y))
    return oracle.grad_x_f(x, y) - oracle.jvp_xy_g(x, y, v)


@settings(max_examples=5, deadline=None)
@given(problem=quadratic_problems(max_dim=3), data=st.data(), seed=st.integers(0, 2**16))
def test_my_hypergradient(problem, data, seed):
    x = data.draw(upper_points(problem))
    exact = GaussianOracle(problem, 0.0, np.random.default_rng(seed))  # noise-free: exact
    assert_hypergradient_close(problem, x, my_hypergradient(exact, x, problem.y_star(x)))
    noisy = GaussianOracle(problem, 0.1, np.random.default_rng(seed))
    xs = np.tile(x, (4000, 1))  # 4000 independent draws at x
    samples = my_hypergradient(noisy, xs, problem.y_star(xs))
    # 5 examples at 2e-4 each: a false alarm in this test has probability <= 1e-3
    assert_mean_matches(samples, problem.grad_phi(x), false_positive_rate=2e-4)
