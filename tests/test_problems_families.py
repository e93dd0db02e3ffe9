"""Tests of the closed-form problem families: quadratic, finite-sum quadratic (docs/baselines.rst
§10.2), BO-REP's relaxed-smooth P1/P2 (docs/borep.rst §8) and the lower-level contractions of
docs/sid_bsgm.rst §14 (claim X1 of docs/checks.rst for these problems, plus each family's own
facts).

Finite-difference tolerances. A central difference with step h has error
h²/6·|third derivative| (truncation) + ~eps·|value|/h (rounding). With h = 1e-5 that is
≈ 2e-11·|f'''| + 2e-11·|f|, so rtol = 1e-6 relative to the size of the quantities involved
leaves a margin of about 10^4 while still catching any wrong term (those are O(1) relative).
For quadratics the truncation term vanishes and only rounding remains. Exact identities
(adjoint/dot-product tests, symmetry, closed form vs a second closed form) are held to
1e-12 relative, i.e. a few hundred ulps of accumulated rounding for d <= 100.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from refbilevel.hypergradient import generalized_hypergradient, ghadimi_wang_hypergradient
from refbilevel.problems.contraction import (
    FixedPointProblem,
    LinearContraction,
    RidgeContraction,
    gd_map_contraction,
    golden_instance,
)
from refbilevel.problems.derivative_check import fd_directional
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic, batched_cg
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2

H_FD = 1e-5
RTOL_FD = 1e-6
RTOL_EXACT = 1e-12


def _fd(fun, z, u, h=H_FD):
    """Central difference of fun along u at z (the library's, claim X1)."""
    return fd_directional(fun, z, u, h)


def _close(a, b, rtol, scale=None):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0), 1.0) \
        if scale is None else scale
    err = float(np.max(np.abs(a - b), initial=0.0))
    assert err <= rtol * scale, f"error {err:.3g} > {rtol:g} × scale {scale:.3g}"


# ---- the bilevel problems under test ----------------------------------------------------------
DIMS = (1, 2, 10, 100)
BILEVEL = {
    **{f"quadratic-dense-d{d}": (lambda d=d: StronglyConvexQuadratic(d, seed=d)) for d in DIMS},
    **{f"quadratic-householder-d{d}": (lambda d=d: StronglyConvexQuadratic(
        d, seed=d, structured=True)) for d in DIMS},
    "quadratic-rect-3x7": lambda: StronglyConvexQuadratic(3, 7, seed=1, spectrum_kind="log"),
    "quadratic-rect-7x3": lambda: StronglyConvexQuadratic(7, 3, seed=2, structured=True),
    **{f"finite-sum-d{d}": (lambda d=d: FiniteSumQuadratic(
        n_inner=128, n_outer=96, d_inner=d, d_outer=d, seed=d)) for d in DIMS},
    "finite-sum-ridge-n8-d20x5": lambda: FiniteSumQuadratic(8, 8, 20, 5, seed=3, reg=0.05),
    "borep-p1": lambda: RelaxedSmoothP1(),
    "borep-p1-sine": lambda: RelaxedSmoothP1("sine"),
    "borep-p2": lambda: RelaxedSmoothP2(),
    **{f"borep-p1-d{d}": (lambda d=d: RelaxedSmoothP1(d_x=d, d_y=d, seed=d)) for d in DIMS},
    **{f"borep-p2-d{d}": (lambda d=d: RelaxedSmoothP2(d_x=d, d_y=d, seed=d)) for d in DIMS},
}
_CACHE: dict = {}


@pytest.fixture(params=sorted(BILEVEL), scope="module")
def problem(request):
    if request.param not in _CACHE:
        _CACHE[request.param] = BILEVEL[request.param]()
    return _CACHE[request.param]


def _points(problem, seed=0, R=2):
    rng = np.random.default_rng(seed)
    # moderate x keeps cosh/quartic third derivatives O(10), inside the FD budget
    x = 0.5 * rng.standard_normal((R, problem.d_x))
    y = rng.standard_normal((R, problem.d_y))
    return x, y, rng


def test_first_derivatives_match_finite_differences(problem):
    x, y, rng = _points(problem)
    ux, uy = rng.standard_normal(problem.d_x), rng.standard_normal(problem.d_y)
    for val, gx, gy in ((problem.f, problem.grad_x_f, problem.grad_y_f),
                        (problem.g, problem.grad_x_g, problem.grad_y_g)):
        scale = 1.0 + np.abs(val(x, y)).max()
        _close(gx(x, y) @ ux, _fd(lambda z, val=val: val(z, y), x, ux), RTOL_FD, scale)
        _close(gy(x, y) @ uy, _fd(lambda z, val=val: val(x, z), y, uy), RTOL_FD, scale)


