"""Hypergradient estimators: Neumann series, linear-system solvers, finite differences.

Covers claims U6 (Neumann bias), F1 (finite-difference error), X3 (counts) and X4 (NumPy ↔
Numba parity, NumPy ↔ device path) of docs/checks.rst, plus input validation.

Statistical tests use fixed seeds and a 4-standard-error acceptance band: under the normal
approximation P(|Z| > 4) = 6.3e-5 per compared coordinate; each test compares at most 12
coordinates, so its false-positive rate is <= 7.6e-4 <= 1e-3.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from refbilevel.backends.registry import (
    NotImplementedOnBackendError,
    backend_status,
    implementation,
)
from refbilevel.estimators import finite_difference as fd
from refbilevel.estimators import finite_difference_numba as fdn
from refbilevel.estimators.linear_system import (
    LinearSystemEstimate,
    linear_system_cg,
    linear_system_exact,
    linear_system_sgd,
    soba_to_z,
    z_to_soba,
)
from refbilevel.estimators.linear_system_numba import (
    linear_system_cg_numba,
    linear_system_sgd_numba,
)
from refbilevel.estimators.neumann import (
    neumann_bias_exact,
    neumann_expectation_exact,
    neumann_hypergradient,
)
from refbilevel.estimators.neumann_numba import neumann_hypergradient_numba
from refbilevel.hypergradient import generalized_hypergradient
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump
from refbilevel.projection import project_ball
from refbilevel.randomness import named_stream
from tests.fake_device import FAKE_DEVICE
from theory_checks.f1_finite_difference import CubicCross
from theory_checks.u6_neumann_bias import sharp_instance

Z = 4.0
EPS = np.finfo(float).eps
PARITY_RTOL = 1e-12
PARALLEL_R = 600  # with d = 64: large enough for the parallel kernel variant


def test_parallel_threshold():
    from refbilevel.estimators._common import parallel_worth_it

    assert parallel_worth_it(PARALLEL_R, 64) and not parallel_worth_it(5, 100)


def exact_oracle(problem):
    return GaussianOracle(problem, 0.0, np.random.default_rng(0))


def quad(d=4, **kw):
    return StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.2, L=1.0, seed=1, **kw)


# ---- input validation ---------------------------------------------------------------------
@pytest.mark.parametrize("call, match", [
    (lambda o, x, y: neumann_hypergradient(o, x, y, -1), "Q"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 0, truncation="randomized"), "Q"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, alpha=0.0), "alpha"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, alpha=-1.0), "alpha"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, truncation="random"), "truncation"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, variant="gen"), "variant"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, start=2), "start"),
    (lambda o, x, y: neumann_hypergradient(o, x, y, 3, truncation="randomized", start=1),
     "start"),
    (lambda o, x, y: neumann_hypergradient(o, x[:, :2], y, 3), "x"),
    (lambda o, x, y: neumann_hypergradient(o, np.full_like(x, np.nan), y, 3), "x"),
    (lambda o, x, y: neumann_hypergradient(o, x, np.r_[y, y][:3], 3), "replica"),
    (lambda o, x, y: linear_system_sgd(o, x, y, -1, 0.1), "steps"),
    (lambda o, x, y: linear_system_sgd(o, x, y, 3, 0.0), "step_size"),
    (lambda o, x, y: linear_system_sgd(o, x, y, 3, 0.1, radius=0.0), "radius"),
    (lambda o, x, y: linear_system_sgd(o, x, y, 3, 0.1, convention="v"), "convention"),
    (lambda o, x, y: linear_system_sgd(o, x, y, 3, 0.1, z0=np.ones(3)), "z0"),
    (lambda o, x, y: linear_system_cg(o.problem, x, y, -2), "iters"),
    (lambda o, x, y: linear_system_cg(o.problem, x, y, 2, tol=-1.0), "tol"),
    (lambda o, x, y: fd.fd_hvp(o, x, y, np.ones(4), 0.0), "delta"),
    (lambda o, x, y: fd.fd_jvp(o, x, y, np.ones(4), -1e-3), "delta"),
    (lambda o, x, y: fd.fd_hvp(o, x, y, np.ones(5), 1e-3), "v"),
    (lambda o, x, y: fd.fd_hvp(o, x, y, np.full(4, np.inf), 1e-3), "v"),
    (lambda o, x, y: neumann_hypergradient_numba(o, x, y, -1), "Q"),
    (lambda o, x, y: linear_system_sgd_numba(o, x, y, 3, -0.1), "step_size"),
    (lambda o, x, y: fdn.fd_hvp_numba(o, x, y, np.ones(4), 0.0), "delta"),
])
def test_bad_inputs_raise_value_error_naming_the_parameter(call, match):
    P = quad()
    o = exact_oracle(P)
    x, y = np.zeros((2, 4)), np.zeros((2, 4))
    with pytest.raises(ValueError, match=match):
        call(o, x, y)


def test_alpha_required_when_the_problem_states_no_bound():
    P = UniBiOExample3(4)  # ∇²_yy g = 3y² is unbounded: no L_y
    with pytest.raises(ValueError, match="alpha is required"):
        neumann_hypergradient(exact_oracle(P), 0.3, 0.2, 3, variant="classical")
    # the generalized variant has C = 1
    neumann_hypergradient(exact_oracle(P), 0.3, 0.2, 3, variant="generalized")


def test_oracle_type_checked():
    with pytest.raises(ValueError, match="oracle"):
        neumann_hypergradient(quad(), np.zeros(4), np.zeros(4), 2)


# ---- deterministic limits at y* ----------------------------------------------------------------
@pytest.mark.parametrize("variant", ["classical", "generalized"])
def test_deterministic_neumann_converges_to_closed_form_at_y_star(variant):
    P = quad(6)
    x = np.linspace(-1, 1, 6)
    ys = P.y_star(x)
    truth = P.grad_phi(x)
    # fixed truncation, start=0 (stocBiO): residual (I - H/C)^{Q+1}, kappa = 5 -> 0.8^401
    est = neumann_hypergradient(exact_oracle(P), x, ys, 400, variant=variant)
    np.testing.assert_allclose(est.value, truth, rtol=0, atol=1e-12)
    # the exact expectation of the randomized truncation tends to the same limit
    e = neumann_expectation_exact(P, x, ys, 400, 1.0 / P.constants.C, variant=variant)
    np.testing.assert_allclose(e, truth, rtol=0, atol=1e-12)
    # the error of a short series is the truncation error, not zero
    short = neumann_hypergradient(exact_oracle(P), x, ys, 3, variant=variant).value
    assert np.linalg.norm(short - truth) > 1e-3


def test_start1_omits_the_q0_term_and_keeps_a_bias():
    """The UniBiO code's sum from j = 1 tends to H^{-1}v_0 - alpha v_0 (docs/unibio.rst §3.5)."""
    P = quad(5)
    x = np.linspace(-1, 1, 5)
    ys = P.y_star(x)
    alpha = 0.5
    est = neumann_hypergradient(exact_oracle(P), x, ys, 600, alpha=alpha, start=1)
    v0 = P.grad_y_f(x, ys)
    np.testing.assert_allclose(est.value, P.grad_phi(x) + alpha * P.jvp_xy_g(x, ys, v0),
                               atol=1e-12)


