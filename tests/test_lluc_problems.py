"""LLUC problems (UniBiO): X1 derivatives, U1-U5 properties, H^{-T} vs H^{-1}, bad input.

Spec docs/unibio.rst §1.4-1.6, §3.1-3.4, §6.1, §6.4; docs/checks.rst U1-U5, X1.
"""

import textwrap

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from refbilevel.hypergradient import (
    generalized_hypergradient,
    ghadimi_wang_hypergradient,
    h_inverse_hypergradient,
)
from refbilevel.power_map import inverse_power_map, power_map
from refbilevel.problems import make_problem
from refbilevel.problems.derivative_check import fd_directional, fd_gradient
from refbilevel.problems.hypercleaning import LpHyperCleaning
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
    SharpHolderUniformlyConvex,
    uniform_convexity_modulus_1d,
)
from refbilevel.testing.strategies import exponents, lluc_problems, upper_points

RTOL_FD = 1e-6  # central differences with h = 1e-6: error ~1e-10 (see fd_directional)


def fixed_lluc_problems():
    out = [UniBiOExample3(p) for p in (2, 4, 6, 8)]
    for d in (1, 2, 10, 100):
        out += [SeparableUniformlyConvex(d=d, p=p) for p in (2.0, 2.5, 4.0)]
    for d in (1, 2, 10):
        out.append(NonSeparableUniformlyConvex(d_y=d, p=4.0, seed=d))
    out.append(NonSeparableUniformlyConvex(d_y=4, d_x=2, p=3.5, seed=7))
    # ∇phi exactly Hölder-1/(p-1) at x = 0 (claim U4's sharp instance)
    out += [SharpHolderUniformlyConvex(d=1, p=p) for p in (2.0, 4.0)]
    out.append(SharpHolderUniformlyConvex(d=3, p=3.5))
    out += [LpHyperCleaning(p=3.0), LpHyperCleaning(n=8, d=3, p=4.0, seed=1)]
    return out


PROBLEMS = fixed_lluc_problems()
IDS = [f"{type(P).__name__}-d{P.d_y}-p{P.p:g}" for P in PROBLEMS]


def _point(P, seed, n=4):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (n, P.d_x))
    # away from y_i = 0 (|y|^p is not C^3 there for non-integer p) and from the kink of
    # Example 3's f at |y^{p-1}| = pi/2
    y = rng.choice([-1, 1], (n, P.d_y)) * rng.uniform(0.2, 1.0, (n, P.d_y))
    v = rng.standard_normal((n, P.d_y))
    w = rng.standard_normal((n, P.d_x))
    return x, y, v, w


def close(a, b, rtol=RTOL_FD):
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("P", PROBLEMS, ids=IDS)
def test_x1_first_derivatives_match_finite_differences(P):
    x, y, _, _ = _point(P, 0)
    close(P.grad_x_f(x, y), fd_gradient(lambda z: P.f(z, y), x))
    close(P.grad_y_f(x, y), fd_gradient(lambda z: P.f(x, z), y))
    close(P.grad_x_g(x, y), fd_gradient(lambda z: P.g(z, y), x))
    close(P.grad_y_g(x, y), fd_gradient(lambda z: P.g(x, z), y))


