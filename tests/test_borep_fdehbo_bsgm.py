"""BO-REP, FdeHBO/FMBO and BSGM: claims B1-B3, F2, S5, X3 for these algorithms, the
suggested unit tests of docs/fdehbo.rst §10.3 (1-5) and convergence; Numba parity (X4).

Statistical tests (fixed seeds, so CI is deterministic; the stated rates say how often a
*correct* implementation would fail with a fresh seed):

* F2 slopes: the fitted log-log slope of the prefix average of ||∇Φ||² is estimated from 64
  replicas in 8 groups; the test asserts slope ≤ −2/3 + 0.1. With seed 0 the slopes are
  −0.64 (FMBO) and −0.72 (FdeHBO; its finite differences cancel the additive HVP/JVP noise)
  with group standard errors ≤ 0.009, i.e. ≥ 8 standard errors inside the threshold (normal
  tail < 1e-15); the non-momentum control (−0.41, SE 0.006) is ≥ 25 standard errors
  outside. Rate ≤ 1e-3 (Bonferroni over the 3 comparisons).
* §10.3 test 5 (variance ratios of STORM errors over 32 replicas × 200 iterations): the
  ratios (≈ 0.1 for correct sample reuse, ≈ 10 for fresh samples) are ≥ 5 standard errors
  from the thresholds 0.5 / 2; rate < 1e-6.
* B2: BO-REP's tail average ||∇Φ|| is ≈ 1.1 against ε = 2 on 4 replicas, whose
  replica-to-replica sd is ≈ 0.1 (≥ 9 sd margin); the overflow of the comparators is
  deterministic in practice (||∇Φ(x_0)|| = 9.1e3, the first step of size 0.02·9e3 already
  leaves the float range within a few iterations).
* S5 is pathwise (an inequality on every realization, no false positives).
Everything else is exact (rounding tolerances stated in place).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refbilevel.algorithms.borep import (
    BOREPParams,
    BOREPTheoryConstants,
    borep,
    borep_oracle_budget,
    borep_oracle_counts,
    borep_params,
    borep_theory_schedule,
    light_tail_sigma,
)
from refbilevel.algorithms.bsgm import (
    Ball,
    Box,
    bsgm,
    bsgm_schedule,
    bsgm_total_samples,
    constrained_minimum,
    proximal_gradient_mapping,
)
from refbilevel.algorithms.fdehbo import (
    StormSchedule,
    fdehbo,
    storm_bilevel,
    storm_total_counts,
    theorem1_delta_bound,
)
from refbilevel.algorithms.fmbo import fmbo
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.problems.contraction import golden_instance
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2
from refbilevel.projection import project_ball
from refbilevel.randomness import named_stream
from theory_checks import b2_borep_vs_baselines as b2_check
from theory_checks import b3_borep_complexity as b3_check
from theory_checks import f2_fdehbo_rate as f2_check

P1 = RelaxedSmoothP1()
P1_SINE = RelaxedSmoothP1(variant="sine")
P2 = RelaxedSmoothP2()
PHI_STAR = {"P1": 14.7260868455, "P2": 3.1324348957}  # docs/borep.rst §8
ROUND = 1e-9  # float64 rounding allowance in the closed-form inequalities


def quad_1010():
    """The well-conditioned §10.1 instance used by F2 (f2_fdehbo_rate.problem)."""
    return f2_check.problem()


# ============================ B1: relaxed smoothness of P1, P2 ================================
finite = st.floats(-6.0, 6.0, allow_nan=False)


def _vec(d):
    return st.lists(finite, min_size=d, max_size=d).map(np.array)


def _unit(d):
    return st.lists(st.floats(-1, 1), min_size=d, max_size=d).map(np.array).filter(
        lambda u: np.linalg.norm(u) > 1e-3).map(lambda u: u / np.linalg.norm(u))


@pytest.mark.parametrize("P", [P1, P1_SINE, P2], ids=["P1", "P1-sine", "P2"])
@given(data=st.data())
def test_b1_assumption1_holds_with_stated_constants(P, data):
    """docs/borep.rst §2 Assumption 1 with the §8 constants, ||w − w'|| ≤ r_f, factor at w."""
    ex = P.constants.extra
    d = P.d_x + P.d_y
    w = data.draw(_vec(d))
    u = data.draw(_unit(d))
    r = data.draw(st.floats(1e-6, 1.0)) * ex["r_f"]
    w2 = w + r * u
    x, y, x2, y2 = w[:P.d_x], w[P.d_x:], w2[:P.d_x], w2[P.d_x:]
    gx, gx2 = P.grad_x_f(x, y), P.grad_x_f(x2, y2)
    gy, gy2 = P.grad_y_f(x, y), P.grad_y_f(x2, y2)
    lhs_x = np.linalg.norm(gx - gx2)
    lhs_y = np.linalg.norm(gy - gy2)
    assert lhs_x <= (ex["L_x0"] + ex["L_x1"] * np.linalg.norm(gx)) * r * (1 + ROUND) + ROUND
    assert lhs_y <= (ex["L_y0"] + ex["L_y1"] * np.linalg.norm(gy)) * r * (1 + ROUND) + ROUND