def test_generalized_neumann_and_exact_solve_on_a_non_symmetric_H():
    P = NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=3)
    x = np.array([0.7, -0.4])
    ys = P.y_star(x)
    H = P.generalized_hessian(x, ys)
    assert not np.allclose(H, H.T)
    truth = P.grad_phi(x)
    ex = linear_system_exact(P, x, ys, variant="generalized")
    np.testing.assert_allclose(ex.value, truth, atol=1e-10)
    # a Neumann step below 2/spectral radius of H^T converges (eigenvalues of H are real >= 1)
    alpha = 1.0 / np.max(np.abs(np.linalg.eigvals(H)))
    est = neumann_hypergradient(exact_oracle(P), x, ys, 3000, alpha=alpha,
                                variant="generalized")
    np.testing.assert_allclose(est.value, truth, atol=1e-9)


def test_linear_system_solvers_reach_the_closed_form():
    P = quad(6)
    x = np.linspace(-1, 1, 6)
    ys = P.y_star(x)
    truth = P.grad_phi(x)
    sgd = linear_system_sgd(exact_oracle(P), x, ys, 500, 1.0)
    np.testing.assert_allclose(sgd.value, truth, atol=1e-12)
    cg = linear_system_cg(P, x, ys, 50, tol=1e-14)
    np.testing.assert_allclose(cg.value, truth, atol=1e-12)
    assert cg.counts.hvp <= 1 + 6 + 1  # CG: at most d iterations in exact arithmetic (+ slack)
    ex = linear_system_exact(P, x, ys)
    np.testing.assert_allclose(ex.value, truth, atol=1e-12)
    np.testing.assert_allclose(ex.z, P.solve_hessian_yy(x, ys, P.grad_y_f(x, ys)), atol=1e-12)


