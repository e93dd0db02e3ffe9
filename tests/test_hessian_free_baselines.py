"""PZOBO (docs/baselines.rst §16), ALSET (§17) and FSLA (§15): the checks of their sections on the
quadratic (where the algebra is exact), the stated oracle counts (X3), NumPy ↔ Numba parity
(X4), convergence of the "default" parameters and parameter validation.

Problem: the well-conditioned StronglyConvexQuadratic of tests/test_baselines.py (∇²_yy g
spectrum [3, 10], ρ = 10), small (d = 5) so that every test runs in seconds on NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest

import refbilevel
from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms import alset, fsla, pzobo, ttsa
from refbilevel.algorithms._baselines import paper_cumulative_counts
from refbilevel.backends import implementation
from refbilevel.oracles import GaussianOracle
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.quadratic import StronglyConvexQuadratic

QUAD = StronglyConvexQuadratic(d_x=5, d_y=5, mu=3.0, L=10.0, rho=10.0, seed=0)
FSQ = FiniteSumQuadratic(n_inner=256, n_outer=256, d_inner=5, d_outer=5, mu=1.0, L=4.0,
                         L_cross=1.0, seed=16)
QUAD_PARAMS = {"d_x": 5, "d_y": 5, "mu": 3.0, "L": 10.0, "rho": 10.0, "seed": 0}


def _start(R, P=QUAD):
    return np.full((R, P.d_x), -2.0) + 0.1 * np.arange(R)[:, None], np.full((R, P.d_y), 0.3)


def _rel(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def _gd_path(P, x, y, alpha, N):
    for _ in range(N):
        y = y - alpha * P.grad_y_g(x, y)
    return y


def _matrix_of(fn, d):
    """The matrix of a linear map R^d -> R^m from its values on the basis."""
    return np.stack([fn(e) for e in np.eye(d)], axis=1)


# ---- PZOBO --------------------------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [1e-3, 0.7])
def test_pzobo_estimate_is_exact_es_jacobian_on_the_quadratic(smoothing):
    """§16 check: on the quadratic the N-step path is affine in x, so δ_j = J_N u_j for
    every μ and ĥ = ∇_x f + (1/Q) Σ_j u_j u_jᵀ J_Nᵀ ∇_y f at (x, y^N) exactly. ĥ is read
    back from x_1 = x_0 − β ĥ; the directions are the first draw of the Generator (exact
    oracles draw nothing else). Tolerance 1e-9 relative: rounding of the path difference
    (divided by μ = 1e-3) and of (x_0 − x_1)/β."""
    alpha, N, Q, beta = 0.1, 6, 3, 0.05
    x0, y0 = _start(2)
    o = GaussianOracle(QUAD, 0.0, np.random.default_rng(11))
    tr = pzobo.run_pzobo(o, x0, y0, T=1, step_size=alpha, outer_ratio=alpha / beta,
                         n_inner_steps=N, n_directions=Q, smoothing=smoothing)
    h = (x0 - tr.x[1]) / beta
    U = np.random.default_rng(11).standard_normal((Q, 2, QUAD.d_x))
    for r in range(2):
        yN = _gd_path(QUAD, x0[r], y0[r], alpha, N)
        J = _matrix_of(lambda e, r=r, yN=yN: _gd_path(QUAD, x0[r] + e, y0[r], alpha, N) - yN,
                       QUAD.d_x)  # exact: the path is affine in x
        fy, fx = QUAD.grad_y_f(x0[r], yN), QUAD.grad_x_f(x0[r], yN)
        want = fx + sum(U[j, r] * (U[j, r] @ (J.T @ fy)) for j in range(Q)) / Q
        assert _rel(h[r], want) <= 1e-9
        # negative control: the benchmark's in-place quirk (path j starts where j − 1
        # ended) is a different estimate on the same directions
        y_start, quirk = y0[r], fx.copy()
        for j in range(Q):
            yj = _gd_path(QUAD, x0[r] + smoothing * U[j, r], y_start, alpha, N)
            quirk += U[j, r] * ((yj - yN) / smoothing @ fy) / Q
            y_start = yj
        assert _rel(quirk - fx, want - fx) > 1e-2


@pytest.mark.parametrize("Q", [1, 4])
def test_pzobo_estimate_error_variance_is_p_plus_1_over_q(Q):
    """§16 check: with Gaussian u the error of Ĵᵀw has E||Ĵᵀw − J_Nᵀw||² = (p + 1)||J_Nᵀw||²/Q
    (p = d_x = 5). Statistical: R = 20000 replicas from one start make one iteration each;
    the error is read back from x_1 (ĥ − ∇Φ_N, ∇Φ_N from the exact path). z-test at 5
    standard errors of the sample mean (CLT; false-positive rate 6e-7, fixed seed).
    Negative control: the law p||J_Nᵀw||²/Q (off by 1/(p + 1) = 17%) is rejected by the same
    test (measured, seed 21: z = 0.03 and −0.58 for the stated law, 10.6 and 18.5 for the
    control)."""
    alpha, N, beta, R = 0.1, 6, 0.05, 20000
    x0, y0 = np.full((R, QUAD.d_x), -2.0), np.full((R, QUAD.d_y), 0.3)
    o = GaussianOracle(QUAD, 0.0, np.random.default_rng(21))
    tr = pzobo.run_pzobo(o, x0, y0, T=1, step_size=alpha, outer_ratio=alpha / beta,
                         n_inner_steps=N, n_directions=Q, smoothing=0.01, record_every=1)
    h = (x0 - tr.x[1]) / beta
    yN = _gd_path(QUAD, x0[0], y0[0], alpha, N)
    J = _matrix_of(lambda e: _gd_path(QUAD, x0[0] + e, y0[0], alpha, N) - yN, QUAD.d_x)
    a = J.T @ QUAD.grad_y_f(x0[0], yN)
    err2 = np.sum((h - QUAD.grad_x_f(x0[0], yN) - a) ** 2, axis=1)
    mean, se = err2.mean(), err2.std(ddof=1) / np.sqrt(R)
    p = QUAD.d_x
    assert abs(mean - (p + 1) * (a @ a) / Q) <= 5 * se
    assert abs(mean - p * (a @ a) / Q) > 5 * se  # negative control rejected


def test_pzobo_counts_gradients_only():
    """X3: per iteration N(Q + 1) ∇_y G, one ∇_y F, one ∇_x F and no HVP, JVP or ∇_x G
    (docs/baselines.rst §16: Hessian-free), on both oracles."""
    N, Q, T = 4, 3, 5
    for oracle in (GaussianOracle(QUAD, 0.2, np.random.default_rng(0)),
                   FiniteSumOracle(FSQ, 16, np.random.default_rng(0))):
        P = oracle.problem
        tr = pzobo.run_pzobo(oracle, *_start(2, P), T=T, n_inner_steps=N, n_directions=Q)
        want = paper_cumulative_counts("pzobo", tr.params, tr.iterations)
        for kind, c in want.items():
            np.testing.assert_array_equal(tr.counts[kind], c)
        np.testing.assert_array_equal(tr.counts["grad_y_g"], N * (Q + 1) * tr.iterations)
        for kind in ("hvp", "jvp", "grad_x_g", "gen_hvp", "f_u"):
            assert not np.any(tr.counts[kind]), kind


def test_pzobo_default_parameters_converge():
    """solve with mode "default" (constants of the problem) and noise 0: ||∇φ|| falls to
    1e-2 of its start (the matrix criterion), on NumPy."""
    tr = refbilevel.solve("quadratic", "pzobo", problem_params=QUAD_PARAMS, noise=0.0, x0=-2.0,
                          record_every=100)
    g = np.asarray(tr.grad_phi_norm)
    assert g[-1].max() <= 1e-2 * g[0].min()


@pytest.mark.parametrize("kw, match", [
    ({"n_directions": 0}, "n_directions"), ({"smoothing": 0.0}, "smoothing"),
    ({"n_inner_steps": 0}, "n_inner_steps"), ({"outer_exponent": -1.0}, "outer_exponent"),
    ({"mode": "theory"}, "NOT RECOVERED")])
def test_pzobo_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        pzobo.run_pzobo(GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), *_start(1), T=2,
                        **kw)


# ---- ALSET --------------------------------------------------------------------------------------
def test_alset_with_one_inner_step_is_the_ttsa_loop():
    """§17 check (i): with T_ll = 1, constant steps, the randomized estimator and the same
    samples (GaussianOracle: TTSA draws every sample fresh too, in the same order), ALSET
    and TTSA's loop (§3, exponents (0, 0), η = s) give identical iterates — bit for bit, the
    same operations. Negative control: T_ll = 2 gives another trajectory."""
    x0, y0 = _start(3)
    kw = {"step_size": 0.08, "outer_ratio": 1.5, "n_hia_steps": 7}
    ref = ttsa.run_ttsa(GaussianOracle(QUAD, 0.3, np.random.default_rng(4)), x0, y0, T=50,
                        exponents=(0.0, 0.0), **kw)
    got = alset.run_alset(GaussianOracle(QUAD, 0.3, np.random.default_rng(4)), x0, y0, T=50,
                          neumann_step=0.08, **kw)
    np.testing.assert_array_equal(got.x, ref.x)
    np.testing.assert_array_equal(got.extra["hia_p"], ref.extra["hia_p"])
    other = alset.run_alset(GaussianOracle(QUAD, 0.3, np.random.default_rng(4)), x0, y0,
                            T=50, neumann_step=0.08, n_inner_steps=2, **kw)
    assert _rel(other.x[-1], ref.x[-1]) > 1e-3


def test_alset_fixed_neumann_is_the_mean_of_the_randomized_one():
    """§17 check (ii) at full batch: the randomized estimate N η (I − ηH)^{N'} w with
    N' ~ U{0..N−1} has mean η Σ_{q<N} (I − ηH)^q w = the fixed-length estimate, computed
    here from H's matrix (exact oracle)."""
    N, eta = 9, 0.07
    o = GaussianOracle(QUAD, 0.0, np.random.default_rng(0))
    x, y = _start(1)
    w = QUAD.grad_y_f(x, y)
    got = alset.fixed_neumann(o, x, y, w, N, eta, np.zeros(1, dtype=bool))
    H = _matrix_of(lambda e: QUAD.hvp_yy_g(x[0], y[0], e), QUAD.d_y)
    M = np.eye(QUAD.d_y) - eta * H
    mean = sum(N * eta * np.linalg.matrix_power(M, p) @ w[0] for p in range(N)) / N
    assert _rel(got[0], mean) <= 1e-12
    assert o.counts.hvp == N - 1


@pytest.mark.parametrize("neumann", ["randomized", "fixed"])
def test_alset_counts(neumann):
    """X3: T_ll ∇_y G, one ∇_y F, ∇_x F, JVP; N' HVPs (randomized: the realized N', max over
    the replicas) or N − 1 (fixed)."""
    o = GaussianOracle(QUAD, 0.2, np.random.default_rng(1))
    tr = alset.run_alset(o, *_start(2), T=6, n_inner_steps=3, n_hia_steps=5, neumann=neumann)
    want = paper_cumulative_counts("alset", tr.params, tr.iterations, tr.extra.get("hia_p"))
    for kind, c in want.items():
        np.testing.assert_array_equal(tr.counts[kind], c)
    if neumann == "fixed":
        np.testing.assert_array_equal(tr.counts["hvp"], 4 * tr.iterations)


def test_alset_default_parameters_converge():
    tr = refbilevel.solve("quadratic", "alset", problem_params=QUAD_PARAMS, noise=0.0, x0=-2.0,
                          record_every=100)
    g = np.asarray(tr.grad_phi_norm)
    assert g[-1].max() <= 1e-2 * g[0].min()


@pytest.mark.parametrize("kw, match", [
    ({"neumann": "exact"}, "neumann must be one of"), ({"n_inner_steps": 0}, "n_inner_steps"),
    ({"neumann_step": -1.0}, "neumann_step"), ({"mode": "theory"}, "NOT RECOVERED")])
def test_alset_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        alset.run_alset(GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), *_start(1), T=2,
                        **kw)