@pytest.mark.parametrize("P", [P1, P1_SINE, P2], ids=["P1", "P1-sine", "P2"])
@given(data=st.data())
def test_b1_phi_relaxed_smooth_hessian_and_derived_forms(P, data):
    """Hessian form ||∇²Φ|| ≤ L_0 + L_1||∇Φ|| (docs/borep.rst §8) and the DERIVED (L_0, L_1, r_Φ)
    of the §2 remark: ||∇Φ(x) − ∇Φ(x')|| ≤ (L_0 + L_1||∇Φ(x)||)||x − x'||, ||x − x'|| ≤ r_Φ."""
    ex = P.constants.extra
    x = data.draw(_vec(P.d_x))
    u = data.draw(_unit(P.d_x))
    r = data.draw(st.floats(1e-6, 1.0)) * ex["r_phi"]
    g = P.grad_phi(x)
    hess = np.linalg.norm(P.hessian_phi(x), 2)
    assert hess <= (ex["L0_phi_hessian"] + ex["L1_phi_hessian"] * np.linalg.norm(g)) * (1 + ROUND)
    lhs = np.linalg.norm(P.grad_phi(x + r * u) - g)
    assert lhs <= (ex["L0_phi_relaxed"] + ex["L1_phi_relaxed"] * np.linalg.norm(g)) * r * (
        1 + ROUND)


@pytest.mark.parametrize("P", [P1, P1_SINE, P2], ids=["P1", "P1-sine", "P2"])
def test_b1_not_L_smooth_but_ratio_bounded(P):
    """||∇²Φ(s·1)|| grows without bound (> 100 × its value at 0 by s = 10), while
    ||∇²Φ||/(L_0 + L_1||∇Φ||) ≤ 1 (docs/borep.rst §8 checks: 7.9e3 on P1, 3.0e2 on P2)."""
    ex = P.constants.extra
    s = np.linspace(0, 10, 41)
    X = s[:, None] * np.ones(P.d_x)
    H = np.linalg.norm(P.hessian_phi(X), 2, axis=(-2, -1))
    G = np.linalg.norm(P.grad_phi(X), axis=-1)
    assert H[-1] > 100 * H[0] and H[-1] > 250
    assert np.all(np.diff(H[10:]) > 0)  # monotone growth away from the minimizer region
    assert np.all(H <= ex["L0_phi_hessian"] + ex["L1_phi_hessian"] * G)
    # control: no global L works, and L_1 = 0 (plain L-smoothness with L = L_0) is violated
    assert np.any(H > ex["L0_phi_hessian"])


# ============================ B2: BO-REP vs fixed-step baselines =============================
def test_b2_borep_converges_where_fixed_step_overflows():
    """From x_0 = 9·1 on P1 (||∇Φ(x_0)|| = 9.1e3), σ = 0.1, 3000 iterations, UL step 0.02
    (docs/borep.rst §8 checks): BO-REP's tail average of ||∇Φ|| is below ε = 2, every fixed-step
    comparator overflows, and BO-REP without normalization (control) overflows too."""
    res = b2_check.run_all(R=4, T=3000, seed=0, baselines=("soba",))
    bo = res["borep"]
    assert bo["diverged"] == 0
    assert bo["tail_avg_grad_norm"] <= b2_check.EPS
    for name, r in res["comparators"].items():
        assert r["diverged"] == r["R"], f"{name} did not overflow: {r}"
    assert res["control_unnormalized"]["diverged"] == 4