def test_sign_convention_boundary_and_projection():
    P = quad(4)
    x, y = np.full(4, 0.3), np.full(4, -0.2)
    z0 = np.array([0.5, -1.0, 2.0, 0.1])
    a = linear_system_sgd(exact_oracle(P), x, y, 7, 0.5, z0=z0)
    b = linear_system_sgd(exact_oracle(P), x, y, 7, 0.5, z0=z_to_soba(z0), convention="-z")
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(soba_to_z(b.z), a.z)
    assert isinstance(a, LinearSystemEstimate)
    # projection onto the ball: every iterate (hence the output) has norm <= r
    r = 0.05
    c = linear_system_sgd(exact_oracle(P), x, y, 20, 0.5, z0=z0, radius=r)
    assert np.linalg.norm(c.z) <= r * (1 + 1e-12)
    zz = np.array([[3.0, 4.0], [0.1, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(project_ball(zz, 1.0), [[0.6, 0.8], [0.1, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("estimator", ["neumann", "ls_sgd", "fd"])
def test_generalized_equals_classical_for_p2(estimator):
    """p = 2: D = I, so H = ∇²_yy g and f_u = ∇_y f; with the same seed and the same noise
    levels both variants draw identical numbers and agree to rounding."""
    P = NonSeparableUniformlyConvex(d_y=4, d_x=3, p=2.0, seed=2)
    x = named_stream(1, "p2").standard_normal((5, 3))
    y = named_stream(2, "p2").standard_normal((5, 4))
    out = []
    for variant in ("classical", "generalized"):
        o = GaussianOracle(P, NoiseConfig.uniform(0.2), np.random.default_rng(9))
        if estimator == "neumann":
            out.append(neumann_hypergradient(o, x, y, 6, alpha=0.3, variant=variant,
                                             truncation="randomized").value)
        elif estimator == "ls_sgd":
            out.append(linear_system_sgd(o, x, y, 6, 0.3, variant=variant).value)
        else:  # the exact generalized formula vs Ghadimi-Wang
            out.append(linear_system_exact(P, x, y, variant=variant).value)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-14)


# ---- unbiasedness (statistical) --------------------------------------------------------------
@pytest.mark.parametrize("truncation, variant, start", [
    ("randomized", "classical", 0), ("randomized", "generalized", 0), ("fixed", "classical", 0),
    ("fixed", "classical", 1)])
def test_neumann_mean_equals_exact_expectation(truncation, variant, start):
    """E ĝ = ∇_x f - ∇²_xy g [alpha Σ_{q<Q} (I - alpha H^T)^q] v_0 (randomized) or the
    deterministic sum (fixed): R = 40000 noisy replicas, every coordinate within 4 SE.
    Power: the untruncated target ∇̄f differs from E ĝ by > 10 SE and is rejected."""
    P = StronglyConvexQuadratic(d_x=3, d_y=4, mu=0.2, L=1.0, seed=5)
    R, Q, alpha = 40000, 4, 1.0
    x, y = np.full(3, 0.4), np.full(4, -0.3)
    o = GaussianOracle(P, NoiseConfig.uniform(0.5), named_stream(7, f"U6/{truncation}{start}"))
    est = neumann_hypergradient(o, np.broadcast_to(x, (R, 3)), np.broadcast_to(y, (R, 4)), Q,
                                alpha=alpha, truncation=truncation, variant=variant,
                                start=start)
    mean = est.value.mean(axis=0)
    se = est.value.std(axis=0, ddof=1) / np.sqrt(R)
    exact = neumann_expectation_exact(P, x, y, Q, alpha, truncation=truncation,
                                      variant=variant, start=start)
    assert np.all(np.abs(mean - exact) <= Z * se), (mean, exact, se)
    target = generalized_hypergradient(P, x, y)
    assert np.max(np.abs(mean - target) / se) > 10.0


# ---- claim U6: exact bias against the bound ------------------------------------------------------
def test_u6_bias_bound_geometric_and_sharp():
    Qs = np.arange(51)
    # random quadratic: mu, C, l_g1 from the problem; C_f = ||f_u(x, y)|| at the points
    P = StronglyConvexQuadratic(d_x=8, d_y=8, mu=0.1, L=1.0, seed=4)
    rng = named_stream(3, "U6")
    x = rng.standard_normal((6, 8))
    y = P.y_star(x) + 0.2 * rng.standard_normal((6, 8))
    c = P.constants
    b = np.array([np.linalg.norm(neumann_bias_exact(P, x, y, Q, c.C), axis=-1) for Q in Qs])
    C_f = np.linalg.norm(P.f_u(x, y), axis=-1)
    bound = (c.l_g1 * C_f / c.mu) * (1 - c.mu / c.C) ** Qs[:, None]
    assert np.all(b <= bound * (1 + 1e-10))
    # geometric: successive ratios approach (1 - lambda_min/C) = 0.9 from below
    ratio = b[31:] / b[30:-1]
    assert np.all(ratio <= 0.9 * (1 + 1e-3)) and np.all(ratio > 0.85)
    # sharp instance: bias = bound for every Q; 0.9 x bound and the rate (1-mu/C)^{Q+1} fail
    S = sharp_instance(4)
    xs, ys = np.full(4, 0.2), np.full(4, -0.1)
    H = S.generalized_hessian(xs, ys)
    mu, C = np.linalg.eigvalsh(H)[[0, -1]]
    bs = np.array([np.linalg.norm(neumann_bias_exact(S, xs, ys, Q, C)) for Q in Qs])
    bound_s = (1.0 / mu) * (1 - mu / C) ** Qs
    np.testing.assert_allclose(bs, bound_s, rtol=1e-6, atol=1e-14)
    assert np.all(bs <= bound_s * (1 + 1e-10) + 1e-14)
    assert np.any(bs > 0.9 * bound_s)  # control: a smaller constant is violated
    assert np.any(bs > bound_s * (1 - mu / C))  # control: a faster rate is violated


def test_u6_example3_H_identity():
    """H = 1: with C = 1 (alpha = 1) the series is exact after one term (bias 0 for Q >= 1);
    with C = 2 the bias is cos(x) f_u 2^{-Q} exactly."""
    P = UniBiOExample3(4)
    x, y = np.array([0.8]), np.array([0.5])
    assert np.linalg.norm(neumann_bias_exact(P, x, y, 1, 1.0)) == 0.0
    fu = P.f_u(x, y)[0]
    for Q in (0, 3, 10):
        np.testing.assert_allclose(np.abs(neumann_bias_exact(P, x, y, Q, 2.0)),
                                   abs(np.cos(0.8) * fu) * 0.5**Q, rtol=1e-12)


# ---- claim F1: finite differences ---------------------------------------------------------------
def _fd_err(P, kind, x, y, v, delta, backend="numpy"):
    name = "fd_hvp" if kind == "hvp" else "fd_jvp"
    approx = implementation("estimator", name, backend)(exact_oracle(P), x, y, v, delta).value
    exact = P.hvp_yy_g(x, y, v) if kind == "hvp" else P.jvp_xy_g(x, y, v)
    return np.linalg.norm(approx - exact, axis=-1)


@pytest.mark.parametrize("d", [1, 10, 1000])
def test_f1_bound_sharp_and_dimension_free(d):
    """g = (1/3)Σ|y|³ (Hessian 2-Lipschitz): error <= (L/2)δ||v||² at random points, with
    equality at y = 0, v ∥ e_1, in every dimension; the constant L/4 is violated there.
    The same for the JVP of CubicCross (∇²_xy g = diag(L|y_i|))."""
    L = 2.0
    rng = named_stream(d, "F1")
    for P, kind in ((SeparableUniformlyConvex(d=d, p=3.0), "hvp"), (CubicCross(d, L), "jvp")):
        x = rng.uniform(-0.4, 0.4, (20, d))
        y = rng.standard_normal((20, d)) * 10.0 ** rng.uniform(-3, 0, (20, 1))
        v = rng.standard_normal((20, d))
        for delta in (1e-3, 1e-1, 1.0):
            err = _fd_err(P, kind, x, y, v, delta)
            assert np.all(err <= 0.5 * L * delta * np.sum(v**2, -1) * (1 + 1e-9) + 1e-12)
        e1 = np.zeros(d)
        e1[0] = 1.5
        for delta in (1e-3, 0.3):
            err = _fd_err(P, kind, np.zeros(d), np.zeros(d), e1, delta)
            np.testing.assert_allclose(err, 0.5 * L * delta * 1.5**2, rtol=1e-12)
            assert err > 0.25 * L * delta * 1.5**2  # control: L/4 fails


@pytest.mark.parametrize("d", [1, 10, 1000])
def test_f1_exact_for_quadratic_g(d):
    """Quadratic g: the dense quadratic (d <= 10; its constructor is slow at d = 1000) and
    g = ½||y||² - <sin x, y> (every d). Also the JVP of the non-quadratic non-separable
    problem (p = 4), whose ∇_x g = -By is linear in y."""
    rng = named_stream(d, "F1/quad")
    x, y, v = (rng.standard_normal((4, d)) for _ in range(3))
    problems = [SeparableUniformlyConvex(d=d, p=2.0)]
    if d <= 10:
        problems.append(StronglyConvexQuadratic(d_x=d, d_y=d, seed=2))
    cases = [(P, k) for P in problems for k in ("hvp", "jvp")]
    if d <= 10:
        cases.append((NonSeparableUniformlyConvex(d_y=d, p=4.0), "jvp"))
    for P, kind in cases:
        for delta in (1e-4, 1e-2, 1.0):
            err = _fd_err(P, kind, x, y, v, delta)
            g = np.linalg.norm(P.grad_y_g(x, y), axis=-1) + np.linalg.norm(
                P.grad_x_g(x, y), axis=-1) + delta * np.linalg.norm(v, axis=-1)
            assert np.all(err <= 64 * EPS * (g / delta + np.linalg.norm(v, axis=-1)))


@pytest.mark.parametrize("p", [4.0, 5.5])
@pytest.mark.parametrize("d", [1, 10, 1000])
def test_f1_second_order_slope_on_smooth_g(p, d):
    P = SeparableUniformlyConvex(d=d, p=p)
    rng = named_stream(int(10 * p) + d, "F1/slope")
    x = rng.uniform(-1, 1, d)
    y = np.sign(rng.standard_normal(d)) * rng.uniform(0.5, 1.5, d)
    v = rng.standard_normal(d)
    deltas = np.logspace(-3, -1, 7)
    errs = np.array([_fd_err(P, "hvp", x, y, v, dl) for dl in deltas])
    slope = np.polyfit(np.log(deltas), np.log(errs), 1)[0]
    assert abs(slope - 2.0) <= 0.1
    if p == 4.0:  # ∇g cubic: the error is exactly δ² ||v^{∘3}||
        np.testing.assert_allclose(errs, deltas**2 * np.linalg.norm(v**3), rtol=1e-6,
                                   atol=1e-11)  # rounding ~ eps ||∇g|| / δ


def test_fd_same_sample_cancels_noise():
    """Both gradient calls share one sample (docs/fdehbo.rst §2, §10.3 item 5): the noisy estimate
    equals the noise-free one to rounding; independent samples would add ~std/δ."""
    P = SeparableUniformlyConvex(d=5, p=4.0)
    x, y, v = np.full(5, 0.3), np.linspace(-1, 1, 5), np.ones(5)
    delta = 1e-3
    clean = fd.fd_hvp(exact_oracle(P), x, y, v, delta).value
    for backend in ("numpy", "numba"):
        o = GaussianOracle(P, NoiseConfig(grad_y_g=1.0), np.random.default_rng(4))
        noisy = implementation("estimator", "fd_hvp", backend)(o, x, y, v, delta).value
        assert np.linalg.norm(noisy - clean) <= 1e-9
    o = GaussianOracle(P, NoiseConfig(grad_y_g=1.0), np.random.default_rng(4))
    indep = (o.grad_y_g(x, y + delta * v) - o.grad_y_g(x, y - delta * v)) / (2 * delta)
    assert np.linalg.norm(indep - clean) > 100.0


# ---- counts (claim X3) -------------------------------------------------------------------------
def test_counts_match_paper_and_oracle():
    P = quad(3)
    x, y = np.zeros((4, 3)), np.full((4, 3), 0.1)
    Q = 5
    for variant, v0, prod in (("classical", "grad_y_f", "hvp"), ("generalized", "f_u",
                                                                 "gen_hvp")):
        for trunc in ("fixed", "randomized"):
            o = GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(1))
            e = neumann_hypergradient(o, x, y, Q, truncation=trunc, variant=variant)
            c = e.counts
            # docs/unibio.rst §4.2: 1 ∇_x F, 1 F_u, Q (generalized) HVPs, 1 JVP
            assert (c.grad_x_f, getattr(c, v0), getattr(c, prod), c.jvp) == (1, 1, Q, 1)
            assert c.samples == Q + 3 and c.total_calls == Q + 3
            if trunc == "fixed":
                assert o.counts == c
            else:  # realized: max over replicas of q̂ <= Q - 1 products on the batch
                assert getattr(o.counts, prod) <= Q - 1
    o = GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(1))
    e = linear_system_sgd(o, x, y, 7, 0.2, fresh_rhs=True)
    assert (e.counts.grad_x_f, e.counts.grad_y_f, e.counts.hvp, e.counts.jvp) == (1, 7, 7, 1)
    assert o.counts == e.counts
    o = GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(1))
    e = linear_system_sgd(o, x, y, 7, 0.2)
    assert (e.counts.grad_y_f, e.counts.hvp) == (1, 7) and o.counts == e.counts
    v = np.ones(3)
    for name, expected in (("fd_hvp", {"grad_y_g": 2, "samples": 1}),
                           ("fd_jvp", {"grad_x_g": 2, "samples": 1}),
                           ("fd_hypergradient", {"grad_x_f": 1, "grad_x_g": 2, "samples": 2}),
                           ("fd_ls_gradient", {"grad_y_f": 1, "grad_y_g": 2, "samples": 2})):
        o = GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(1))
        e = getattr(fd, name)(o, x, y, v, 1e-2)
        assert {k: n for k, n in e.counts.as_dict().items() if n} == expected
        assert o.counts == e.counts


# ---- claim X4: NumPy ↔ Numba parity --------------------------------------------------------------
def parity_problems():
    return {1: UniBiOExample3(4),
            3: NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=1),
            100: StronglyConvexQuadratic(d_x=100, d_y=100, mu=0.2, L=1.0, seed=0)}