def test_alset_theory_mode_uses_the_stated_orders():
    tr = alset.run_alset(GaussianOracle(QUAD, 0.1, np.random.default_rng(0)), *_start(1), T=100,
                         mode="theory",
                         theory_constants={"c_alpha": 0.5, "c_beta": 2.0, "c_N": 3.0})
    assert tr.params["outer_step"] == pytest.approx(0.05)
    assert tr.params["lower_step"] == pytest.approx(0.1)
    assert tr.params["n_hia_steps"] == int(np.ceil(3.0 * np.log(101)))
    assert tr.params["eta"] == pytest.approx(1.0 / B.problem_constant(
        GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), "L_y", "ALSET", "§17"))


# ---- FSLA ---------------------------------------------------------------------------------------
def test_fsla_with_x_frozen_tracks_the_lower_level_and_linear_system():
    """§15 check (i): with x frozen (γ = 1e-300) and exact oracles, (y, v) → (y*(x),
    [∇²_yy g]^{-1}∇_y f(x, y*)) with constant ρ = 1/L_y (contraction 1 − μ/L_y = 0.7 per
    step: 300 steps leave 1e-46 of the start, so the tolerance 1e-10 is rounding)."""
    x0, y0 = _start(2)
    tr = fsla.run_fsla(GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), x0, y0, T=300,
                       step_size=0.1, outer_ratio=1e299, exponents=(0.0, 0.0))
    for r in range(2):
        ys = QUAD.y_star(x0[r])
        H = _matrix_of(lambda e, r=r, ys=ys: QUAD.hvp_yy_g(x0[r], ys, e), QUAD.d_y)
        z = np.linalg.solve(H, QUAD.grad_y_f(x0[r], ys))
        assert tr.y_error[-1][r] <= 1e-10
        assert _rel(tr.extra["v"][r], z) <= 1e-10


