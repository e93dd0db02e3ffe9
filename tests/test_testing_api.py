"""refbilevel.testing: the strategies shrink to simple instances, the assertions hold their
stated false-positive rates and reject what they should, and the docs example runs
(docs/testing.rst)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import find, settings

from refbilevel.testing import (
    assert_estimate_matches,
    assert_hypergradient_close,
    assert_loglog_slope,
    assert_mean_matches,
    fit_loglog_slope,
    mean_test,
)
from refbilevel.testing.strategies import contraction_cases, lluc_problems, problems

ROOT = Path(__file__).resolve().parents[1]


def test_docs_example_is_included_and_runs():
    page = (ROOT / "docs" / "testing.rst").read_text()
    included = re.search(r"^\.\. literalinclude:: \.\./(\S+)$", page, re.M)
    assert included, "docs/testing.rst includes its example from a file"
    path = ROOT / included.group(1)
    code = path.read_text().splitlines()
    assert len([ln for ln in code if ln.strip()]) <= 25  # a short example, as the page says
    spec = importlib.util.spec_from_file_location("user_estimator_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_my_hypergradient()  # the Hypothesis test, all its examples


def test_failures_shrink_to_the_simplest_instance():
    """A property failing for every problem is reported on the simplest one."""
    quiet = settings(database=None, max_examples=50)
    P = find(lluc_problems(), lambda P: True, settings=quiet)
    assert (P.d_x, P.d_y, P.p) == (1, 1, 2.0)
    P = find(lluc_problems(), lambda P: P.p > 3.5, settings=quiet)
    assert P.p == 4.0 and P.d_y == 1
    case = find(contraction_cases(), lambda c: True, settings=quiet)
    assert case.lam.shape == (1,) and case.problem.d == 1
    assert find(problems(), lambda P: P.constants.mu is not None, settings=quiet).d_y == 1


def test_hypergradient_assertion():
    P = next(iter([find(lluc_problems(("unibio-example3",)), lambda P: P.p == 4)]))
    x = np.array([[0.3], [1.1]])
    assert_hypergradient_close(P, x, P.grad_phi(x))
    y = P.y_star(x) + 0.1
    from refbilevel.hypergradient import generalized_hypergradient

    assert_hypergradient_close(P, x, generalized_hypergradient(P, x, y), y=y)
    with pytest.raises(AssertionError, match="max abs error"):
        assert_hypergradient_close(P, x, P.grad_phi(x) * (1 + 1e-6))
    with pytest.raises(ValueError, match="shape"):
        assert_hypergradient_close(P, x, P.grad_phi(x)[0])


@pytest.mark.parametrize("method", ["bonferroni", "hotelling"])
def test_mean_test_false_positive_rate_and_power(method):
    """Under the null (normal draws, d = 3, R = 50) the rejection rate is at most the stated
    1e-3: 3000 tests give ~3 rejections; more than 14 has probability < 1e-6 if the rate
    holds (Poisson(3) tail). A mean shifted by 1 SD is rejected every time at R = 200."""
    rng = np.random.default_rng(7)
    truth = np.array([1.0, -2.0, 0.5])
    cov = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 2.0]])
    L = np.linalg.cholesky(cov)
    rejections = sum(mean_test(truth + rng.standard_normal((50, 3)) @ L.T, truth,
                               method=method).rejected for _ in range(3000))
    assert rejections <= 14
    for _ in range(20):
        shifted = truth + np.array([1.0, 0, 0]) + rng.standard_normal((200, 3)) @ L.T
        with pytest.raises(AssertionError, match="mean differs from truth"):
            assert_mean_matches(shifted, truth, method=method)


def test_mean_test_with_a_stated_bias():
    rng = np.random.default_rng(3)
    draws = 0.3 + rng.standard_normal((400, 2))
    assert_mean_matches(draws, 0.0, bias=0.3)  # exact bias
    assert_mean_matches(draws, 0.0, bias_bound=0.35)  # a bound covering it
    with pytest.raises(AssertionError, match="bias bound"):
        assert_mean_matches(draws, 0.0, bias_bound=0.01)
    with pytest.raises(ValueError, match="false_positive_rate must lie in"):
        mean_test(draws, 0.0, false_positive_rate=0.05)
    with pytest.raises(ValueError, match="exact mean"):
        mean_test(draws, 0.0, bias_bound=0.1, method="hotelling")


def test_estimate_assertion():
    assert assert_estimate_matches(1.0 + 3.0 * 0.01, 0.01, 1.0) > 3.0  # z(1e-3) = 3.29
    with pytest.raises(AssertionError, match="coordinate 1"):
        assert_estimate_matches([1.0, 1.5], [0.01, 0.01], [1.0, 1.0])
    with pytest.raises(AssertionError):
        assert_estimate_matches(np.nan, 0.1, 1.0)


def test_loglog_slope():
    x = np.logspace(1, 4, 10)
    fit = fit_loglog_slope(x, 3.0 * x**-0.5)
    assert fit.slope == pytest.approx(-0.5, abs=1e-12) and fit.ci[1] - fit.ci[0] < 1e-9
    rng = np.random.default_rng(0)
    y = x**-0.5 * np.exp(0.05 * rng.standard_normal(x.size))
    assert_loglog_slope(x, y, -0.5)
    assert_loglog_slope(x, y, -0.5, y_se=0.05 * y)
    with pytest.raises(AssertionError, match="excludes the expected -1"):
        assert_loglog_slope(x, y, -1.0, tolerance=0.1)
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_loglog_slope(x[:2], y[:2])