def _inputs(P, R, seed=3):
    rng = np.random.default_rng(seed)
    lead = () if R is None else (R,)
    x = rng.uniform(-1, 1, lead + (P.d_x,))
    y = rng.uniform(0.2, 1.0, lead + (P.d_y,)) * rng.choice([-1, 1], lead + (P.d_y,))
    v = rng.standard_normal(lead + (P.d_y,))
    return x, y, v


def _assert_parity(f_ref, f_other, P, *args, **kw):
    """f_ref(oracle, *args, **kw) and f_other(...) on fresh oracles with the same seed:
    values to 1e-12 relative, the same counts, the Generator advanced identically."""
    out = []
    for f in (f_ref, f_other):
        o = GaussianOracle(P, NoiseConfig.uniform(0.3), np.random.default_rng(11))
        est = f(o, *args, **kw)
        out.append((est, o.counts.copy(), o.rng.standard_normal()))
    (a, ca, na), (b, cb, nb) = out
    assert a.value.shape == b.value.shape
    scale = max(np.max(np.abs(a.value)), 1e-300)
    assert np.max(np.abs(a.value - b.value)) <= PARITY_RTOL * scale
    assert a.counts == b.counts and ca == cb
    assert na == nb  # the Generator advanced identically
    if isinstance(a, LinearSystemEstimate) and a.z is not None:
        assert np.max(np.abs(a.z - b.z)) <= PARITY_RTOL * max(np.max(np.abs(a.z)), 1e-300)


