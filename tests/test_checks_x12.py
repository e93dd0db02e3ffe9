"""Theory checks X1 (derivatives vs finite differences, adjoint tests) and X2 (oracles
unbiased with the configured variance) in quick mode, and the finite-difference machinery
of refbilevel.problems.derivative_check they share with the problem tests (docs/checks.rst X1)."""

import numpy as np
import pytest

from refbilevel.problems.derivative_check import (
    ADJOINT_RTOL,
    FD_RTOL,
    adjoint_residual,
    bilevel_derivative_checks,
    fd_directional,
    fd_directional_estimate,
    fd_gradient,
    fd_gradient_estimate,
    relative_error,
    u_step,
)
from refbilevel.problems.uniformly_convex import NonSeparableUniformlyConvex
from theory_checks import x1_derivatives, x2_oracle_unbiasedness


@pytest.fixture(scope="module")
def x1():
    return x1_derivatives.measure(mode="quick", seed=0)


@pytest.fixture(scope="module")
def x2():
    return x2_oracle_unbiasedness.measure(mode="quick", seed=0)


def test_x1_quick_passes_and_rejects_its_controls(x1):
    assert x1.passed and x1.control_rejected
    cov = x1.measured["coverage"]
    assert cov["uncovered"] == [] and set(cov["registered"]) == {
        r["registry"] for r in x1.measured["per_problem"]}
    dims = {max(r["dims"]) for r in x1.measured["per_problem"]}
    assert {1, 2, 10, 100} <= dims
    # every control fails where it must, by orders of magnitude
    for c in x1.control["per_control"]:
        assert c["rejected"] and min(r["ratio"] for r in c["must_fail"].values()) > 100
    # the tolerance is well above the finite-difference reference's own error
    assert x1.measured["min_fd_tolerance_margin"] > 5


def test_x2_quick_passes_and_rejects_its_controls(x2):
    assert x2.passed and x2.control_rejected
    m = x2.measured
    assert set(m["per_oracle"]) == {"GaussianOracle", "FiniteSumOracle", "ContractionOracle",
                                    "MatrixNoiseOracle"}
    # Bonferroni: the critical value grows with the number of comparisons, >= 4.5
    assert m["critical_value"] >= 4.5 and m["alpha_per_comparison"] * m["comparisons"] <= 1e-3
    assert len(x2.control["per_control"]) == 6


def test_fd_helpers_and_their_error_estimates():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4))
    d = rng.standard_normal((3, 4))

    def cubic(a):
        return np.sum(a**3, axis=-1)

    def cubic_grad(a):
        return 3 * a**2

    # scalar and per-point steps; gradient and directional forms agree
    np.testing.assert_allclose(fd_gradient(cubic, z), cubic_grad(z), rtol=0, atol=1e-8)
    np.testing.assert_allclose(fd_directional(cubic, z, d, h=np.full((3, 1), 1e-6)),
                               np.sum(cubic_grad(z) * d, -1), rtol=1e-7)
    # with a large step the Richardson estimate is the actual truncation error: for a cubic
    # D(h) - D = h² Σ d³ exactly, so |D(h) - D(2h)|/3 = h² |Σ d³|
    h = 1e-2
    est = fd_directional_estimate(cubic, z, d, h)
    exact = np.sum(cubic_grad(z) * d, -1)
    np.testing.assert_allclose(np.abs(est.value - exact), est.truncation, rtol=1e-6)
    assert np.all(est.rounding < 1e-12)
    g = fd_gradient_estimate(cubic, z, h)
    np.testing.assert_allclose(g.truncation, np.full((3, 4), h**2), rtol=1e-6)


def test_error_measures_and_u_step():
    A = np.array([[2.0, 1.0], [0.0, 3.0]])
    v, w = np.array([1.0, -2.0]), np.array([0.5, 1.5])
    assert adjoint_residual(A @ v, w, v, A.T @ w) <= 1e-16
    assert adjoint_residual(A @ v, w, v, A @ w) > 0.1  # A is not symmetric
    assert adjoint_residual(np.zeros(2), w, v, np.zeros(2)) == 0.0
    assert relative_error([1.0, 2.0], [1.0, 2.0 + 1e-7]) == pytest.approx(5e-8)
    assert relative_error([1e-9], [0.0]) == pytest.approx(1e-9)  # scale floor 1
    assert u_step(np.array([[0.5, -0.01]]), 2.0) == 1e-6
    np.testing.assert_allclose(u_step(np.array([[0.5, -0.01]]), 4.0), [[1e-8]])
    with pytest.raises(ValueError, match="no zero coordinate"):
        u_step(np.array([[0.5, 0.0]]), 4.0)


def test_bilevel_procedure_flags_a_wrong_generalized_hessian_transpose():
    """docs/unibio.rst §1.6: Hᵀ ≠ H for the non-separable instance; the procedure must notice."""
    P = NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=1)
    rng = np.random.default_rng(3)
    pts = x1_derivatives.bilevel_points(P, rng, 2)
    good = {c.name: c for c in bilevel_derivative_checks(P, *pts)}
    assert all(c.passed for c in good.values())
    assert good["f_u"].tolerance == FD_RTOL and good["jvp adjoint"].tolerance == ADJOINT_RTOL
    wrong = x1_derivatives.WrongDerivative(P, "gen_hvp_T", P.gen_hvp)
    bad = {c.name: c for c in bilevel_derivative_checks(wrong, *pts)}
    assert not bad["gen_hvp_T"].passed and not bad["gen_hvp adjoint"].passed
    assert bad["gen_hvp"].passed and bad["f_u"].passed