def test_second_order_products_match_finite_differences(problem):
    x, y, rng = _points(problem, seed=1)
    v, w = rng.standard_normal(problem.d_y), rng.standard_normal(problem.d_x)
    hv = problem.hvp_yy_g(x, y, v)
    _close(hv, _fd(lambda z: problem.grad_y_g(x, z), y, v), RTOL_FD)
    # ∇²_xy g v = d/dt ∇_x g(x, y + t v);  (∇²_xy g)ᵀ w = d/dt ∇_y g(x + t w, y)
    _close(problem.jvp_xy_g(x, y, v), _fd(lambda z: problem.grad_x_g(x, z), y, v), RTOL_FD)
    _close(problem.jvp_yx_g(x, y, w), _fd(lambda z: problem.grad_y_g(z, y), x, w), RTOL_FD)
    # p = 2: generalized derivatives are the classical ones (docs/unibio.rst §1.5)
    _close(problem.gen_hvp(x, y, v), hv, RTOL_EXACT)
    _close(problem.gen_hvp_T(x, y, v), hv, RTOL_EXACT)
    _close(problem.f_u(x, y), problem.grad_y_f(x, y), RTOL_EXACT)


def test_adjoint_and_symmetry(problem):
    x, y, rng = _points(problem, seed=2)
    v, u = rng.standard_normal((2, problem.d_y)), rng.standard_normal((2, problem.d_y))
    w = rng.standard_normal((2, problem.d_x))
    Jv, JTw = problem.jvp_xy_g(x, y, v), problem.jvp_yx_g(x, y, w)
    lhs, rhs = np.sum(Jv * w, -1), np.sum(v * JTw, -1)
    scale = np.linalg.norm(Jv) * np.linalg.norm(w) + np.linalg.norm(JTw) * np.linalg.norm(v)
    _close(lhs, rhs, RTOL_EXACT, max(scale, 1e-300))
    Hv, Hu = problem.hvp_yy_g(x, y, v), problem.hvp_yy_g(x, y, u)
    scale = np.linalg.norm(Hv) * np.linalg.norm(u) + np.linalg.norm(Hu) * np.linalg.norm(v)
    _close(np.sum(u * Hv, -1), np.sum(v * Hu, -1), RTOL_EXACT, scale)


def test_lower_level_solution_and_hypergradient(problem):
    x, _, rng = _points(problem, seed=3)
    ys = problem.y_star(x)
    scale = np.linalg.norm(problem.hvp_yy_g(x, ys, ys)) + np.linalg.norm(
        problem.grad_y_g(x, np.zeros(problem.d_y)))
    _close(problem.grad_y_g(x, ys), 0.0, 1e-11, scale)
    gp = problem.grad_phi(x)
    _close(gp, ghadimi_wang_hypergradient(problem, x, ys), 1e-10)
    if problem.d_y <= 100:
        _close(gp, generalized_hypergradient(problem, x, ys), 1e-10)
    u = rng.standard_normal(problem.d_x)
    _close(gp @ u, _fd(problem.phi, x, u), RTOL_FD, 1.0 + np.abs(problem.phi(x)).max())
    _close(problem.phi(x), problem.f(x, ys), RTOL_EXACT)
    r = rng.standard_normal(problem.d_y)
    _close(problem.hvp_yy_g(x, ys, problem.solve_hessian_yy(x, ys, r)), r, 1e-10)


def test_replica_broadcasting(problem):
    x, y, rng = _points(problem, seed=4, R=3)
    v = rng.standard_normal(problem.d_y)
    assert problem.hvp_yy_g(x, y[0], v).shape == (3, problem.d_y)
    assert problem.jvp_xy_g(x, y[0], v).shape == (3, problem.d_x)
    assert problem.grad_y_f(x, y[0]).shape == (3, problem.d_y)
    assert problem.grad_x_f(x[0], y).shape == (3, problem.d_x)
    assert problem.f(x, y[0]).shape == (3,)
    _close(problem.grad_phi(x)[1], problem.grad_phi(x[1]), RTOL_EXACT)
    _close(problem.y_star(x)[2], problem.y_star(x[2]), 1e-11)