# ============================ B3: schedule accounting ========================================
def test_b3_accounting_slope_and_control():
    """The §5.3 schedule's exact oracle count has log-log slope 4 (up to logs) in 1/ε; the
    control without periodic updates (I = 1) has slope 6 and is rejected."""
    c = b3_check.constants(P1)
    s, _ = b3_check.slope(c, None)
    sc, _ = b3_check.slope(c, "no_period")
    assert b3_check.slope_ok(s), s
    assert not b3_check.slope_ok(sc), sc
    # orders of §5.2: 1 − β ∝ ε², η ∝ ε³, T ∝ ε^{-4}, I ∝ ε^{-2}
    a, b = borep_theory_schedule(1e-2, c), borep_theory_schedule(1e-3, c)
    assert math.isclose(a.derived["one_minus_beta"] / b.derived["one_minus_beta"], 100,
                        rel_tol=1e-9)
    assert math.isclose(a.params.eta / b.params.eta, 1e3, rel_tol=1e-9)
    assert 1e4 * 0.99 < b.params.T / a.params.T < 1e4 * 1.01
    assert 100 * 0.98 < b.params.I / a.params.I < 100 * 1.02


def test_b3_budget_is_the_run_count():
    """borep_oracle_counts (the budget's accounting) equals a real run's counters (X3)."""
    p = BOREPParams(T=57, eta=0.02, beta=0.9, I=7, N=3, gamma=0.1, nu=0.2, R_ball=5, rho=6,
                    epoch_k=3, epoch_T1=4, epoch_theta1=0.5, epoch_D1=20)
    o = GaussianOracle(P2, NoiseConfig.uniform(0.1), named_stream(0, "b3/x3"))
    tr = borep(o, np.ones(P2.d_x), np.zeros(P2.d_y), params=p)
    want = borep_oracle_counts(p)
    got = o.counts.as_dict()
    for k, v in want.items():
        assert got[k] == v, k
    assert (got["grad_y_g"] == (56 // 7) * 3 + 4 * (1 + 2 + 4))
    assert tr.counts["hvp"][-1] == 57 and tr.extra["n_lower_updates"] == 8
    c = b3_check.constants(P2)
    assert borep_oracle_budget(0.05, c) == borep_oracle_counts(
        borep_theory_schedule(0.05, c).params)["samples"]


# ============================ BO-REP unit tests ==============================================
def test_borep_tuned_defaults_and_validation():
    p = borep_params(P1)
    assert (p.eta, p.beta, p.I, p.N, p.gamma, p.nu, p.R_ball) == (0.02, 0.9, 10, 20, 0.1, 0.2, 5)
    assert (p.epoch_k, p.epoch_T1, p.epoch_theta1, p.epoch_D1, p.T) == (6, 20, 0.5, 20.0, 3000)
    assert math.isclose(p.rho, P1.constants.extra["l_f0"] / P1.constants.mu)
    with pytest.raises(ValueError, match="beta"):
        borep_params(P1, beta=1.0)
    with pytest.raises(ValueError, match="mode"):
        borep_params(P1, mode="fast")
    with pytest.raises(ValueError, match="eps"):
        borep_params(P1, mode="theory")
    with pytest.raises(ValueError, match="delta"):
        BOREPTheoryConstants(**{**b3_check.constants(P1).__dict__, "delta": 1.5})
    # the light-tail constant: E exp(||n||²/σ²) = e exactly at σ = light_tail_sigma
    s = light_tail_sigma(0.3, 4)
    assert math.isclose((1 - 2 * 0.09 / s**2) ** (-2), math.e, rel_tol=1e-12)


def test_borep_normalized_step_and_deterministic_convergence():
    """Every x-step has length η exactly (docs/borep.rst §4 line 6); with exact oracles BO-REP
    from x_0 = 1 on P2 reaches ||∇Φ|| ≤ 0.1 (the fixed-η floor is O(η L))."""
    o = GaussianOracle(P2, 0.0, np.random.default_rng(0))
    tr = borep(o, np.ones((2, P2.d_x)), np.zeros(P2.d_y), T=1500, eta=0.005)
    steps = np.linalg.norm(np.diff(tr.x, axis=0), axis=-1)
    assert np.allclose(steps, 0.005, rtol=1e-9)
    assert tr.grad_phi_norm[-300:].mean() < 0.1
    assert np.all(tr.extra["y_init_error"] < 1e-6)  # Epoch-SGD, exact gradients


# ============================ F2: T^{-2/3} rate ==============================================
@pytest.mark.parametrize("variant", ["fmbo", "fdehbo"])
def test_f2_rate_slope(variant):
    out = f2_check.rate_slope(variant, momentum=True, R=64, T=2000, seed=0)
    assert out["slope"] <= -2 / 3 + f2_check.TOL, out


def test_f2_control_without_momentum_is_rejected():
    out = f2_check.rate_slope("fmbo", momentum=False, R=64, T=2000, seed=0)
    assert out["slope"] > -2 / 3 + f2_check.TOL, out


# ============================ docs/fdehbo.rst §10.3 tests
# ===========================================
@pytest.mark.parametrize("delta", [1e-6, 1e-3, 1.0])
def test_fdehbo_equals_fmbo_on_quadratic_g(delta):
    """§10.3 test 1: quadratic g, identical samples (only the upper level is noisy, so both
    variants draw the same streams): iterates agree to rtol 1e-9 for δ ∈ [1e-6, 1]."""
    P = quad_1010()
    sch = f2_check.SCHEDULE
    noise = NoiseConfig.levels(upper=0.5)
    x0, y0 = np.tile([2.0, -1.0, 0.5], (3, 1)), np.zeros(P.d_y)
    a = fdehbo(GaussianOracle(P, noise, named_stream(1, "t1")), x0, y0, T=400, schedule=sch,
               delta=delta, r_v=20)
    b = fmbo(GaussianOracle(P, noise, named_stream(1, "t1")), x0, y0, T=400, schedule=sch,
             r_v=20)
    assert np.allclose(a.x, b.x, rtol=1e-9, atol=1e-9 * np.abs(b.x).max())
    assert np.allclose(a.extra["v_final"], b.extra["v_final"], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("variant", ["fmbo", "fdehbo"])
@pytest.mark.parametrize("momentum,c_eta", [(True, 0.3), (True, 3.0), (False, 1.0)])
def test_storm_estimators_exact_when_deterministic(variant, momentum, c_eta):
    """§10.3 test 2: with exact oracles every STORM estimator equals the exact gradient at
    every t, whatever η_t (h_0 exact) — errors at rounding level (FD: eps/δ)."""
    P = quad_1010()
    sch = StormSchedule(w=8, c_beta=1, c_lambda=1, c_eta_f=c_eta, c_eta_R=c_eta,
                        c_eta_g=c_eta, momentum=momentum)
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    tr = storm_bilevel(o, np.ones((2, 3)), np.zeros(P.d_y), T=200, schedule=sch,
                       variant=variant, r_v=20, diagnostics=True)
    tol = 1e-20 if variant == "fmbo" else 1e-18  # squared errors; FD rounding ~ (eps/δ)²
    for k in ("err_g", "err_R", "err_f"):
        assert tr.extra[k].max() <= tol, (k, tr.extra[k].max())


def test_projection_bound_and_eventually_inactive():
    """§10.3 test 3: ||v_t|| ≤ r_v(1 + 1e-12) always; with r_v > ||v*|| at the limit and
    exact oracles the projection is active early and inactive at the end."""
    P = quad_1010()
    x_lim = np.linalg.solve(P.hessian_phi(np.zeros(3)), -P.grad_phi(np.zeros(3)))
    v_star = np.linalg.norm(P.solve_hessian_yy(x_lim, P.y_star(x_lim),
                                               P.grad_y_f(x_lim, P.y_star(x_lim))))
    x0 = np.full((1, 3), 20.0)
    free = fmbo(GaussianOracle(P, 0.0, np.random.default_rng(0)), x0, np.zeros(P.d_y), T=200,
                schedule=f2_check.SCHEDULE, r_v=1e6)
    assert free.extra["v_norm_max"] > 1.5 * v_star  # the unconstrained path leaves the ball
    r_v = 0.5 * (v_star + free.extra["v_norm_max"])  # > ||v*|| at the limit, < path max
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    tr = fmbo(o, x0, np.zeros(P.d_y), T=3000, schedule=f2_check.SCHEDULE, r_v=r_v)
    assert tr.extra["v_norm_max"] <= r_v * (1 + 1e-12)
    assert math.isclose(tr.extra["v_norm_max"], r_v, rel_tol=1e-12)  # active at some t
    assert np.linalg.norm(tr.extra["v_final"]) < r_v * (1 - 1e-3)  # inactive at the end
    assert tr.grad_phi_norm[-1, 0] < 1e-4
    # stochastic run: the bound holds at every t (v_norm_max is the max over the run)
    o = GaussianOracle(P, NoiseConfig.uniform(1.0), named_stream(2, "t3"))
    tr = fdehbo(o, np.full((8, 3), 6.0), np.zeros(P.d_y), T=300, schedule=f2_check.SCHEDULE,
                r_v=0.5)
    assert tr.extra["v_norm_max"] <= 0.5 * (1 + 1e-12)
    w = np.array([[3.0, 4.0], [0.3, 0.4]])
    assert np.allclose(project_ball(w, 1.0), [[0.6, 0.8], [0.3, 0.4]])


def test_schedule_generator():
    """§10.3 test 4: α_t = (w+t)^{-1/3}, β = c_β α, λ = c_λ α, η = c_η α² ≤ 1, η_0 = 1; δ at
    most Theorem 1's bound; inadmissible constants raise ValueError naming them."""
    sch = StormSchedule.tuned()
    a = sch.arrays(5000)
    t = np.arange(5000)
    assert np.allclose(a["alpha"], (1e5 + t) ** (-1 / 3), rtol=1e-15)
    assert np.allclose(a["beta"], 10 * a["alpha"]) and np.allclose(a["lambda"], 10 * a["alpha"])
    for k in ("eta_f", "eta_R", "eta_g"):
        assert a[k][0] == 1.0 and np.allclose(a[k][1:], 1e3 * a["alpha"][1:] ** 2)
        assert np.all((a[k] > 0) & (a[k] <= 1))
    bound = theorem1_delta_bound(sch, L=2.0, r_v=3.0, T=5000)
    assert math.isclose(bound, 1e3 / (8 * 2.0 * 9.0 * (1e5 + 4999) ** (2 / 3)))
    assert theorem1_delta_bound(sch, L=0.0, r_v=3.0, T=10) == math.inf
    with pytest.raises(ValueError, match="c_eta"):
        StormSchedule(w=10, c_beta=1, c_lambda=1, c_eta_f=100, c_eta_R=1, c_eta_g=1)
    with pytest.raises(ValueError, match="w"):
        StormSchedule(w=0, c_beta=1, c_lambda=1, c_eta_f=1, c_eta_R=1, c_eta_g=1)
    assert np.all(StormSchedule.tuned(momentum=False).arrays(10)["eta_f"] == 1.0)


class _FreshNoiseOracle(GaussianOracle):
    """Test double that VIOLATES sample reuse: every evaluation draws fresh noise, ignoring
    the sample it is given (what an algorithm that re-sampled its STORM corrections would
    see)."""

    def _noisy(self, kind, exact, sample):
        return super()._noisy(kind, exact, None)


def test_storm_corrections_reuse_the_sample():
    """§10.3 test 5: with additive noise and the SAME sample at both points, the STORM
    correction is noise-free, so E||e_t||² ≈ η σ²/(2−η) shrinks as η → 0; a test double that
    draws fresh noise per evaluation makes the error a random walk that does NOT shrink."""
    P = quad_1010()

    def err(oracle_cls, c_eta):
        sch = StormSchedule(w=1000, c_beta=1, c_lambda=1, c_eta_f=c_eta, c_eta_R=c_eta,
                            c_eta_g=c_eta)
        o = oracle_cls(P, NoiseConfig.uniform(1.0), named_stream(5, "t5"))
        tr = storm_bilevel(o, np.ones((32, 3)), np.zeros(P.d_y), T=200, schedule=sch,
                           variant="fmbo", r_v=50, diagnostics=True)
        return tr.extra["err_f"][100:].mean()

    good = err(GaussianOracle, 10.0) / err(GaussianOracle, 100.0)
    bad = err(_FreshNoiseOracle, 10.0) / err(_FreshNoiseOracle, 100.0)
    assert good < 0.5, good  # η 10× smaller: error ≈ 10× smaller
    assert bad > 2.0, bad  # violation detected: error grows as η shrinks


# ============================ S5: Corollary 13' on every path =================================
@pytest.mark.parametrize("box", [Box(-1, 1), Box(0, 1)], ids=["[-1,1]^2", "[0,1]^2"])
@pytest.mark.parametrize("schedule", ["finite", "increasing"])
def test_s5_corollary13_every_path(box, schedule):
    """docs/sid_bsgm.rst §14.4: λ_0 = (0.9, 0.9), α = 1/L_f, T = 60: the Corollary 13' inequality
    holds on every path; with the right side divided by 10 (control) it fails on ≥ 1 path
    of the finite-horizon runs (§14.4 left sides 1.5-2.1 vs right sides/10 ≈ 1.1-1.4)."""
    g = golden_instance()
    _, f_star = constrained_minimum(g.problem, box, [0.9, 0.9])
    o = ContractionOracle(g.problem, named_stream(0, f"s5/{schedule}"))
    tr = bsgm(o, [0.9, 0.9], 60, schedule=schedule, constraint=box, replicas=6)
    c = tr.corollary13(f_star)
    assert np.all(c["margin"] > 0), c
    if schedule == "finite":
        assert np.any(tr.corollary13(f_star, scale=0.1)["margin"] < 0)


def test_s5_reference_minima_and_mapping():
    g = golden_instance()
    lam, f = constrained_minimum(g.problem, Box(-1, 1), [0.9, 0.9])
    assert np.allclose(lam, [-0.26988676, -0.19759618], atol=1e-8)
    assert math.isclose(f, -0.3852754743919768, rel_tol=1e-12)
    lam, f = constrained_minimum(g.problem, Box(0, 1), [0.9, 0.9])
    assert np.allclose(lam, [0.0, 0.0063471], atol=1e-7)
    assert math.isclose(f, -0.010327043387591923, rel_tol=1e-10)
    # G_α = ∇f without constraint; zero at the constrained minimizer
    L = g.problem.constants.extra["L_f"]
    x = np.array([0.3, -0.2])
    assert np.allclose(proximal_gradient_mapping(g.problem, x, 1 / L), g.problem.grad_f(x))
    assert np.linalg.norm(proximal_gradient_mapping(g.problem, lam, 1 / L, Box(0, 1))) < 1e-9
    assert np.allclose(Ball([0, 0], 1.0).project(np.array([[3.0, 4.0]])), [[0.6, 0.8]])


# ============================ X3: oracle counts ==============================================
@pytest.mark.parametrize("variant", ["fdehbo", "fmbo"])
def test_x3_storm_counts(variant):
    P = quad_1010()
    o = GaussianOracle(P, NoiseConfig.uniform(0.2), named_stream(0, "x3"))
    tr = storm_bilevel(o, np.ones((3, 3)), np.zeros(P.d_y), T=17, schedule=f2_check.SCHEDULE,
                       variant=variant, r_v=5)
    want = storm_total_counts(variant, 17)
    got = o.counts.as_dict()
    assert all(got[k] == v for k, v in want.items())
    per = {"fdehbo": {"grad_y_g": 6, "grad_x_g": 4, "grad_y_f": 2, "grad_x_f": 2},
           "fmbo": {"grad_y_g": 2, "hvp": 2, "jvp": 2, "grad_y_f": 2, "grad_x_f": 2}}[variant]
    for k, v in per.items():  # docs/fdehbo.rst §3: per iteration t ≥ 1 (half at t = 0)
        assert got[k] == v * 16 + v // 2
    assert got["samples"] == 5 * 17
    assert np.all(np.diff(tr.counts["grad_x_f"]) > 0)


@pytest.mark.parametrize("schedule,T,want", [("finite", 7, 4 * 49), ("increasing", 7, 2 * 56)])
def test_x3_bsgm_samples(schedule, T, want):
    """Definition 15: Σ(t_s + k_s + 2J_s) = 4T² (finite) and 2T(T+1) (increasing); the
    oracle's ζ/ξ counters agree (one SID call = t+k+J ζ and J ξ, docs/sid_bsgm.rst §4.2)."""
    g = golden_instance()
    o = ContractionOracle(g.problem, named_stream(0, "x3b"))
    tr = bsgm(o, [0.9, 0.9], T, schedule=schedule, constraint=Box(-1, 1), replicas=2)
    assert tr.samples[-1] == want == bsgm_total_samples(schedule, T)
    assert o.counts.samples == want
    assert tr.counts["vjp_lam"] == o.counts.xi  # J per call each
    q = g.problem.q
    assert [bsgm_schedule("deterministic", s, 10, q)[0] for s in range(4)] == [
        0, math.ceil(math.log(2) / math.log(1 / q)), math.ceil(math.log(3) / math.log(1 / q)),
        math.ceil(math.log(4) / math.log(1 / q))]


def test_bsgm_deterministic_converges_and_validates():
    """Theorem 17': noise-free oracle, J = 1, η = 1, t_s = ⌈log(s+1)/log(1/q)⌉: ||G_α||² → 0
    ||Δ_s|| ≤ C/(s+1) makes ||G_α(λ_s)||² decay like 1/s² (≤ 1e-5 at s = 300, and ≤ 5% of
    its value at s = 30)."""
    g = golden_instance()
    P = g.problem
    from refbilevel.problems.contraction import LinearContraction

    Pd = LinearContraction(P.A, P.B, P.c, P.P, P.Q, P.S, P.p, P.s)
    o = ContractionOracle(Pd, np.random.default_rng(0))
    tr = bsgm(o, [0.9, 0.9], 300, schedule="deterministic", constraint=Box(-1, 1))
    assert tr.grad_map_sq[-1, 0] < 1e-5
    assert tr.grad_map_sq[-1, 0] < 0.05 * tr.grad_map_sq[30, 0]
    assert tr.samples[-1] == sum(2 * t + 2 for t, _, _ in tr.extra["schedule_tkJ"])
    with pytest.raises(ValueError, match="schedule"):
        bsgm(o, [0.9, 0.9], 3, schedule="weekly")
    with pytest.raises(ValueError, match="alpha"):
        bsgm(o, [0.9, 0.9], 3, alpha=-1.0)
    with pytest.raises(ValueError, match="radius"):
        Ball([0, 0], -1.0)


def test_fdehbo_deterministic_convergence_and_validation():
    P = quad_1010()
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    tr = fdehbo(o, np.full((1, 3), 3.0), np.zeros(P.d_y), T=3000, schedule=f2_check.SCHEDULE,
                r_v=20)
    assert tr.grad_phi_norm[-1, 0] ** 2 < 1e-10 < tr.grad_phi_norm[0, 0] ** 2
    with pytest.raises(ValueError, match="delta"):
        fdehbo(o, np.ones(3), np.zeros(P.d_y), T=3, delta=0.0, r_v=1)
    with pytest.raises(ValueError, match="r_v"):
        fdehbo(o, np.ones(3), np.zeros(P.d_y), T=3, v0=np.ones(P.d_y), r_v=0.1)
    with pytest.raises(ValueError, match="oracle"):
        fmbo(object(), np.ones(3), np.zeros(P.d_y), T=3)


# ============================ X4: Numba parity ===============================================
@pytest.mark.numba
@pytest.mark.parametrize("variant", ["fdehbo", "fmbo"])
def test_numba_parity_storm(variant):
    """1000 iterations, same seed: ≤ 1e-12 relative (FdeHBO's FD amplifies rounding by 1/δ)."""
    from refbilevel.backends.registry import implementation

    P = quad_1010()
    x0, y0 = np.tile([2.0, -1.0, 0.5], (4, 1)), np.zeros(P.d_y)
    kw = {"T": 1000, "schedule": f2_check.SCHEDULE, "r_v": 20, "record_every": 10}
    if variant == "fdehbo":
        kw["delta"] = 1e-2
    o1 = GaussianOracle(P, NoiseConfig.uniform(1.0), named_stream(9, "par"))
    o2 = GaussianOracle(P, NoiseConfig.uniform(1.0), named_stream(9, "par"))
    a = implementation("algorithm", variant, "numpy")(o1, x0, y0, **kw)
    b = implementation("algorithm", variant, "numba")(o2, x0, y0, **kw)
    scale = np.abs(a.x).max()
    assert np.max(np.abs(a.x - b.x)) <= 1e-12 * scale
    assert np.allclose(a.grad_phi_norm, b.grad_phi_norm, rtol=1e-10, atol=0)
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    assert o1.counts.as_dict() == o2.counts.as_dict()
    assert o1.rng.standard_normal() == o2.rng.standard_normal()  # same stream consumed


@pytest.mark.numba
def test_numba_parity_storm_divergence_record():
    """A diverging run (steps far too large) is frozen and flagged identically."""
    from refbilevel.algorithms.fdehbo_numba import storm_bilevel_numba

    P = quad_1010()
    sch = StormSchedule(w=1, c_beta=1e120, c_lambda=1, c_eta_f=1, c_eta_R=1, c_eta_g=1)
    args = (np.ones((3, 3)), np.zeros(P.d_y))
    kw = {"T": 20, "schedule": sch, "variant": "fmbo", "r_v": 10.0}
    a = storm_bilevel(GaussianOracle(P, 0.1, named_stream(1, "d")), *args, **kw)
    b = storm_bilevel_numba(GaussianOracle(P, 0.1, named_stream(1, "d")), *args, **kw)
    assert np.all(a.diverged) and np.array_equal(a.diverged_at, b.diverged_at)
    assert np.all(np.isnan(a.x[-1])) and np.all(np.isnan(b.x[-1]))
    assert np.array_equal(np.isnan(a.grad_phi_norm), np.isnan(b.grad_phi_norm))


@pytest.mark.numba
def test_numba_parity_bsgm():
    """BSGM, 1000 outer iterations (the cheap deterministic-schedule SID sizes on the noisy
    golden oracle): same path to ≤ 1e-12 relative, same counts."""
    from refbilevel.algorithms.bsgm_numba import bsgm_numba

    g = golden_instance()
    o1 = ContractionOracle(g.problem, named_stream(4, "bp"))
    o2 = ContractionOracle(g.problem, named_stream(4, "bp"))
    kw = {"schedule": "deterministic", "constraint": Box(-1, 1), "replicas": 2}
    a = bsgm(o1, [0.9, 0.9], 1000, **kw)
    b = bsgm_numba(o2, [0.9, 0.9], 1000, **kw)
    assert np.max(np.abs(a.lam - b.lam)) <= 1e-12 * np.abs(a.lam).max()
    assert a.counts == b.counts


@pytest.mark.numba
@pytest.mark.parametrize("P,x0,normalize", [(P1, 9.0, True), (P1, 9.0, False),
                                             (P1_SINE, 2.0, True), (P2, 1.0, True)],
                         ids=["P1", "P1-unnormalized-diverges", "P1-sine", "P2"])
def test_numba_parity_borep(P, x0, normalize):
    """BO-REP, 1000 iterations (after Epoch-SGD), same seed: ≤ 1e-12 relative, same
    divergence record, counts and random-number consumption."""
    from refbilevel.algorithms.borep_numba import borep_numba

    xs, ys = np.full((3, P.d_x), x0), np.zeros(P.d_y)
    o1 = GaussianOracle(P, NoiseConfig.uniform(0.1), named_stream(2, "bp"))
    o2 = GaussianOracle(P, NoiseConfig.uniform(0.1), named_stream(2, "bp"))
    a = borep(o1, xs, ys, T=1000, normalize=normalize)
    b = borep_numba(o2, xs, ys, T=1000, normalize=normalize)
    fin = np.isfinite(a.x)
    assert np.array_equal(fin, np.isfinite(b.x))
    assert np.array_equal(a.diverged_at, b.diverged_at)
    assert np.max(np.abs(a.x[fin] - b.x[fin]), initial=0) <= 1e-12 * np.abs(a.x[fin]).max()
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    assert o1.counts.as_dict() == o2.counts.as_dict()
    assert o1.rng.standard_normal() == o2.rng.standard_normal()
    assert (a.diverged.all() if not normalize else not a.diverged.any())
