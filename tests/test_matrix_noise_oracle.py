"""MatrixNoiseOracle: the matrix-noise stochastic oracle of docs/fdehbo.rst §10.1.

Statistical tests (test (a) below): fixed seeds; each compares a Monte Carlo estimate with
its exact value at 4.5 standard errors. Under the normal approximation
P(|Z| > 4.5) = 6.8e-6 per comparison; the 8 oracle kinds make 97 comparisons in all (29
mean coordinates, 68 covariance entries), so the family-wise false-positive rate is
<= 97 · 6.8e-6 = 6.6e-4 <= 1e-3. The means are exactly Gaussian (the noise is linear in
the Gaussian sample); the covariance entries are means of 20000 i.i.d. products with an
estimated standard error (CLT).
"""

import numpy as np
import pytest

from refbilevel.algorithms.fdehbo import (
    StormSchedule,
    fd_hvp,
    fd_jvp,
    fdehbo,
    storm_total_counts,
)
from refbilevel.algorithms.fmbo import fmbo
from refbilevel.backends.registry import NotImplementedOnBackendError, implementation
from refbilevel.oracles import MatrixNoiseOracle
from refbilevel.oracles.matrix_noise import LOWER_KINDS, UPPER_KINDS
from refbilevel.problems.derivative_check import fd_directional, fd_gradient
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import SeparableUniformlyConvex
from refbilevel.randomness import named_stream
from theory_checks import f2_fdehbo_rate as f2_check

Z = 4.5
N_MC = 20000
S, SIGMA_U = 0.4, 0.7


def quad(seed=3, structured=False):
    return StronglyConvexQuadratic(d_x=3, d_y=4, mu=0.5, L=2.0, seed=seed,
                                   k_range=(0.2, 1.0), f_range=(0.3, 1.0), rho=0.5,
                                   structured=structured)


P = quad()
X = np.array([0.8, -1.1, 0.4])
Y = np.array([0.3, 1.2, -0.7, 0.9])
V = np.array([-0.5, 0.6, 1.4, 0.2])


def _cov_y(y, s):
    """Cov(S y) with S = ½(E + Eᵀ), E_ij ~ N(0, s²): (s²/2)(‖y‖² I + y yᵀ)."""
    return 0.5 * s**2 * (y @ y * np.eye(y.size) + np.outer(y, y))


# kind -> (call on batched (x, y, v), exact value, configured covariance of the noise)
CASES = {
    "grad_x_f": (lambda o, x, y, v: o.grad_x_f(x, y), P.grad_x_f(X, Y),
                 SIGMA_U**2 * np.eye(3)),
    "grad_y_f": (lambda o, x, y, v: o.grad_y_f(x, y), P.grad_y_f(X, Y),
                 SIGMA_U**2 * np.eye(4)),
    "f_u": (lambda o, x, y, v: o.f_u(x, y), P.f_u(X, Y), SIGMA_U**2 * np.eye(4)),
    "grad_x_g": (lambda o, x, y, v: o.grad_x_g(x, y), P.grad_x_g(X, Y),
                 S**2 * (Y @ Y) * np.eye(3)),
    "grad_y_g": (lambda o, x, y, v: o.grad_y_g(x, y), P.grad_y_g(X, Y),
                 _cov_y(Y, S) + S**2 * (X @ X) * np.eye(4)),
    "hvp": (lambda o, x, y, v: o.hvp_yy_g(x, y, v), P.hvp_yy_g(X, Y, V), _cov_y(V, S)),
    "jvp": (lambda o, x, y, v: o.jvp_xy_g(x, y, v), P.jvp_xy_g(X, Y, V),
            S**2 * (V @ V) * np.eye(3)),
    "gen_hvp": (lambda o, x, y, v: o.gen_hvp(x, y, v), P.gen_hvp(X, Y, V), _cov_y(V, S)),
}