NEUMANN_CASES = [("fixed", "classical", 0), ("fixed", "generalized", 1),
                 ("randomized", "classical", 0), ("randomized", "generalized", 0)]


@pytest.mark.numba
@pytest.mark.parametrize("d", [1, 3, 100])
@pytest.mark.parametrize("R", [1, 5])
def test_x4_parity_neumann(d, R):
    P = parity_problems()[d]
    x, y, _ = _inputs(P, R)
    for trunc, variant, start in NEUMANN_CASES:
        kw = dict(alpha=0.2, truncation=trunc, variant=variant, start=start)
        _assert_parity(neumann_hypergradient, neumann_hypergradient_numba, P, x, y, 6, **kw)


@pytest.mark.numba
@pytest.mark.parametrize("d", [1, 3, 100])
@pytest.mark.parametrize("R", [1, 5])
def test_x4_parity_linear_system(d, R):
    P = parity_problems()[d]
    x, y, v = _inputs(P, R)
    for variant, fresh, radius in (("classical", False, None), ("generalized", True, 0.7),
                                   ("classical", True, 0.3)):
        kw = dict(z0=v, radius=radius, variant=variant, fresh_rhs=fresh, convention="-z")
        _assert_parity(linear_system_sgd, linear_system_sgd_numba, P, x, y, 5, 0.1, **kw)
    # CG needs a symmetric positive definite ∇²_yy g: all three problems at y_i != 0
    for iters, tol in ((3, 0.0), (200, 1e-10)):
        a = linear_system_cg(P, x, y, iters, tol=tol)
        b = linear_system_cg_numba(P, x, y, iters, tol=tol)
        assert np.max(np.abs(a.value - b.value)) <= PARITY_RTOL * np.max(np.abs(a.value))
        assert a.counts == b.counts