def test_fsla_full_batch_momentum_is_exact_with_the_plain_start():
    """§15 check (ii): at full batch ν'_t = ν_{t−1}, so the tracker error obeys
    e_t = (1 − a_t) e_{t−1}; with ``init_memory="plain"`` e_1 = 0 and FSLA coincides with its
    a ≡ 1 version for any momentum (to rounding: 1e-12). Negative controls: the benchmark's
    start (d_0 = 0, x_p = 0) adds −(1 − s)∇_x F(0, y_1) and differs; with noise the momentum
    changes the trajectory."""
    x0, y0 = _start(2)

    def run(noise, **kw):
        return fsla.run_fsla(GaussianOracle(QUAD, noise, np.random.default_rng(3)), x0, y0,
                             T=60, step_size=0.05, exponents=(0.0, 0.0), **kw)

    plain = run(0.0, momentum=1.0)
    assert _rel(run(0.0, momentum=0.3).x, plain.x) <= 1e-12
    assert _rel(run(0.0, momentum=0.3, init_memory="zero").x, plain.x) > 1e-3
    assert _rel(run(0.5, momentum=0.3).x, run(0.5, momentum=1.0).x) > 1e-3


def test_fsla_counts():
    """X3: per iteration ∇_y G 1, HVP 1, ∇_y F 1, ∇_x F 2, JVP 2 (§15 CODE), both oracles;
    5 samples per iteration (the coupled pair shares its two)."""
    for oracle in (GaussianOracle(QUAD, 0.2, np.random.default_rng(0)),
                   FiniteSumOracle(FSQ, 16, np.random.default_rng(0))):
        tr = fsla.run_fsla(oracle, *_start(2, oracle.problem), T=7)
        want = paper_cumulative_counts("fsla", tr.params, tr.iterations)
        for kind, c in want.items():
            np.testing.assert_array_equal(tr.counts[kind], c)
        np.testing.assert_array_equal(tr.counts["samples"], 5 * tr.iterations)