def test_hessian_phi_matches_finite_differences(problem):
    if not hasattr(problem, "hessian_phi"):
        pytest.skip("no closed-form ∇²phi")
    if isinstance(problem, FiniteSumQuadratic):
        hess = problem.hessian_phi()
        x = _points(problem, seed=5)[0]
    else:
        x = _points(problem, seed=5)[0]
        hess = problem.hessian_phi(x)
    u = np.random.default_rng(6).standard_normal(problem.d_x)
    _close(hess @ u, _fd(problem.grad_phi, x, u), RTOL_FD)
    _close(hess, np.swapaxes(hess, -1, -2), RTOL_EXACT)


# ---- StronglyConvexQuadratic -------------------------------------------------------------------
@pytest.mark.parametrize("structured", [False, True])
def test_quadratic_spectra_and_constants(structured):
    P = StronglyConvexQuadratic(12, 9, mu=0.2, L=3.0, seed=5, k_range=(0.3, 1.5),
                                structured=structured)
    ev = np.linalg.eigvalsh(P.dense_H())
    _close(ev, np.linspace(0.2, 3.0, 9), RTOL_EXACT)
    _close(np.linalg.svd(P.dense_K(), compute_uv=False), np.linspace(1.5, 0.3, 9), RTOL_EXACT)
    c = P.constants
    assert (c.mu, c.L_y, c.l_g1, c.p, c.L_phi1) == (0.2, 3.0, 1.5, 2.0, 0.0)
    assert c.l_p == pytest.approx(2 * 1.5 / 0.2)
    hess = P.hessian_phi(np.zeros(12))
    assert c.L_phi2 == pytest.approx(np.abs(np.linalg.eigvalsh(hess)).max(), rel=1e-12)
    _close(P.hessian_phi_vp(np.zeros(12), np.eye(12)), hess, 1e-11)
    # U4 at p = 2 and the sharp Lipschitz constant of y*
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 200, 12)) * 3
    dx = np.linalg.norm(x1 - x2, axis=-1)
    assert np.all(np.linalg.norm(P.grad_phi(x1) - P.grad_phi(x2), axis=-1)
                  <= c.L_phi2 * dx * (1 + 1e-10))
    assert np.all(np.linalg.norm(P.y_star(x1) - P.y_star(x2), axis=-1)
                  <= c.extra["l_p_exact"] * dx * (1 + 1e-10) + 1e-12)
    assert c.extra["l_p_exact"] <= c.l_p


def test_quadratic_structured_d10k_smoke():
    d = 10_000
    tracemalloc.start()
    try:
        P = StronglyConvexQuadratic(d, seed=0, structured=True)
        x = np.linspace(-1.0, 1.0, d)
        ys = P.y_star(x)
        res = np.linalg.norm(P.grad_y_g(x, ys))
        gp = P.grad_phi(x)
        u = np.random.default_rng(0).standard_normal(d)
        fd = _fd(P.phi, x, u, h=1e-4)
        r = np.ones(d)
        sol = P.solve_hessian_yy(x, ys, r)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6, f"peak memory {peak / 1e6:.1f} MB is not O(d)"  # a d×d matrix: 800 MB
    assert res <= 1e-11 * (np.linalg.norm(P.K.matvec(x) + P.h))
    _close(gp @ u, fd, 1e-7, 1.0 + abs(float(P.phi(x))))
    _close(P.hvp_yy_g(x, ys, sol), r, 1e-12)
    assert P.constants.L_phi2 == pytest.approx(0.1 + 1.0 / 0.1**2)  # the large-d bound


@pytest.mark.parametrize("kwargs, name", [
    ({"mu": 0.0}, "mu"), ({"mu": 1.0, "L": 0.5}, "L"), ({"d_x": 0}, "d_x"),
    ({"rho": -1.0}, "rho"), ({"k_range": (1.0, 0.5)}, "k_range"),
    ({"h": np.ones(3)}, "h"), ({"spectrum_kind": "cubic"}, "spectrum"),
])
def test_quadratic_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StronglyConvexQuadratic(**{"d_x": 4, **kwargs})


@settings(max_examples=25, deadline=None)
@given(d_x=st.integers(1, 12), d_y=st.integers(1, 12), seed=st.integers(0, 2**16),
       structured=st.booleans(), log_mu=st.floats(-3, 0))