# ---- (a) unbiasedness and covariance ---------------------------------------------------------
@pytest.mark.parametrize("kind", list(CASES))
def test_unbiased_with_configured_covariance(kind):
    """Each oracle output at a fixed point: mean = exact value and covariance = the module
    docstring's formula, at 4.5 standard errors (family-wise false-positive rate <= 1e-3,
    see the module docstring)."""
    call, exact, cov = CASES[kind]
    o = MatrixNoiseOracle(P, S, SIGMA_U, named_stream(11, f"mc/{kind}"))
    xb, yb, vb = (np.broadcast_to(a, (N_MC, a.size)) for a in (X, Y, V))
    D = call(o, xb, yb, vb) - exact
    assert D.shape == (N_MC, exact.size)
    assert o.counts.as_dict()[kind] == 1 and o.counts.samples == 1
    mean_se = np.sqrt(np.diag(cov) / N_MC)
    assert np.all(np.abs(D.mean(axis=0)) <= Z * mean_se), (D.mean(axis=0), mean_se)
    iu = np.triu_indices(exact.size)
    prods = D[:, iu[0]] * D[:, iu[1]]
    se = prods.std(axis=0, ddof=1) / np.sqrt(N_MC)
    err = prods.mean(axis=0) - cov[iu]
    assert np.all(np.abs(err) <= Z * se), (err, se)


# ---- (b) same-sample consistency and the sign conventions --------------------------------------
def test_same_sample_difference_is_the_sampled_quadratic():
    """One ζ: ∇_y G(x₁,y₁;ζ) − ∇_y G(x₂,y₂;ζ) = H_ζ(y₁−y₂) − K_ζ(x₁−x₂) and
    ∇_x G(x₁,y₁;ζ) − ∇_x G(x₂,y₂;ζ) = −K_ζᵀ(y₁−y₂), per replica, to rounding."""
    rng = np.random.default_rng(0)
    o = MatrixNoiseOracle(P, 0.5, 0.3, named_stream(2, "same"))
    R = 5
    zeta = o.draw("grad_y_g", (R,))
    Sz, Nz = o.matrices(zeta)
    Hz, Kz = P.dense_H() + Sz, P.dense_K() + Nz  # (R, 4, 4), (R, 4, 3)
    x1, x2 = rng.standard_normal((2, R, 3))
    y1, y2 = rng.standard_normal((2, R, 4))
    dgy = o.grad_y_g(x1, y1, sample=zeta) - o.grad_y_g(x2, y2, sample=zeta)
    want = np.einsum("rij,rj->ri", Hz, y1 - y2) - np.einsum("rij,rj->ri", Kz, x1 - x2)
    np.testing.assert_allclose(dgy, want, rtol=0, atol=1e-13 * np.abs(want).max())
    dgx = o.grad_x_g(x1, y1, sample=zeta) - o.grad_x_g(x2, y2, sample=zeta)
    want_x = -np.einsum("rji,rj->ri", Kz, y1 - y2)
    np.testing.assert_allclose(dgx, want_x, rtol=0, atol=1e-13 * np.abs(want_x).max())
    # the noise of the difference scales with the distance: zero at equal points
    assert np.array_equal(o.grad_y_g(x1, y1, sample=zeta), o.grad_y_g(x1, y1, sample=zeta))
    assert o.counts.samples == 1 and o.counts.grad_y_g == 4 and o.counts.grad_x_g == 2


@pytest.mark.parametrize("delta", [1e-3, 1e-1, 1.0])
def test_finite_differences_are_exact_on_one_sample(delta):
    """docs/fdehbo.rst §10.1 "the finite differences are exact": the central differences (9), (11)
    of ∇_y G, ∇_x G on one ζ equal the HVP/JVP oracles on that ζ up to the rounding
    eps·‖∇g‖/δ (the noise N_ζ x cancels, S_ζ v and −N_ζᵀ v survive exactly)."""
    rng = np.random.default_rng(1)
    o = MatrixNoiseOracle(P, 0.5, 0.3, named_stream(3, "fd"))
    R = 6
    x, y, v = rng.standard_normal((R, 3)), rng.standard_normal((R, 4)), rng.standard_normal((R, 4))
    zeta = o.draw("hvp", (R,))
    scale = np.abs(o.grad_y_g(x, y, sample=zeta)).max() + np.abs(y).max() + 1.0
    tol = 1e-13 * scale / delta + 1e-14
    np.testing.assert_allclose(fd_hvp(o, x, y, v, delta, zeta),
                               o.hvp_yy_g(x, y, v, sample=zeta), rtol=0, atol=tol)
    np.testing.assert_allclose(fd_jvp(o, x, y, v, delta, zeta),
                               o.jvp_xy_g(x, y, v, sample=zeta), rtol=0, atol=tol)
    # and the noise really is there: the sampled HVP differs from the exact one
    assert np.abs(o.hvp_yy_g(x, y, v, sample=zeta) - P.hvp_yy_g(x, y, v)).max() > 1e-2