@pytest.mark.parametrize("P", PROBLEMS, ids=IDS)
def test_x1_second_order_products_and_dot_test(P):
    x, y, v, w = _point(P, 1)
    close(P.hvp_yy_g(x, y, v), fd_directional(lambda z: P.grad_y_g(x, z), y, v))
    close(P.jvp_xy_g(x, y, v), fd_directional(lambda z: P.grad_x_g(x, z), y, v))
    close(P.jvp_yx_g(x, y, w), fd_directional(lambda z: P.grad_y_g(z, y), x, w))
    # adjoint (dot-product) test, exact up to rounding: <∇²_xy g v, w> = <v, ∇²_yx g w>
    lhs = np.sum(P.jvp_xy_g(x, y, v) * w, axis=-1)
    rhs = np.sum(v * P.jvp_yx_g(x, y, w), axis=-1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-14)
    # HVP symmetry <Hv, v'> = <v, Hv'>
    v2 = np.roll(v, 1, axis=0)
    np.testing.assert_allclose(np.sum(P.hvp_yy_g(x, y, v) * v2, -1),
                               np.sum(v * P.hvp_yy_g(x, y, v2), -1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("P", PROBLEMS, ids=IDS)
def test_x1_generalized_derivatives_match_finite_differences_in_u(P):
    """f_u and H are derivatives w.r.t. u = [y]^{∘(p-1)} (docs/unibio.rst §1.4 eqs. (10a,b))."""
    x, y, v, _ = _point(P, 2)
    u = power_map(y, P.p)
    close(P.f_u(x, y), fd_gradient(lambda s: P.f(x, inverse_power_map(s, P.p)), u, h=1e-7))
    close(P.gen_hvp(x, y, v),
          fd_directional(lambda s: P.grad_y_g(x, inverse_power_map(s, P.p)), u, v, h=1e-7))
    # gen_hvp_T is the transpose: <H v, v'> = <v, Hᵀ v'>
    v2 = np.roll(v, 1, axis=0)
    np.testing.assert_allclose(np.sum(P.gen_hvp(x, y, v) * v2, -1),
                               np.sum(v * P.gen_hvp_T(x, y, v2), -1), rtol=1e-10)


@pytest.mark.parametrize("P", PROBLEMS, ids=IDS)
def test_ground_truth_y_star_phi_grad_phi(P):
    x, *_ = _point(P, 3)
    ys = P.y_star(x)
    np.testing.assert_allclose(P.grad_y_g(x, ys), 0.0, atol=1e-12)
    np.testing.assert_allclose(P.phi(x), P.f(x, ys), rtol=1e-14, atol=1e-14)
    close(P.grad_phi(x), fd_gradient(P.phi, x))


@pytest.mark.parametrize("P", PROBLEMS, ids=IDS)
def test_u3_generalized_hypergradient_formula(P):
    """UniBiO Thm 4.1 eq. (7), H^{-T} form (docs/unibio.rst §1.6) = closed-form ∇phi, and
    = Ghadimi–Wang wherever ∇²_yy g is invertible (y* has no zero coordinate here)."""
    x, *_ = _point(P, 4)
    ys = P.y_star(x)
    np.testing.assert_allclose(generalized_hypergradient(P, x, ys), P.grad_phi(x),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ghadimi_wang_hypergradient(P, x, ys), P.grad_phi(x),
                               rtol=1e-10, atol=1e-12)


@given(x=st.lists(st.floats(-3, 3), min_size=3, max_size=3), seed=st.integers(0, 50))
def test_u3_control_h_inverse_form_fails_on_non_symmetric_instance(x, seed):
    """The H^{-1} form quoted by the summaries is wrong for non-symmetric H (§1.6)."""
    P = NonSeparableUniformlyConvex(d_y=3, p=4.0, seed=seed)
    x = np.array(x)
    ys = P.y_star(x)
    # H = I + A D(y)^{-1} does not exist where some y*_i = 0 (documented in the class)
    assume(np.min(np.abs(ys)) > 1e-3)
    good = generalized_hypergradient(P, x, ys)
    bad = h_inverse_hypergradient(P, x, ys)
    np.testing.assert_allclose(good, P.grad_phi(x), rtol=1e-9, atol=1e-11)
    H = P.generalized_hessian(x, ys)
    asym = np.linalg.norm(H - H.T) / np.linalg.norm(H)
    if asym > 1e-3:  # the forms coincide only when H is (nearly) symmetric
        assert np.linalg.norm(bad - good) > 1e-9 * max(1.0, np.linalg.norm(good))


def test_u3_control_magnitude_on_reference_instance():
    P = NonSeparableUniformlyConvex(d_y=3, p=4.0)
    x = np.array([0.7, -1.1, 0.4])
    ys = P.y_star(x)
    err = np.linalg.norm(h_inverse_hypergradient(P, x, ys) - P.grad_phi(x))
    assert err > 1e-2, err


def test_u3_example3_generalized_equals_classical_away_from_zero_and_finite_at_zero():
    for p in (4, 6, 8):
        P = UniBiOExample3(p)
        x = np.array([[np.pi], [0.0], [1.0]])  # y*(x) = 0 at x = 0, pi
        ys = P.y_star(x)
        hg = generalized_hypergradient(P, x, ys)
        assert np.all(np.isfinite(hg))
        np.testing.assert_allclose(hg, P.grad_phi(x), atol=1e-12)
        # the classical Hessian (p-1) y^{p-2} is singular at y = 0: GW is undefined there
        assert P.hessian_yy(x[1], ys[1])[0, 0] == 0.0


@given(problem=lluc_problems(("unibio-example3",)), x1=st.floats(-4, 4), x2=st.floats(-4, 4))
def test_u1_holder_example3(problem, x1, x2):
    P, p = problem, problem.p
    dy = abs(P.y_star([x1])[0] - P.y_star([x2])[0])
    assert dy <= P.constants.l_p * abs(x1 - x2) ** (1 / (p - 1)) * (1 + 1e-12) + 1e-300
    # the sharp constant of the odd root (docs/unibio.rst §6.1 table) also holds
    assert dy <= P.constants.extra["l_p_exact"] * abs(x1 - x2) ** (1 / (p - 1)) * (1 + 1e-12)


@given(problem=lluc_problems(("uniformly-convex-separable", "uniformly-convex-sharp-holder"),
                             max_dim=6, p=exponents(2.0, 10.0)),
       data=st.data(), scale=st.floats(-10, 0.5))
def test_u1_holder_vector_families_non_integer_p(problem, data, scale):
    """UniBiO Lemma 4.2 (docs/unibio.rst §3.1): ||y*(x1) - y*(x2)|| <= l_p ||x1 - x2||^{1/(p-1)}
    on the separable and sharp-Hölder families, p real in [2, 10], d <= 6 (drawn by
    refbilevel.testing: a failure shrinks to d = 1, p = 2)."""
    P = problem
    x1 = data.draw(upper_points(P))
    u = data.draw(upper_points(P, bound=1.0))
    x2 = x1 + 10.0**scale * u
    dy, dx = scaled_norm(P.y_star(x1) - P.y_star(x2)), scaled_norm(x1 - x2)
    assert dy <= P.constants.l_p * dx ** (1 / (P.p - 1)) * (1 + 1e-12)


def scaled_norm(v: np.ndarray) -> float:
    """||v|| without the underflow of sum(v²) for tiny v (Hypothesis draws differences of
    1e-216, whose square is 0 in float64)."""
    m = float(np.max(np.abs(v)))
    return m * float(np.linalg.norm(v / m)) if m > 0 else 0.0


@pytest.mark.parametrize("p", [2, 4, 6, 8])
def test_u1_sharpness_and_control_near_zero(p):
    """Fitted local exponent near x = 0 is 1/(p-1) within 0.02 (docs/checks.rst U1); the control
    exponent 1/(p-1) + 0.1 is violated by a pair near 0."""
    P = UniBiOExample3(p)
    h = np.logspace(-9, -4, 30)
    slope = np.polyfit(np.log(h), np.log(np.abs(P.y_star(h[:, None])[:, 0])), 1)[0]
    assert abs(slope - 1 / (p - 1)) <= 0.02
    hs = 1e-12
    dy = abs(P.y_star([hs])[0] - P.y_star([-hs])[0])
    assert dy > P.constants.l_p * (2 * hs) ** (1 / (p - 1) + 0.1)


@given(problem=lluc_problems(max_dim=4), data=st.data(), logmag=st.floats(-12, 1))
def test_u2_generalized_hessian_lower_bound(problem, data, logmag):
    """UniBiO Lemma B.2 (docs/unibio.rst §3.2): lambda_min(H(x, y)) >= mu on every LLUC family
    (drawn by refbilevel.testing), and ||H v|| >= mu ||v|| where H does not depend on y."""
    P = problem
    x = data.draw(upper_points(P))
    # y at scale 10^logmag around 0, where the p > 2 Hessians are singular
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    mag = logmag if P.hessian_independent_of_y else max(logmag, -2.0)
    y = rng.standard_normal(P.d_y) * 10.0**mag
    v = rng.standard_normal(P.d_y)
    H = P.generalized_hessian(x, y)
    tol = 1e-9 * max(1.0, np.linalg.norm(H, 2))  # rounding of eig/norm (backward stable)
    assert np.linalg.eigvals(H).real.min() >= P.constants.mu - tol
    if P.hessian_independent_of_y:  # Lemma B.2's hypothesis
        assert np.linalg.norm(P.gen_hvp(x, y, v)) >= P.constants.mu * np.linalg.norm(v) - tol


def test_u2_control_one_and_a_half_mu_violated_where_tight():
    P = UniBiOExample3(2)
    H = P.generalized_hessian([0.3], [0.2])
    assert np.linalg.eigvals(H).real.min() < 1.5 * P.constants.mu


def test_u2_singular_value_claim_needs_y_independent_h():
    """Documented boundary of Lemma B.2: with y-dependent H the singular-value form fails
    while lambda_min >= mu still holds (docs/unibio.rst §3.2)."""
    A = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-3]])
    P = NonSeparableUniformlyConvex(d_y=2, p=4.0, A=A, B=np.eye(2), seed=0)
    y = np.array([1e-3 ** 0.5 / 3 ** 0.5, 20.0])  # D = diag(~1e-3, 1200): very unequal
    H = P.generalized_hessian(np.zeros(2), y)
    assert np.linalg.eigvals(H).real.min() >= 1.0 - 1e-9
    assert np.linalg.svd(H, compute_uv=False).min() < 1.0