def test_fsla_default_parameters_converge():
    tr = refbilevel.solve("quadratic", "fsla", problem_params=QUAD_PARAMS, noise=0.0, x0=-2.0,
                          record_every=100)
    g = np.asarray(tr.grad_phi_norm)
    assert g[-1].max() <= 1e-2 * g[0].min()


@pytest.mark.parametrize("kw, match", [
    ({"momentum": 1.5}, "momentum"), ({"step_size": 2.0}, "momentum"),
    ({"init_memory": "warm"}, "init_memory must be one of"), ({"mode": "theory"}, "NOT RECOVERED"),
    ({"exponents": (0.5,)}, "exponents")])
def test_fsla_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        fsla.run_fsla(GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), *_start(1), T=2, **kw)


# ---- NumPy ↔ Numba ------------------------------------------------------------------------------
PARITY_CASES = {
    "pzobo": {"n_inner_steps": 4, "n_directions": 3, "outer_exponent": 1.0,
              "outer_decay_start": 5.0},
    "alset": {"n_inner_steps": 2, "n_hia_steps": 6},
    "alset-fixed": {"n_inner_steps": 2, "n_hia_steps": 6, "neumann": "fixed"},
    "fsla": {"momentum": 0.6},
    "fsla-zero": {"init_memory": "zero", "exponents": (0.0, 0.3)},
}