@pytest.mark.numba
@pytest.mark.parametrize("d", [1, 3, 100])
@pytest.mark.parametrize("R", [1, 5])
def test_x4_parity_finite_difference(d, R):
    P = parity_problems()[d]
    x, y, v = _inputs(P, R)
    for name in ("fd_hvp", "fd_jvp", "fd_hypergradient", "fd_ls_gradient"):
        _assert_parity(getattr(fd, name), getattr(fdn, name + "_numba"), P, x, y, v, 1e-2)


@pytest.mark.numba
def test_x4_parity_unbatched_structured_and_parallel_neumann():
    """Unbatched inputs, the Householder-structured quadratic, the separable family, and a
    batch large enough for the parallel (prange) kernel variant."""
    cases = [(StronglyConvexQuadratic(d_x=30, d_y=20, seed=4, structured=True), None),
             (SeparableUniformlyConvex(d=3, p=3.5), None),
             (StronglyConvexQuadratic(d_x=64, d_y=64, seed=4), PARALLEL_R)]
    kw = dict(alpha=0.3, truncation="randomized", variant="generalized")
    for P, R in cases:
        x, y, v = _inputs(P, R)
        _assert_parity(neumann_hypergradient, neumann_hypergradient_numba, P, x, y, 5, **kw)
        if R is None:
            _assert_parity(linear_system_sgd, linear_system_sgd_numba, P, x, y, 4, 0.2,
                           radius=1.0)
            _assert_parity(fd.fd_hypergradient, fdn.fd_hypergradient_numba, P, x, y, v, 1e-2)


