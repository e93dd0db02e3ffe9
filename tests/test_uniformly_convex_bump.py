"""The uniformly-convex-bump family: non-symmetric H inside Assumption 3.2 (docs/unibio.rst
§1.6, §2.1; refbilevel/problems/uniformly_convex_bump.py)."""

import numpy as np
import pytest

from refbilevel.hypergradient import generalized_hypergradient, h_inverse_hypergradient
from refbilevel.power_map import power_map
from refbilevel.problems import make_problem
from refbilevel.problems.derivative_check import bilevel_derivative_checks
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump


@pytest.fixture(scope="module")
def bump():
    return make_problem("uniformly-convex-bump")


def test_y_star_by_newton_is_exact_where_the_preimage_is_known(bump):
    """structured_points gives x = G^{-1}(u) for u drawn in the support, so y*(x) = P^{-1}(u)
    is known independently of Newton; Newton starts at u = x != u* and must get there."""
    x, y = bump.structured_points(np.random.default_rng(1), 200)
    assert np.median(np.linalg.norm(x - power_map(y, bump.p), axis=-1)) > 1e-4  # not the start
    # 4 ulps of |y| <= 1: Newton to the rounding floor of G(u) = 0, then one power map
    np.testing.assert_allclose(bump.y_star(x), y, rtol=0, atol=1e-15)
    xr = np.random.default_rng(2).uniform(-2, 2, (300, 3))
    ys = bump.y_star(xr)
    assert np.max(np.abs(bump.grad_y_g(xr, ys))) <= 1e-13


def test_h_is_non_symmetric_on_the_support_and_the_identity_off_it(bump):
    x, y = bump.structured_points(np.random.default_rng(3), 100)
    H = bump.generalized_hessian(x, y)
    asym = np.abs(H - np.swapaxes(H, -1, -2)).max(axis=(-2, -1))
    assert asym.max() > 1e-3
    far = np.full((1, 3), 2.0)  # |u_i| = 8 > center + radius: outside the support
    np.testing.assert_array_equal(bump.generalized_hessian(far, far)[0], np.eye(3))


def test_stated_constants_hold_at_random_points(bump):
    """mu (uniform convexity), C (||H|| <= C) and the singular-value floor 1 - eps M_E at
    points in and around the support; every comparison is exact up to rounding (1e-12)."""
    rng = np.random.default_rng(4)
    c = bump.constants
    x, ys = bump.structured_points(rng, 400)
    y_all = np.concatenate([ys, rng.uniform(-1.2, 1.2, (400, 3))])
    x_all = np.concatenate([x, rng.uniform(-2, 2, (400, 3))])
    sv = np.linalg.svd(bump.generalized_hessian(x_all, y_all), compute_uv=False)
    assert sv.max() <= c.C + 1e-12
    assert sv.min() >= c.extra["sigma_min_H_lower_bound"] - 1e-12 >= c.mu
    y1, y2 = y_all, y_all[rng.permutation(800)] * rng.uniform(0.5, 1.5, (800, 1))
    gap = (bump.g(x_all, y2) - bump.g(x_all, y1)
           - np.sum(bump.grad_y_g(x_all, y1) * (y2 - y1), axis=-1))
    floor = c.mu / c.p * np.linalg.norm(y2 - y1, axis=-1) ** c.p
    assert np.all(gap >= floor - 1e-12 * (1 + np.abs(bump.g(x_all, y1))))


def test_only_the_h_inverse_transpose_form_is_the_hypergradient(bump):
    x, y = bump.structured_points(np.random.default_rng(5), 50)
    truth = bump.grad_phi(x)
    h = 1e-6
    fd = np.stack([(bump.phi(x + h * e) - bump.phi(x - h * e)) / (2 * h) for e in np.eye(3)],
                  axis=-1)
    # central differences: truncation h² |phi'''| ~ 1e-11, rounding eps |phi| / h ~ 1e-10
    np.testing.assert_allclose(fd, truth, rtol=0, atol=1e-8)
    np.testing.assert_allclose(generalized_hypergradient(bump, x, y), truth, rtol=0,
                               atol=1e-13)
    # the H^{-1} form misses by eps (D_i - D_j) ∂²β, ~1e-2 here: far above any rounding
    assert np.max(np.abs(h_inverse_hypergradient(bump, x, y) - truth)) > 1e-3


def test_a_transposition_mistake_fails_the_derivative_check(bump):
    class Swapped(UniformlyConvexBump):
        def _gen_hvp_T(self, x, y, v):
            return self._gen_hvp(x, y, v)

    wrong = Swapped()
    rng = np.random.default_rng(6)
    x, y = wrong.structured_points(rng, 6)
    v, u, w = rng.standard_normal((3, 6, 3))
    comps = {c.name: c for c in bilevel_derivative_checks(wrong, x, y, v, u, w,
                                                          hypergradient=False)}
    assert comps["gen_hvp"].passed and not comps["gen_hvp_T"].passed
    assert not comps["gen_hvp adjoint"].passed
    right = {c.name: c for c in bilevel_derivative_checks(bump, x, y, v, u, w,
                                                          hypergradient=False)}
    assert all(c.passed for c in right.values())