def test_uniform_convexity_modulus_table():
    """docs/unibio.rst §6.1 table: 1, 1/3, 0.10129, 0.029243."""
    for p, want in [(2, 1.0), (4, 1 / 3), (6, 0.10129), (8, 0.029243)]:
        assert uniform_convexity_modulus_1d(p) == pytest.approx(want, rel=5e-5)


U45 = [P for P in PROBLEMS if P.constants.L_phi1 is not None]


@given(seed=st.integers(0, 10**6), i=st.integers(0, len(U45) - 1), scale=st.floats(-8, 1))
def test_u4_holder_smoothness_and_descent_inequality(seed, i, scale):
    """UniBiO Thm 4.1 eqs. (8), (9) with the DERIVED constants of docs/unibio.rst §3.3."""
    P = U45[i]
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-3, 3, P.d_x)
    x2 = x1 + 10.0**scale * rng.standard_normal(P.d_x)
    dx = np.linalg.norm(x1 - x2)
    c = P.constants
    e = 1 / (P.p - 1)
    lhs = np.linalg.norm(P.grad_phi(x1) - P.grad_phi(x2))
    assert lhs <= c.L_phi1 * dx**e + c.L_phi2 * dx + 1e-13
    rhs = (P.phi(x2) + P.grad_phi(x2) @ (x1 - x2)
           + (P.p - 1) * c.L_phi1 / P.p * dx ** (P.p / (P.p - 1)) + c.L_phi2 / 2 * dx**2)
    assert P.phi(x1) <= rhs + 1e-12 * max(1.0, abs(P.phi(x2)))