@pytest.mark.numba
def test_x4_parity_fast_primitives():
    """The primitives rewritten for speed (refbilevel/backends/numba_families.py): |y|^e as
    products for the integer exponents (p = 4: e = 2, 3; p = 3: e = 1, 2), BO-REP's P1 and
    P2 without temporary vectors (P1's JVP, P2's ∇_y g, reached by FD's difference of ∇_y g
    and ∇_x g), each through an estimator against the NumPy reference."""
    for P in (SeparableUniformlyConvex(d=4, p=4.0), SeparableUniformlyConvex(d=4, p=3.0),
              RelaxedSmoothP1(d_x=3, d_y=4), RelaxedSmoothP2(d_x=3, d_y=4)):
        x, y, v = _inputs(P, 3)
        _assert_parity(neumann_hypergradient, neumann_hypergradient_numba, P, x, y, 5,
                       alpha=0.1)
        _assert_parity(fd.fd_hypergradient, fdn.fd_hypergradient_numba, P, x, y, v, 1e-2)
        _assert_parity(fd.fd_hvp, fdn.fd_hvp_numba, P, x, y, v, 1e-2)


@pytest.mark.numba
@pytest.mark.slow  # compiles three more parallel kernels (~30 s cold)
def test_x4_parity_parallel_linear_system_and_finite_difference():
    P = StronglyConvexQuadratic(d_x=64, d_y=64, seed=4)
    x, y, v = _inputs(P, PARALLEL_R)
    _assert_parity(linear_system_sgd, linear_system_sgd_numba, P, x, y, 4, 0.2, radius=1.0,
                   fresh_rhs=True)
    _assert_parity(fd.fd_ls_gradient, fdn.fd_ls_gradient_numba, P, x, y, v, 1e-2)
    a, b = linear_system_cg(P, x, y, 5), linear_system_cg_numba(P, x, y, 5)
    assert np.max(np.abs(a.value - b.value)) <= PARITY_RTOL * np.max(np.abs(a.value))
    assert a.counts == b.counts