def test_quadratic_property(d_x, d_y, seed, structured, log_mu):
    P = StronglyConvexQuadratic(d_x, d_y, mu=10**log_mu, L=2.0, seed=seed,
                                structured=structured)
    x = np.random.default_rng(seed).standard_normal(d_x)
    ys = P.y_star(x)
    _close(P.grad_y_g(x, ys), 0.0, 1e-12, np.linalg.norm(P.K.matvec(x) + P.h) / P.mu + 1)
    v, w = np.ones(d_y), np.arange(1.0, d_x + 1)
    _close(P.jvp_xy_g(x, ys, v) @ w, v @ P.jvp_yx_g(x, ys, w), RTOL_EXACT,
           np.linalg.norm(v) * np.linalg.norm(w) * P.constants.l_g1)
    assert np.linalg.eigvalsh(P.dense_H())[0] >= P.mu * (1 - 1e-12)


# ---- FiniteSumQuadratic ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsq():
    return FiniteSumQuadratic(n_inner=64, n_outer=48, d_inner=6, d_outer=4, seed=7)


def test_finite_sum_defaults_are_the_benchmarks():
    P = FiniteSumQuadratic()
    assert (P.n_inner, P.n_outer, P.d_inner, P.d_outer) == (1024, 1024, 100, 100)
    assert (P.mu_param, P.L_param, P.L_cross) == (0.1, 1.0, 0.1)
    _close(P.x0, -2.0 * np.ones(100), 0.0)
    _close(P.y0, np.zeros(100), 0.0)
    assert P.inner.Pyy.shape == (1024, 100) and P.inner.Cx.shape == (1024, 100)
    c = P.constants
    assert c.mu == pytest.approx(np.linalg.eigvalsh(P.inner.mean_yy())[0], rel=1e-12)
    assert c.l_g1 == pytest.approx(np.linalg.norm(P.inner.mean_cross(), 2), rel=1e-12)
    assert c.extra["lambda_min_hessian_phi"] > 0  # convex by construction, no seed retries
    # the previous instance: the x–x blocks have one zero population eigenvalue, so their
    # factors live in a hyperplane
    H = FiniteSumQuadratic(n_inner=64, n_outer=64, d_inner=5, d_outer=5, bases="householder")
    assert np.linalg.svd(H.inner.Pxx, compute_uv=False)[-1] < 1e-10


def test_finite_sum_batches(fsq):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 6))
    v, w = rng.standard_normal(6), rng.standard_normal(4)
    all_in, all_out = np.arange(64), np.arange(48)
    pairs = [
        (fsq.grad_y_g_batch(x, y, all_in), fsq.grad_y_g(x, y)),
        (fsq.grad_x_g_batch(x, y, all_in), fsq.grad_x_g(x, y)),
        (fsq.hvp_yy_g_batch(x, y, v, all_in), fsq.hvp_yy_g(x, y, v)),
        (fsq.jvp_xy_g_batch(x, y, v, all_in), fsq.jvp_xy_g(x, y, v)),
        (fsq.jvp_yx_g_batch(x, y, w, all_in), fsq.jvp_yx_g(x, y, w)),
        (fsq.grad_x_f_batch(x, y, all_out), fsq.grad_x_f(x, y)),
        (fsq.grad_y_f_batch(x, y, all_out), fsq.grad_y_f(x, y)),
        (fsq.g_batch(x, y, all_in), fsq.g(x, y)),
        (fsq.f_batch(x, y, all_out), fsq.f(x, y)),
    ]
    for batch, full in pairs:
        _close(batch, full, RTOL_EXACT)
    # a batch is the mean of its single-sample batches; per-replica batches (R, B)
    idx = rng.integers(0, 64, size=(3, 5))
    per_replica = fsq.grad_y_g_batch(x, y, idx)
    for r in range(3):
        singles = [fsq.grad_y_g_batch(x[r], y[r], [i]) for i in idx[r]]
        _close(per_replica[r], np.mean(singles, axis=0), RTOL_EXACT)
    # per-sample derivatives are derivatives of the per-sample values
    i = np.array([3, 3, 17])
    u = rng.standard_normal(6)
    _close(fsq.grad_y_g_batch(x, y, i) @ u, _fd(lambda z: fsq.g_batch(x, z, i), y, u), RTOL_FD)
    _close(fsq.hvp_yy_g_batch(x, y, u, i),
           _fd(lambda z: fsq.grad_y_g_batch(x, z, i), y, u), RTOL_FD)
    _close(fsq.jvp_xy_g_batch(x, y, u, i),
           _fd(lambda z: fsq.grad_x_g_batch(x, z, i), y, u), RTOL_FD)
    _close(fsq.grad_x_f_batch(x, y, i) @ w, _fd(lambda z: fsq.f_batch(z, y, i), x, w), RTOL_FD)