@pytest.mark.parametrize("kwargs, message", [
    ({"center": 0.3, "radius": 0.4}, "center must lie in"),
    ({"strength": 1.0}, "strength must lie in"),
    ({"p": 1.5}, "p must lie in"),
    ({"a": [1.0, 2.0]}, "a must have shape"),
])
def test_bad_parameters_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniformlyConvexBump(**kwargs)


def test_stated_L_H_bounds_the_variation_of_H(bump):
    """||H(y1) − H(y2)|| <= L_H ||y1 − y2|| (module docstring's derivative bound) at pairs
    inside and across the support's boundary; exact up to rounding (1e-12)."""
    rng = np.random.default_rng(7)
    x, y1 = bump.structured_points(rng, 300)
    y2 = y1 + rng.standard_normal(y1.shape) * 10.0 ** rng.uniform(-6, -0.5, (300, 1))
    dH = bump.generalized_hessian(x, y1) - bump.generalized_hessian(x, y2)
    lhs = np.linalg.norm(dH, ord=2, axis=(-2, -1))
    assert np.all(lhs <= bump.constants.L_H * np.linalg.norm(y1 - y2, axis=-1) + 1e-12)
    # the bound is a bound, not a tautology: the variation is a visible fraction of it
    assert np.max(lhs / np.linalg.norm(y1 - y2, axis=-1)) > 1e-3 * bump.constants.L_H


def test_stated_L_phi2_bounds_the_surrogate_error_and_the_hypergradient_variation(bump):
    """L_phi2 = L̄ with ||H^{-1}|| <= 1/(1 − eps M_E) (module docstring; 14.7, not the 3137
    of the 1/mu form): ||∇̄f(x, y) − ∇phi(x)|| <= L_phi2 ||y − y*(x)|| (Lemma B.4) and
    eq. (8) with (L_phi1, L_phi2), at pairs in and around the support; exact up to rounding
    (1e-12 of the sides' scale). U4 and U5 test the same with more probes."""
    c = bump.constants
    s = 1.0 / c.extra["sigma_min_H_lower_bound"]
    assert c.L_phi2 == pytest.approx(c.l_f1 + s**2 * c.C_f * c.L_H, rel=1e-14)
    assert c.L_phi2 < 0.01 * (c.l_f1 + c.C_f * c.L_H / c.mu**2)
    rng = np.random.default_rng(8)
    x, ys = bump.structured_points(rng, 300)
    y = ys + rng.standard_normal(ys.shape) * 10.0 ** rng.uniform(-6, -0.5, (300, 1))
    lhs = np.linalg.norm(generalized_hypergradient(bump, x, y) - bump.grad_phi(x), axis=-1)
    assert np.all(lhs <= c.L_phi2 * np.linalg.norm(y - ys, axis=-1) + 1e-12)
    x2 = x + rng.standard_normal(x.shape) * 10.0 ** rng.uniform(-6, 0, (300, 1))
    dx = np.linalg.norm(x2 - x, axis=-1)
    dg = np.linalg.norm(bump.grad_phi(x2) - bump.grad_phi(x), axis=-1)
    assert np.all(dg <= c.L_phi1 * dx ** (1.0 / (c.p - 1.0)) + c.L_phi2 * dx + 1e-12)


@pytest.mark.numba
def test_numba_record_reproduces_numpy_for_every_estimator_and_unibio(bump):
    """X4 for the bump family: the Numba record (refbilevel/backends/numba_families.py) runs
    every estimator that applies at p = 4 and UniBiO, the one algorithm whose assumptions it
    meets, to <= 1e-12 relative with the same counts and random numbers."""
    import refbilevel
    from refbilevel.estimators import finite_difference as fd
    from refbilevel.estimators import finite_difference_numba as fdn
    from refbilevel.estimators.linear_system import linear_system_sgd
    from refbilevel.estimators.linear_system_numba import linear_system_sgd_numba
    from refbilevel.estimators.neumann import neumann_hypergradient
    from refbilevel.estimators.neumann_numba import neumann_hypergradient_numba
    from tests.test_estimators import _assert_parity

    rng = np.random.default_rng(8)
    x, y = bump.structured_points(rng, 4)  # inside the support: the bump's terms are live
    v = rng.standard_normal((4, 3))
    _assert_parity(neumann_hypergradient, neumann_hypergradient_numba, bump, x, y, 5,
                   alpha=0.3, truncation="randomized", variant="generalized")
    _assert_parity(linear_system_sgd, linear_system_sgd_numba, bump, x, y, 4, 0.2,
                   radius=1.0)
    for name in ("fd_hvp", "fd_jvp", "fd_hypergradient", "fd_ls_gradient"):
        _assert_parity(getattr(fd, name), getattr(fdn, name + "_numba"), bump, x, y, v, 1e-2)
    runs = [refbilevel.solve("uniformly-convex-bump", "unibio", backend=b, T=5, noise=0.1,
                             seed=3, replicas=2, x0=0.6) for b in ("numpy", "numba")]
    scale = np.max(np.abs(runs[0].x))
    assert np.max(np.abs(runs[0].x - runs[1].x)) <= 1e-12 * scale
    assert np.array_equal(runs[0].grad_phi_norm, runs[1].grad_phi_norm) or np.max(
        np.abs(runs[0].grad_phi_norm - runs[1].grad_phi_norm)) <= 1e-12 * np.max(
        runs[0].grad_phi_norm)