@given(seed=st.integers(0, 10**6), i=st.integers(0, len(U45) - 1), scale=st.floats(-8, 1))
def test_u5_surrogate_bias_bounded_by_lower_level_error(seed, i, scale):
    """UniBiO Lemma B.4 (docs/unibio.rst §3.4): ||∇̄f(x, y) - ∇phi(x)|| <= L_phi2 ||y - y*||."""
    P = U45[i]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, P.d_x)
    ys = P.y_star(x)
    y = ys + 10.0**scale * rng.standard_normal(P.d_y)
    err = np.linalg.norm(generalized_hypergradient(P, x, y) - P.grad_phi(x))
    assert err <= P.constants.L_phi2 * np.linalg.norm(y - ys) * (1 + 1e-12) + 1e-13


@pytest.mark.parametrize("p", [2.5, 4.0, 8.0])
def test_sharp_holder_instance_has_the_exact_exponent_and_a_continuous_f(p):
    """SharpHolderUniformlyConvex: ∇phi(h) - ∇phi(-h) ~ 2^{1-e}(2h)^e at 0, e = 1/(p-1) (the
    Hölder term of UniBiO Thm 4.1 eq. (8) is attained); f is continuous across |y| = 1 where
    its two pieces meet, and f_u = clip(y, -1, 1)."""
    P = SharpHolderUniformlyConvex(d=1, p=p)
    e = 1 / (p - 1)
    h = np.logspace(-12, -6, 13)[:, None]
    jump = (P.grad_phi(h) - P.grad_phi(-h))[:, 0]
    np.testing.assert_allclose(jump, P.constants.extra["holder_constant_at_0"] * (2 * h[:, 0]) ** e,
                               rtol=1e-9)
    y = np.array([[1 - 1e-12], [1 + 1e-12], [-1 - 1e-12]])
    np.testing.assert_allclose(P.f(np.zeros((3, 1)), y), (p - 1) / p, atol=1e-10)
    np.testing.assert_array_equal(P.f_u(np.zeros((3, 1)), 3 * y), [[1.0], [1.0], [-1.0]])