@pytest.mark.parametrize("idx", [[64], [-1], [0.5], []])
def test_finite_sum_rejects_bad_indices(fsq, idx):
    with pytest.raises(ValueError, match="idx"):
        fsq.grad_y_g_batch(np.zeros(4), np.zeros(6), np.asarray(idx))


def test_finite_sum_singular_needs_ridge():
    with pytest.raises(ValueError, match=r"n_inner must lie in \[20, inf\)"):
        FiniteSumQuadratic(n_inner=10, n_outer=10, d_inner=20, d_outer=3)
    P = FiniteSumQuadratic(n_inner=10, n_outer=10, d_inner=20, d_outer=3, reg=0.3)
    assert P.constants.mu == pytest.approx(0.3, rel=1e-9)
    with pytest.raises(ValueError, match="reg"):
        FiniteSumQuadratic(n_inner=10, d_inner=20, reg=-1.0)


def test_conjugate_gradient_matches_cholesky(fsq):
    rng = np.random.default_rng(1)
    b = rng.standard_normal((4, 6))
    y_cg = batched_cg(fsq.inner.hvp_yy, b)
    _close(y_cg, fsq.solve_hessian_yy(np.zeros(4), np.zeros(6), b), 1e-10)
    _close(batched_cg(fsq.inner.hvp_yy, np.zeros(6)), 0.0, 0.0)


def test_finite_sum_large_d_smoke():
    d = 10_000
    P = FiniteSumQuadratic(n_inner=32, n_outer=32, d_inner=d, d_outer=d, seed=0, reg=0.1)
    assert P.inner.Pyy.shape == (32, d)
    x = np.stack([P.x0, np.zeros(d)])
    ys = P.y_star(x)  # conjugate gradient (d > 2000)
    rhs = np.linalg.norm(P.grad_y_g(x, np.zeros(d)), axis=-1)
    assert np.all(np.linalg.norm(P.grad_y_g(x, ys), axis=-1) <= 1e-11 * rhs)
    assert P.constants.mu == pytest.approx(0.1)  # rank(Ā) <= 32 < d: λ_min = reg exactly
    u = np.random.default_rng(0).standard_normal(d)
    _close(P.grad_phi(x[0]) @ u, _fd(P.phi, x[0], u, h=1e-3), 1e-7,
           1.0 + abs(float(P.phi(x[0]))))


# ---- relaxed-smooth P1 / P2 (docs/borep.rst §8)
# -------------------------------------------------------
@pytest.mark.parametrize("make, phi_star, x_star, tol", [
    (lambda: RelaxedSmoothP1(), 14.7260868455,
     [-0.4684, -1.4389, -0.8765, -0.8676, -0.8306], 5e-11),
    (lambda: RelaxedSmoothP1("sine"), 1.866618,
     [1.1025, -0.4385, 0.7912, 0.6594, -0.4365], 5e-7),
    (lambda: RelaxedSmoothP2(), 3.1324348957, [-0.1140, -0.3821, 0.7047, 0.5674], 5e-11),
], ids=["p1", "p1-sine", "p2"])
def test_reference_optima(make, phi_star, x_star, tol):
    P = make()
    # the sine variant is non-convex: start where the spec's 30 GD runs ended
    x0 = np.asarray(x_star) if P.name == "borep-p1" and P.variant == "sine" else np.zeros(P.d_x)
    res = minimize(P.phi, x0, jac=P.grad_phi, method="BFGS", options={"gtol": 1e-10})
    assert np.linalg.norm(P.grad_phi(res.x)) < 1e-7
    assert abs(res.fun - phi_star) <= tol  # spec values are rounded to their last digit
    _close(res.x, x_star, 1.0, 5e-5)


def test_p1_constants_reference_values():
    e = RelaxedSmoothP1().constants.extra
    for key, val in {"l_g1_joint": 2.779, "C_gxy": 1.606, "L_ystar": 2.495, "l_f0": 2.828,
                     "L0_phi_hessian": 21.635}.items():
        assert e[key] == pytest.approx(val, abs=5e-4), key
    assert (e["L_x1"], e["L_y0"], e["L_y1"]) == (2.0, 1.0, 0.0)
    assert e["r_f"] == pytest.approx(1 / (2 * np.sqrt(2)))


@pytest.mark.parametrize("make", [RelaxedSmoothP1, lambda: RelaxedSmoothP1("sine"),
                                  RelaxedSmoothP2], ids=["p1", "p1-sine", "p2"])