def test_derivatives_match_finite_differences_of_the_sampled_functions():
    """Signs and transposes (repo conventions: ∇²_xy g is d_x × d_y): every lower-level
    output is the derivative of the sampled g(x, y; ζ) = g + ½yᵀS y − yᵀN x, every
    upper-level output that of f(x, y; ξ) = f + ξ_xᵀx + ξ_yᵀy (central differences;
    the functions are quadratic so only rounding remains)."""
    o = MatrixNoiseOracle(P, 0.6, 0.8, named_stream(4, "fdval"))
    zeta, xi = o.draw("grad_y_g", ()), o.draw("grad_x_f", ())
    gy = fd_gradient(lambda y: o.g_value(X, y, zeta), Y)
    gx = fd_gradient(lambda x: o.g_value(x, Y, zeta), X)
    np.testing.assert_allclose(o.grad_y_g(X, Y, sample=zeta), gy, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(o.grad_x_g(X, Y, sample=zeta), gx, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(o.grad_x_f(X, Y, sample=xi),
                               fd_gradient(lambda x: o.f_value(x, Y, xi), X), rtol=1e-7,
                               atol=1e-8)
    np.testing.assert_allclose(o.grad_y_f(X, Y, sample=xi),
                               fd_gradient(lambda y: o.f_value(X, y, xi), Y), rtol=1e-7,
                               atol=1e-8)
    # ∇²_yy g(ζ) v = d/dt ∇_y g(x, y + t v; ζ)
    np.testing.assert_allclose(
        o.hvp_yy_g(X, Y, V, sample=zeta),
        fd_directional(lambda y: o.grad_y_g(X, y, sample=zeta), Y, V), rtol=1e-7, atol=1e-8)
    # ∇²_xy g(ζ) v = d/dt ∇_x g(x, y + t v; ζ) ∈ R^{d_x}
    np.testing.assert_allclose(
        o.jvp_xy_g(X, Y, V, sample=zeta),
        fd_directional(lambda y: o.grad_x_g(X, y, sample=zeta), Y, V), rtol=1e-7, atol=1e-8)
    # and its (i, j) entry is ∂/∂x_i of (∇_y g)_j: the d_x × d_y convention of base.py
    cross = np.stack([o.jvp_xy_g(X, Y, e, sample=zeta) for e in np.eye(4)], axis=-1)
    rows = np.stack([fd_directional(lambda x: o.grad_y_g(x, Y, sample=zeta), X, e)
                     for e in np.eye(3)])
    np.testing.assert_allclose(cross, rows, rtol=1e-7, atol=1e-8)
    Sz, Nz = o.matrices(zeta)
    np.testing.assert_allclose(cross, -(P.dense_K() + Nz).T, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(Sz, Sz.T)


# ---- random-number layout and counters -------------------------------------------------------
def test_random_number_layout_and_counts():
    """draw = one standard_normal(batch + (D,)) call of the passed Generator; D = d_y² +
    d_y·d_x (lower: E then N, C order) or d_x + d_y (upper: ξ_x then ξ_y); every lower kind
    shares one family (so FdeHBO's and FMBO's draws coincide); a noise-free family consumes
    nothing; calls are counted per kind and samples once per draw."""
    o = MatrixNoiseOracle(P, 0.3, 0.2, np.random.default_rng(7))
    ref = np.random.default_rng(7)
    for kind in LOWER_KINDS:
        np.testing.assert_array_equal(o.draw(kind, (2,)), ref.standard_normal((2, 16 + 12)))
    for kind in UPPER_KINDS:
        np.testing.assert_array_equal(o.draw(kind, (2,)), ref.standard_normal((2, 3 + 4)))
    assert o.counts.samples == len(LOWER_KINDS) + len(UPPER_KINDS)
    z = o.draw("grad_y_g", ())
    Sz, Nz = o.matrices(z)
    E = 0.3 * z[:16].reshape(4, 4)
    np.testing.assert_array_equal(Sz, 0.5 * (E + E.T))
    np.testing.assert_array_equal(Nz, 0.3 * z[16:].reshape(4, 3))
    xi = o.draw("grad_x_f", ())
    np.testing.assert_allclose(o.grad_x_f(X, Y, sample=xi) - P.grad_x_f(X, Y), 0.2 * xi[:3])
    np.testing.assert_allclose(o.grad_y_f(X, Y, sample=xi) - P.grad_y_f(X, Y), 0.2 * xi[3:])
    before = o.counts.copy()
    o.grad_y_g(X, Y)  # no sample: draws one
    d = (o.counts - before).as_dict()
    assert d["grad_y_g"] == 1 and d["samples"] == 1 and sum(d.values()) == 2
    # noise-free families: exact values, no random numbers consumed
    q = MatrixNoiseOracle(P, 0.0, 0.0, np.random.default_rng(9))
    state = q.rng.bit_generator.state
    assert np.array_equal(q.draw("hvp", (3,)), np.zeros((3, 28)))
    np.testing.assert_array_equal(q.grad_y_g(X, Y), P.grad_y_g(X, Y))
    np.testing.assert_array_equal(q.grad_x_f(X, Y), P.grad_x_f(X, Y))
    assert q.rng.bit_generator.state == state
    # same Generator state -> same outputs
    a = MatrixNoiseOracle(P, 0.3, 0.2, named_stream(5, "rep")).grad_y_g(X, Y)
    b = MatrixNoiseOracle(P, 0.3, 0.2, named_stream(5, "rep")).grad_y_g(X, Y)
    np.testing.assert_array_equal(a, b)


# ---- (c) FdeHBO == FMBO under full matrix noise ------------------------------------------------
@pytest.mark.parametrize("delta", [1e-3, 1e-2])
def test_fdehbo_equals_fmbo_with_noise_on_every_oracle(delta):
    """docs/fdehbo.rst §10.1 "Checked": identical random streams, noise on every oracle (s = 0.3,
    σ_u = 0.5), 2000 iterations of the f2 schedule: FdeHBO and FMBO iterates agree to
    <= 1e-12 relative (measured 2.1e-13 at δ = 1e-3, 2.2e-14 at δ = 1e-2: rounding eps/δ).

    FdeHBO draws ψ_g, ξ̄_g as kinds "grad_y_g", "grad_x_g" and FMBO as "hvp", "jvp"; all four
    are lower-level kinds, whose draw is the same (E, N) block, so both consume the same
    random numbers and evaluate their HVP/JVP on the same ζ."""
    Pf = f2_check.problem()
    x0, y0 = np.array([[2.0, -1.0, 0.5], [1.0, 1.5, -2.0]]), np.zeros(Pf.d_y)
    oa = MatrixNoiseOracle(Pf, 0.3, 0.5, named_stream(1, "fd=fm"))
    ob = MatrixNoiseOracle(Pf, 0.3, 0.5, named_stream(1, "fd=fm"))
    kw = {"T": 2000, "schedule": f2_check.SCHEDULE, "r_v": f2_check.R_V}
    a = fdehbo(oa, x0, y0, delta=delta, **kw)
    b = fmbo(ob, x0, y0, **kw)
    assert oa.rng.bit_generator.state == ob.rng.bit_generator.state
    assert not a.diverged.any() and not b.diverged.any()
    rel = np.max(np.abs(a.x - b.x)) / np.abs(b.x).max()
    assert rel <= 1e-12, rel
    for key in ("y_final", "v_final"):
        diff = np.max(np.abs(a.extra[key] - b.extra[key]))
        assert diff <= 1e-12 * np.abs(b.extra[key]).max(), (key, diff)
    # counts: the §3 per-iteration accounting
    want = storm_total_counts("fdehbo", 2000)
    assert {k: oa.counts.as_dict()[k] for k in want} == want
    # the noise is real: a run on another stream ends elsewhere
    c = fmbo(MatrixNoiseOracle(Pf, 0.3, 0.5, named_stream(2, "fd=fm")), x0, y0, **kw)
    assert np.max(np.abs(c.x[-1] - b.x[-1])) > 1e-3


# ---- (d) convergence with matrix noise ----------------------------------------------------------
def test_fdehbo_converges_with_matrix_noise():
    """docs/fdehbo.rst §10.3 test 6 (qualitative): on the f2 instance of §10.1 with matrix noise
    s = 0.1 and upper-level noise 0.3, the mean over 8 replicas of ||∇Φ(x_t)||² averaged
    over the last 10% of iterations decreases from T = 500 to T = 4000 (measured 0.0105 ->
    0.0032 at seed 0, ratio 0.30; T^{-2/3} predicts 0.25).

    The schedule does not depend on T and the streams are fixed, so the T = 500 run is the
    prefix of the T = 4000 run (asserted), and one run gives both windows."""
    Pf = f2_check.problem()
    R = 8
    x0 = np.full((R, Pf.d_x), f2_check.X0)

    def run(T):
        o = MatrixNoiseOracle(Pf, 0.1, 0.3, named_stream(0, "mn-conv"))
        return fdehbo(o, x0, np.zeros(Pf.d_y), T=T, schedule=f2_check.SCHEDULE,
                      r_v=f2_check.R_V)

    short, long = run(500), run(4000)
    assert not long.diverged.any()
    np.testing.assert_array_equal(short.x, long.x[:501])
    g2 = long.grad_phi_norm[:-1] ** 2  # ||∇Φ(x_t)||², t = 0..T-1, per replica
    early = g2[450:500].mean()
    late = g2[3600:4000].mean()
    assert late < 0.6 * early, (early, late)


# ---- (e) bad inputs ------------------------------------------------------------------------------
def test_bad_inputs_raise_value_error_naming_the_parameter():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"^s must"):
        MatrixNoiseOracle(P, -0.1, 0.1, rng)
    with pytest.raises(ValueError, match=r"^s must"):
        MatrixNoiseOracle(P, float("nan"), 0.1, rng)
    with pytest.raises(ValueError, match="sigma_upper"):
        MatrixNoiseOracle(P, 0.1, -1.0, rng)
    with pytest.raises(ValueError, match="rng"):
        MatrixNoiseOracle(P, 0.1, 0.1, 0)
    for bad in (UniBiOExample3(4), SeparableUniformlyConvex(d=3, p=4.0)):
        with pytest.raises(ValueError, match="problem must have g quadratic"):
            MatrixNoiseOracle(bad, 0.1, 0.1, rng)
    with pytest.raises(ValueError, match="problem must be a BilevelProblem"):
        MatrixNoiseOracle(object(), 0.1, 0.1, rng)
    o = MatrixNoiseOracle(P, 0.1, 0.1, rng)
    xb, yb = np.zeros((3, 3)), np.zeros((3, 4))
    with pytest.raises(ValueError, match="sample"):  # wrong replica count
        o.grad_y_g(xb, yb, sample=o.draw("grad_y_g", (2,)))
    with pytest.raises(ValueError, match="sample"):  # an upper-level sample for a lower kind
        o.hvp_yy_g(xb, yb, yb, sample=o.draw("grad_y_f", (3,)))
    with pytest.raises(ValueError, match="sample"):  # a lower-level sample for an upper kind
        o.grad_x_f(xb, yb, sample=o.draw("jvp", (3,)))
    with pytest.raises(ValueError, match="sample"):
        o.grad_x_g(xb, yb, sample=np.zeros((3, 28), dtype=np.int64))
    with pytest.raises(ValueError, match="unknown oracle kind"):
        o.draw("hessian", (3,))
    with pytest.raises(ValueError, match="batch_shape"):
        o.draw("hvp", 3)


def test_quadratic_problems_are_accepted():
    for prob in (quad(5, structured=True), StronglyConvexQuadratic(d_x=2, d_y=1, seed=1),
                 f2_check.problem()):
        MatrixNoiseOracle(prob, 0.1, 0.1, np.random.default_rng(0))


# ---- Numba backend: refused -------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["fdehbo", "fmbo"])
def test_numba_backend_refuses_matrix_noise(variant):
    """The FdeHBO/FMBO kernel draws additive noise itself: NotImplementedOnBackendError
    saying that matrix noise runs on the NumPy backend (no silent additive-noise run)."""
    o = MatrixNoiseOracle(P, 0.1, 0.1, np.random.default_rng(0))
    run = implementation("algorithm", variant, "numba")
    with pytest.raises(NotImplementedOnBackendError, match="NumPy backend"):
        run(o, X, Y, T=3, schedule=StormSchedule.tuned())
    assert o.counts.total_calls == 0 and o.counts.samples == 0
    with pytest.raises(NotImplementedOnBackendError, match="NumPy backend"):
        _ = o.noise  # what any other kernel wrapper reading oracle.noise hits