def _oracles(kind, seed):
    if kind == "gaussian":
        return GaussianOracle(QUAD, 0.2, np.random.default_rng(seed))
    return FiniteSumOracle(FSQ, 16, np.random.default_rng(seed), sampler=kind)


@pytest.mark.numba
@pytest.mark.parametrize("oracle", ["gaussian", "uniform", "shuffled"])
@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_numba_matches_numpy(case, oracle):
    """X4: same Generator → same iterates (≤ 1e-12 relative: the kernels run the same
    operations, sums in another order), counts, divergence records and random numbers."""
    name, kw = case.split("-")[0], PARITY_CASES[case]
    P = QUAD if oracle == "gaussian" else FSQ
    x0, y0 = _start(3, P)
    o_ref, o = _oracles(oracle, 5), _oracles(oracle, 5)
    ref = implementation("algorithm", name, "numpy")(o_ref, x0, y0, T=40, record_every=10, **kw)
    got = implementation("algorithm", name, "numba")(o, x0, y0, T=40, record_every=10, **kw)
    assert got.backend == "numba"
    assert _rel(got.x, ref.x) <= 1e-12
    for k in ref.counts:
        np.testing.assert_array_equal(got.counts[k], ref.counts[k])
    np.testing.assert_array_equal(got.diverged_at, ref.diverged_at)
    assert o.rng.bit_generator.state == o_ref.rng.bit_generator.state


@pytest.mark.numba
def test_pzobo_numba_matches_numpy_on_the_full_batch():
    """X4 on the matrix's finite-sum oracle (noise 0: one batch of all 256 samples), where
    the kernel evaluates each replica's Q + 1 paths together (``rows_grad_y_g``)."""
    from refbilevel.solver import full_batch_oracle

    kw = PARITY_CASES["pzobo"]
    x0, y0 = _start(2, FSQ)
    o_ref = full_batch_oracle(FSQ, np.random.default_rng(7))
    o = full_batch_oracle(FSQ, np.random.default_rng(7))
    ref = implementation("algorithm", "pzobo", "numpy")(o_ref, x0, y0, T=20, record_every=5, **kw)
    got = implementation("algorithm", "pzobo", "numba")(o, x0, y0, T=20, record_every=5, **kw)
    assert _rel(got.x, ref.x) <= 1e-12
    for k in ref.counts:
        np.testing.assert_array_equal(got.counts[k], ref.counts[k])
    assert o.rng.bit_generator.state == o_ref.rng.bit_generator.state


@pytest.mark.parametrize("problem", ["quadratic", "finite-sum-quadratic"])
def test_pzobo_defaults_meet_their_stated_conditions(problem):
    """pzobo._default_options' docstring: α = 1/L_y, (1 − 1/κ)^N <= DEFAULT_BIAS, the outer
    step β = 1/(2L_φ) < 1/L_φ, and β_k m_φ k -> 1 (k_0 = 1/(β m_φ), SGD's 1/(m k) step)."""
    from refbilevel.solver import prepare
    from refbilevel.solver_record import StepConstants

    _, prob, _, opts = prepare(problem, "pzobo", noise=0.0)
    sc = StepConstants.of(prob)
    assert opts["step_size"] == pytest.approx(1.0 / sc.L_y, rel=1e-12)
    assert (1.0 - 1.0 / sc.kappa) ** opts["n_inner_steps"] <= pzobo.DEFAULT_BIAS
    beta = opts["step_size"] / opts["outer_ratio"]
    assert beta == pytest.approx(0.5 / sc.L_phi, rel=1e-12)
    k = 1e9
    params = pzobo.pzobo_params("tuned", opts["step_size"], opts["outer_ratio"],
                                opts["n_inner_steps"], opts["n_directions"], opts["smoothing"],
                                opts["outer_exponent"], opts["outer_decay_start"])
    assert pzobo.outer_step(params, int(k)) * sc.m_phi * k == pytest.approx(1.0, rel=1e-6)