def test_phi_is_relaxed_smooth_not_smooth(make):
    P = make()
    e = P.constants.extra
    rng = np.random.default_rng(0)
    u = rng.standard_normal((400, P.d_x))
    x = u / np.linalg.norm(u, axis=-1, keepdims=True) * rng.uniform(0, 12, (400, 1))
    hess_norm = np.linalg.norm(P.hessian_phi(x), 2, axis=(-2, -1))
    grad_norm = np.linalg.norm(P.grad_phi(x), axis=-1)
    assert np.all(hess_norm <= e["L0_phi_hessian"] + e["L1_phi_hessian"] * grad_norm)
    assert hess_norm.max() > 100.0  # ||∇²phi|| is unbounded: not L-smooth


def test_relaxed_smooth_assumption1_on_random_pairs():
    """docs/borep.rst Assumption 1 with the stated constants, pairs within r_f."""
    for P in (RelaxedSmoothP1(), RelaxedSmoothP2()):
        e = P.constants.extra
        rng = np.random.default_rng(1)
        w = rng.standard_normal((2000, P.d_x + P.d_y)) * 3
        dw = rng.standard_normal(w.shape)
        dw *= e["r_f"] * rng.uniform(0, 1, (2000, 1)) / np.linalg.norm(dw, axis=-1, keepdims=True)
        x1, y1 = w[:, :P.d_x], w[:, P.d_x:]
        x2, y2 = x1 + dw[:, :P.d_x], y1 + dw[:, P.d_x:]
        nw = np.linalg.norm(dw, axis=-1)
        gx1, gy1 = P.grad_x_f(x1, y1), P.grad_y_f(x1, y1)
        assert np.all(np.linalg.norm(gx1 - P.grad_x_f(x2, y2), axis=-1)
                      <= (e["L_x0"] + e["L_x1"] * np.linalg.norm(gx1, axis=-1)) * nw + 1e-12)
        assert np.all(np.linalg.norm(gy1 - P.grad_y_f(x2, y2), axis=-1)
                      <= (e["L_y0"] + e["L_y1"] * np.linalg.norm(gy1, axis=-1)) * nw + 1e-12)


@pytest.mark.parametrize("make, name", [
    (lambda: RelaxedSmoothP1("huber"), "variant"),
    (lambda: RelaxedSmoothP1(mu=-1.0), "mu"),
    (lambda: RelaxedSmoothP1(mu=1.0, L_H=0.5), "L_H"),
    (lambda: RelaxedSmoothP1(c_psi=0.0), "c_psi"),
    (lambda: RelaxedSmoothP1(C=np.ones((3, 3))), "C"),
    (lambda: RelaxedSmoothP2(H=-np.eye(6)), "H"),
    (lambda: RelaxedSmoothP2(d_x=0), "d_x"),
])
def test_relaxed_smooth_rejects_bad_parameters(make, name):
    with pytest.raises(ValueError, match=name):
        make()


# ---- lower-level contractions (docs/sid_bsgm.rst §14)
# ------------------------------------------------
def test_golden_instance_exact_values():
    gi = golden_instance()
    P, lam = gi.problem, gi.lam
    assert P.q == pytest.approx(0.5583549158183764, rel=1e-14)
    _close(P.w_star(lam), [2.60700389, -0.98249027, 0.11478599], 5e-9, 1.0)
    _close(P.v_star(lam), [7.2327257, 3.15365259, 0.58965465], 5e-8, 1.0)
    assert float(P.f(lam)) == pytest.approx(3.583456638253417, rel=1e-14)
    _close(P.grad_f(lam), [9.95313177, -2.68231994], 5e-9, 1.0)
    _close(P.hessian_f(), [[12.53398992, -2.96257324], [-2.96257324, 3.92049842]], 5e-9, 1.0)
    _close(np.linalg.eigvalsh(P.hessian_f()), [2.9999218, 13.45456654], 5e-8, 1.0)
    assert P.constants.extra["L_f"] == pytest.approx(13.454566537070583, rel=1e-13)
    e = P.constants.extra
    for key, val in {"mu_1": 2.20711, "mu_2": 0.31926, "L_Phi": 2.25067, "sigma_2": 0.06,
                     "sigma_prime_1": 0.03, "sigma_prime_2": 0.02, "s_1": 3.0, "s_2": 2.0,
                     "L_f_lemma3": 74.66}.items():
        assert e[key] == pytest.approx(val, abs=5e-3 if key == "L_f_lemma3" else 5e-6), key
    assert float(P.sigma_1(lam)) == pytest.approx(1.22670, abs=5e-6)
    assert float(P.D_w(lam)) == pytest.approx(2.78836, abs=5e-6)
    assert (P.s_Z, P.s_Y, P.s_eps) == (0.1, 0.1, 0.5)
    _close(P.Sigma_xi, np.eye(5), 0.0)
    _close(gi.w0, np.zeros(3), 0.0)
    assert gi.eta(0) == 1.0 and gi.eta(3) == 0.5
    # ∇f(λ) equal to central finite differences up to 1e-9 (§14.1)
    for u in np.eye(2):
        assert float(P.grad_f(lam) @ u) == pytest.approx(float(_fd(P.f, lam, u)), abs=1e-9)