def test_generalized_quantities_finite_at_zero():
    """Near y_i = 0 with p > 2 the generalized quantities take their analytic limits (§1.5)."""
    for P in (UniBiOExample3(6), SeparableUniformlyConvex(d=3, p=3.7)):
        y = np.zeros(P.d_y)
        x = np.full(P.d_x, 0.4)
        for val in (P.f_u(x, y), P.gen_hvp(x, y, np.ones(P.d_y)),
                    P.gen_hvp_T(x, y, np.ones(P.d_y)), generalized_hypergradient(P, x, y)):
            assert np.all(np.isfinite(val))


def test_closed_form_problem_from_callables_matches_example3():
    """The documented example of refbilevel.problems.custom reproduces Example 3, p = 2."""
    import refbilevel.problems.custom as custom

    ns: dict = {}
    code = custom.__doc__.split("::")[1].split("Every callable")[0]
    exec(textwrap.dedent(code), ns)  # the docstring example must run as written
    P, E = ns["P"], UniBiOExample3(2)
    x = np.linspace(-2, 2, 7)[:, None]
    y = np.linspace(-1, 1, 7)[:, None]
    for name in ("f", "g", "grad_y_g", "grad_y_f", "grad_x_g"):
        np.testing.assert_allclose(getattr(P, name)(x, y), getattr(E, name)(x, y), atol=1e-15)
    np.testing.assert_allclose(P.grad_phi(x), E.grad_phi(x), atol=1e-14)
    np.testing.assert_allclose(P.phi(x), E.phi(x), atol=1e-15)
    with pytest.raises(ValueError, match="missing: \\['y_star'\\]"):
        custom.ClosedFormProblem(d_x=1, d_y=1, **{k: v for k, v in P._fns.items()
                                                  if k != "y_star"})


@pytest.mark.parametrize("bad, match", [
    (lambda: UniBiOExample3(3), "p must be an even integer"),
    (lambda: UniBiOExample3(1.5), r"p must lie in \[2"),
    (lambda: SeparableUniformlyConvex(d=2, p=1.9), r"p must lie in \[2"),
    (lambda: SeparableUniformlyConvex(d=0), r"d must be an integer in \[1"),
    (lambda: NonSeparableUniformlyConvex(d_y=2, A=-np.eye(2)), "A must be positive definite"),
    (lambda: NonSeparableUniformlyConvex(d_y=2, B=np.ones((3, 3))), "B must have shape"),
    (lambda: UniBiOExample3(4).grad_phi([np.nan]), "x must be finite"),
    (lambda: SeparableUniformlyConvex(d=3).f(np.ones(3), np.ones(2)), r"y must have shape"),
    (lambda: make_problem("no-such-problem"), "unknown problem 'no-such-problem'"),
    (lambda: LpHyperCleaning(c=0.0), r"c must lie in \(0"),
    (lambda: LpHyperCleaning(corruption=1.5), r"corruption must lie in \[0, 1\]"),
])
def test_bad_input_raises_named_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