@pytest.mark.numba
def test_numba_unsupported_problem_is_reported():
    o = exact_oracle(CubicCross(3))
    with pytest.raises(NotImplementedOnBackendError, match="CubicCross"):
        fdn.fd_jvp_numba(o, np.zeros(3), np.zeros(3), np.ones(3), 1e-2)


# ---- the device code path (CuPy) ----------------------------------------------------------------
@pytest.mark.parametrize("xp", [np, FAKE_DEVICE], ids=["numpy", "moved-problem"])
def test_device_path_on_numpy_matches_reference(xp):
    """The CuPy modules run the reference's algorithm over a DeviceOracle on problem.on(xp);
    with host noise they must reproduce the NumPy reference (exercised without a GPU: xp =
    numpy, and FAKE_DEVICE, NumPy under another identity, which takes the moved-problem path
    of problem.on(cupy))."""
    from refbilevel.estimators.finite_difference_cupy import fd_device
    from refbilevel.estimators.linear_system_cupy import (
        linear_system_cg_device,
        linear_system_sgd_device,
    )
    from refbilevel.estimators.neumann_cupy import neumann_device

    for P in (UniBiOExample3(4), NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=1),
              StronglyConvexQuadratic(d_x=6, d_y=5, seed=2),
              StronglyConvexQuadratic(d_x=6, d_y=5, seed=2, structured=True),
              SeparableUniformlyConvex(d=3, p=3.5), UniformlyConvexBump(d=3, p=4.0)):
        x, y, v = _inputs(P, 4)
        kw = dict(alpha=0.2, truncation="randomized", variant="generalized")
        _assert_parity(neumann_hypergradient, partial(neumann_device, xp=xp), P, x, y, 5, **kw)
        _assert_parity(linear_system_sgd, partial(linear_system_sgd_device, xp=xp), P,
                       x, y, 4, 0.2, z0=v, radius=1.0)
        for name in ("fd_hvp", "fd_jvp", "fd_hypergradient", "fd_ls_gradient"):
            _assert_parity(getattr(fd, name), partial(fd_device, name, xp=xp), P,
                           x, y, v, 1e-2)
        if P.p == 2:
            a, b = linear_system_cg(P, x, y, 4), linear_system_cg_device(P, x, y, 4, xp=xp)
            assert np.max(np.abs(a.value - b.value)) <= PARITY_RTOL * np.max(np.abs(a.value))


def test_device_noise_mode_is_unbiased():
    from refbilevel.estimators.neumann_cupy import neumann_device

    P = UniBiOExample3(2)
    R = 40000
    o = GaussianOracle(P, NoiseConfig.uniform(0.3), named_stream(5, "device-noise"))
    est = neumann_device(o, np.zeros((R, 1)), np.zeros((R, 1)), 5, alpha=0.5,
                         truncation="randomized", variant="classical", noise="device", xp=np)
    se = est.value.std(ddof=1) / np.sqrt(R)
    # ĝ = -(-cos 0) z, E z = 1 - 0.5^5 (docs/unibio.rst §6.1: Neumann with H = 1)
    assert abs(est.value.mean() - (1 - 0.5**5)) <= Z * se


@pytest.mark.cupy
@pytest.mark.skipif(not backend_status("cupy")[0], reason=backend_status("cupy")[1])
def test_x4_cupy_parity_host_noise():
    import cupy

    P = StronglyConvexQuadratic(d_x=50, d_y=40, seed=2)
    x, y, v = _inputs(P, 8)
    for name in ("neumann", "linear_system_sgd", "fd_hypergradient"):
        outs = []
        for backend in ("numpy", "cupy"):
            o = GaussianOracle(P, NoiseConfig.uniform(0.3), np.random.default_rng(11))
            f = implementation("estimator", name, backend)
            if name == "neumann":
                e = f(o, x, y, 5, truncation="randomized")
            elif name == "linear_system_sgd":
                e = f(o, x, y, 5, 0.2)
            else:
                e = f(o, x, y, v, 1e-2)
            outs.append(cupy.asnumpy(e.value) if backend == "cupy" else e.value)
        np.testing.assert_allclose(outs[1], outs[0], rtol=1e-10, atol=1e-12)