def _random_linear(seed, d=4, n=3, q=0.7):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    A *= q / np.linalg.norm(A, 2)
    Pm = rng.standard_normal((d, d))
    Sm = rng.standard_normal((n, n))
    return LinearContraction(A, rng.standard_normal((d, n)), rng.standard_normal(d),
                             Pm @ Pm.T, rng.standard_normal((d, n)), Sm @ Sm.T,
                             rng.standard_normal(d), rng.standard_normal(n))


FIXED_POINT = {
    "golden": lambda: golden_instance().problem,
    "linear-random": lambda: _random_linear(0),
    "linear-random-d1": lambda: _random_linear(1, d=1, n=1),
    "ridge": lambda: RidgeContraction.from_seed(),
    "ridge-d10": lambda: RidgeContraction.from_seed(d=10, N=60, N_val=20, seed=3,
                                                    lam_range=(0.1, 2.0)),
}


@pytest.fixture(params=sorted(FIXED_POINT), scope="module")
def fixed_point(request):
    return FIXED_POINT[request.param]()


def test_fixed_point_identities(fixed_point: FixedPointProblem):
    P = fixed_point
    rng = np.random.default_rng(0)
    lam = 0.3 + 0.2 * rng.random((3, P.n))
    w, v, u = rng.standard_normal((3, 3, P.d))
    ul = rng.standard_normal((3, P.n))
    ws = P.w_star(lam)
    _close(P.phi_map(ws, lam), ws, 1e-12)
    vs = P.v_star(lam)
    g1, g2 = P.grad_E(ws, lam)
    _close(vs, P.vjp_w(ws, lam, vs) + g1, 1e-12)  # (LS)
    _close(P.grad_f(lam), g2 + P.vjp_lam(ws, lam, vs), 1e-12)  # eq. (4)
    _close(P.grad_f(lam), FixedPointProblem._grad_f(P, lam), 1e-11)
    # adjoint (dot-product) tests of both Jacobians
    _close(np.sum(P.vjp_w(w, lam, v) * u, -1), np.sum(v * P.jvp_w(w, lam, u), -1), RTOL_EXACT,
           np.linalg.norm(v) * np.linalg.norm(u) * 3)
    _close(np.sum(P.vjp_lam(w, lam, v) * ul, -1), np.sum(v * P.jvp_lam(w, lam, ul), -1),
           RTOL_EXACT, np.linalg.norm(v) * np.linalg.norm(ul) * (1 + np.linalg.norm(w)))
    # derivatives vs central finite differences (smooth in (w, λ); see module docstring)
    _close(P.jvp_w(w, lam, u), _fd(lambda z: P.phi_map(z, lam), w, u), RTOL_FD)
    _close(P.jvp_lam(w, lam, ul), _fd(lambda z: P.phi_map(w, z), lam, ul), RTOL_FD)
    g1w, g2w = P.grad_E(w, lam)
    _close(np.sum(g1w * u, -1), _fd(lambda z: P.E(z, lam), w, u), RTOL_FD)
    _close(np.sum(g2w * ul, -1), _fd(lambda z: P.E(w, z), lam, ul), RTOL_FD)
    _close(np.sum(P.grad_f(lam) * ul, -1), _fd(P.f, lam, ul), RTOL_FD)
    hess = P.hessian_f(lam)  # (3, n, n)
    _close(np.einsum("rij,rj->ri", hess, ul), _fd(P.grad_f, lam, ul), RTOL_FD)
    # contraction modulus
    assert np.linalg.norm(P.jacobian_w(w[0], lam[0]), 2) <= P.q * (1 + 1e-12)


@pytest.mark.parametrize("scale", [1.0, 1.5])
def test_linear_contraction_rejects_q_at_least_one(scale):
    gi = golden_instance().problem
    A = np.diag([scale, 0.2, 0.1])
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\)"):
        LinearContraction(A, gi.B, gi.c, gi.P, gi.Q, gi.S, gi.p, gi.s)


def test_linear_contraction_rejects_bad_inputs():
    gi = golden_instance().problem
    with pytest.raises(ValueError, match="B"):
        LinearContraction(gi.A, np.ones((2, 2)), gi.c, gi.P, gi.Q, gi.S, gi.p, gi.s)
    with pytest.raises(ValueError, match="P"):
        LinearContraction(gi.A, gi.B, gi.c, np.triu(np.ones((3, 3))), gi.Q, gi.S, gi.p, gi.s)
    with pytest.raises(ValueError, match="s_Z"):
        LinearContraction(gi.A, gi.B, gi.c, gi.P, gi.Q, gi.S, gi.p, gi.s, s_Z=-1.0)
    with pytest.raises(ValueError, match="lam"):
        gi.w_star(np.zeros(3))


def test_gd_map_contraction():
    rng = np.random.default_rng(2)
    d, n, mu, L = 5, 2, 0.5, 4.0
    Qm = np.linalg.qr(rng.standard_normal((d, d)))[0]
    H = Qm @ np.diag(np.linspace(mu, L, d)) @ Qm.T
    K, h = rng.standard_normal((d, n)), rng.standard_normal(d)
    Pm = rng.standard_normal((d, d))
    ul = {"P": Pm @ Pm.T, "Q": rng.standard_normal((d, n)), "S": np.eye(n),
          "p": rng.standard_normal(d), "s": rng.standard_normal(n)}
    lam = rng.standard_normal(n)
    kappa = L / mu
    ref = None
    for alpha, q in [(1 / L, 1 - 1 / kappa), (2 / (mu + L), (kappa - 1) / (kappa + 1)),
                     (0.3, None)]:
        P = gd_map_contraction(H, K, h, alpha, **ul)
        q_formula = max(abs(1 - alpha * mu), abs(1 - alpha * L))
        assert P.q == pytest.approx(q_formula, rel=1e-12)
        assert P.constants.extra["q_formula"] == pytest.approx(q_formula, rel=1e-12)
        if q is not None:
            assert P.q == pytest.approx(q, rel=1e-12)
        ws, gf = P.w_star(lam), P.grad_f(lam)
        _close(ws, np.linalg.solve(H, K @ lam + h), 1e-12)
        g1, g2 = P.grad_E(ws, lam)
        _close(gf, g2 + K.T @ np.linalg.solve(H, g1), 1e-11)
        _close(P.v_star(lam), np.linalg.solve(alpha * H, g1), 1e-11)
        if ref is not None:  # independent of alpha_ll (§14.2)
            _close(ws, ref[0], 1e-12)
            _close(gf, ref[1], 1e-11)
        ref = (ws, gf)
    with pytest.raises(ValueError, match=r"alpha_ll must lie in \(0, 0.5\)"):
        gd_map_contraction(H, K, h, 0.6, **ul)


def test_ridge_contraction():
    P = RidgeContraction.from_seed(d=6, N=30, N_val=25, seed=4, lam_range=(0.05, 3.0))
    lam = np.array([[0.2], [1.0]])
    # formula (4) with two step sizes gives the same, α-free ∇f (§14.3)
    P2 = RidgeContraction(P.X_train, P.y_train, P.X_val, P.y_val, alpha_ll=0.5 * P.alpha_ll,
                          lam_range=(0.05, 3.0))
    _close(FixedPointProblem._grad_f(P, lam), FixedPointProblem._grad_f(P2, lam), 1e-12)
    _close(P.w_star(lam)[1], np.linalg.solve(P.H_X + np.eye(6), P.b), 1e-12)
    # the per-sample map averages to Φ exactly (an unbiased oracle)
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal((2, 6))
    j = np.arange(P.N)
    _close(P.phi_map_sample(w, lam[0], j).mean(axis=0), P.phi_map(w, lam[0]), 1e-12)
    _close(P.vjp_w_sample(w, lam[0], v, j).mean(axis=0), P.vjp_w(w, lam[0], v), 1e-12)
    assert P.q_at(0.05) <= P.q < 1
    e = P.constants.extra
    assert e["L_Phi"] == pytest.approx(P.alpha_ll * np.linalg.norm(P.w_star(0.05)))
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\)"):
        RidgeContraction(P.X_train, P.y_train, P.X_val, P.y_val, alpha_ll=1.0,
                         lam_range=(0.05, 3.0))
    with pytest.raises(ValueError, match="j"):
        P.phi_map_sample(w, lam[0], P.N)
