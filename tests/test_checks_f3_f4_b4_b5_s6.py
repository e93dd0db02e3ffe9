"""Smoke tests of the checks F3, F4, B4, B5 and S6 (docs/checks.rst): each quick run holds its
claim, rejects its negative control and reports the measured values its verdict rests on."""

import pytest

from refbilevel.checks.runner import discover


def test_f4_printed_factor_is_a_counterexample_and_the_textbook_factor_holds():
    from theory_checks import f4_fdehbo_ls_iterate as f4

    m = f4.measure(mode="quick", seed=0)
    assert m.passed and m.control_rejected
    assert m.measured["outcome"] == "counterexample"
    for w in m.measured["witness"]:  # FMBO and FdeHBO on the same witness
        assert w["printed_factor"] == pytest.approx(-1.405964, abs=1e-6)
        assert w["other_terms_exactly_zero"] and w["refuted"]
        assert w["lhs"] == pytest.approx((1 - 20 * 3e-4) ** 2, rel=1e-12)
    # the printed factor at μ = L = 1 is (1 - λ)², the F2 setting, so F2 could not see it
    same = [c for c in m.measured["informative"] if c["mu_g"] == c["L_g"] == 1.0][0]
    assert same["printed_factor"] == pytest.approx((1 - 0.1) ** 2)


@pytest.mark.numba
def test_s6_quick_holds_and_rejects_its_controls():
    from theory_checks import s6_bsgm_complexity as s6

    m = s6.measure(mode="quick", seed=0)
    assert m.passed and m.control_rejected
    det = m.measured["theorem17_deterministic"]
    assert all(1.0 <= d["exponent"] <= s6.EXP_MAX_DET for d in det)  # Õ(ε^-1), measured 1.12
    inactive = [d for d in det if d["constraint"] == "[-1,1]^2"][0]
    assert inactive["control"]["floor"] > 0.01  # the t = k = 1 bias floor (0.0895)
    lo, hi = m.measured["theorem16i_increasing"]["exponent_ci999_bootstrap"]
    assert 2.0 <= lo <= hi <= s6.EXP_MAX_STOCH  # measured [2.20, 2.26]


@pytest.mark.parametrize("cid", ["B4", "B5", "F3", "F4", "S6"])
def test_new_checks_are_registered(cid):
    assert cid in discover()


def test_logistic_cleaning_derivatives_match_finite_differences():
    import numpy as np

    from refbilevel.problems import make_problem

    P = make_problem("logistic-cleaning", n=6, d=3, m=5, upper_scale=3.0)
    rng = np.random.default_rng(1)
    x, y, v = rng.standard_normal(6), rng.standard_normal(3), rng.standard_normal(3)
    h = 1e-6
    ey, ex = np.eye(3), np.eye(6)
    fd_gy = [(P.g(x, y + h * e) - P.g(x, y - h * e)) / (2 * h) for e in ey]
    fd_gx = [(P.g(x + h * e, y) - P.g(x - h * e, y)) / (2 * h) for e in ex]
    fd_fy = [(P.f(x, y + h * e) - P.f(x, y - h * e)) / (2 * h) for e in ey]
    fd_hv = (P.grad_y_g(x, y + h * v) - P.grad_y_g(x, y - h * v)) / (2 * h)
    fd_jv = (P.grad_x_g(x, y + h * v) - P.grad_x_g(x, y - h * v)) / (2 * h)
    # central differences at h = 1e-6: truncation ~1e-12, rounding ~1e-10 relative
    assert np.allclose(P.grad_y_g(x, y), fd_gy, atol=1e-8)
    assert np.allclose(P.grad_x_g(x, y), fd_gx, atol=1e-8)
    assert np.allclose(P.grad_y_f(x, y), fd_fy, atol=1e-8)
    assert np.allclose(P.hvp_yy_g(x, y, v), fd_hv, atol=1e-8)
    assert np.allclose(P.jvp_xy_g(x, y, v), fd_jv, atol=1e-8)
    w = rng.standard_normal(6)
    assert np.isclose(P.jvp_xy_g(x, y, v) @ w, P.jvp_yx_g(x, y, w) @ v)  # adjoint pair
    fd_phi = [(P.phi(x + h * e) - P.phi(x - h * e)) / (2 * h) for e in ex]
    assert np.allclose(P.grad_phi(x), fd_phi, atol=1e-8)


def test_row_weight_oracle_is_unbiased_counts_and_validates():
    import numpy as np

    from refbilevel.oracles.row_weights import RowWeightOracle
    from refbilevel.problems.logistic_cleaning import LogisticCleaning

    P = LogisticCleaning(n=6, d=3, m=5)
    o = RowWeightOracle(P, 2, 1, np.random.default_rng(0))
    w = o.draw("hvp", (20000,))
    assert w.shape == (20000, 6) and np.allclose(w.sum(-1), 6.0)  # 2 rows of weight 3
    # mean weight 1 per row: 20000 draws, sd of the mean sqrt(2)/sqrt(20000) ~ 0.01; 6 SE
    assert np.all(np.abs(w.mean(0) - 1.0) < 0.06)
    x, y = np.zeros(6), np.ones(3)
    g = o.grad_y_g(np.zeros((20000, 6)), np.ones((20000, 3)), sample=w)
    assert np.allclose(g.mean(0), P.grad_y_g(x, y), atol=0.05)
    assert o.counts.samples == 1 and o.counts.grad_y_g == 1
    exact = RowWeightOracle(P, None, None, np.random.default_rng(0))
    assert np.allclose(exact.hvp_yy_g(x, y, y), P.hvp_yy_g(x, y, y))
    with pytest.raises(ValueError, match="sample for 'grad_y_g' must have shape"):
        o.grad_y_g(x, y, sample=np.ones(5))
    with pytest.raises(ValueError, match="batch_lower"):
        RowWeightOracle(P, 0, 1, np.random.default_rng(0))


def test_f3_runs_fdehbo_and_fmbo_on_one_stream():
    import numpy as np

    from theory_checks import f3_fdehbo_fd_bias as f3

    P = f3.problem()
    d = f3.delta_theorem1(P, 200)
    a, b = (f3.run(v, R=16, T=200, seed=0, delta=d) for v in ("fmbo", "fdehbo"))
    # common samples: the gap is finite-difference rounding/truncation at δ ~ 6e-6
    assert np.nanmax(np.abs(a.x - b.x)) < 1e-6
    r = f3.rate(a, "fmbo")
    assert r["diverged"] == 0 and r["E_grad_sq"][-1] < r["E_grad_sq"][0]


def test_b5_tracks_with_the_lemma_period_and_fails_with_a_long_one():
    import math

    import numpy as np

    from refbilevel.algorithms.borep import BOREPTheoryConstants
    from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
    from refbilevel.problems.relaxed_smooth import RelaxedSmoothP2
    from theory_checks import b5_borep_tracking as b5

    P = RelaxedSmoothP2()
    noise = NoiseConfig(grad_y_g=b5.SIGMA)
    x1 = np.ones(P.d_x)
    y0 = P.y_star(x1) + b5.Y0_OFFSET * np.ones(P.d_y) / math.sqrt(P.d_y)
    c = BOREPTheoryConstants.from_problem(P, noise, x1, y0, phi_lower=3.1324348957,
                                          delta=b5.DELTA)
    s = b5.schedule(P, c)
    assert (s["I"], s["N"], s["epoch_k"]) == (3, 603, 7)
    xs = b5.sequence("drift", P, 4, s["I"], np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(np.diff(xs, axis=0), axis=-1), b5.ETA)
    y1 = np.tile(P.y_star(x1), (4, 1))
    ok = b5.track_lower(GaussianOracle(P, noise, np.random.default_rng(1)), xs, y1,
                        I=s["I"], N=s["N"], gamma=s["gamma"], R_ball=s["R_ball"])
    bad = b5.track_lower(GaussianOracle(P, noise, np.random.default_rng(1)), xs, y1,
                         I=28, N=s["N"], gamma=s["gamma"], R_ball=s["R_ball"])
    assert ok.max() <= b5.DELTA_Y and np.all(bad.max(axis=0) > b5.DELTA_Y)


@pytest.mark.numba
def test_b4_shaped_schedule_orders_and_a_short_run():
    from dataclasses import replace

    from refbilevel.algorithms.borep import borep_theory_schedule
    from refbilevel.problems.relaxed_smooth import RelaxedSmoothP2
    from theory_checks import b4_borep_convergence as b4

    P = RelaxedSmoothP2()
    k = b4.theory_constants(P)
    p1, p2 = b4.shaped_params(1.0, k), b4.shaped_params(0.5, k)
    assert p2.eta == pytest.approx(p1.eta / 8)  # η ∝ ε³
    assert 1 - p2.beta == pytest.approx((1 - p1.beta) / 4)  # 1 − β ∝ ε²
    assert p2.T / p1.T == pytest.approx(16, rel=0.01)  # T ∝ ε^-4
    # the exact-schedule path of --full, cut short: the code runs and the counts agree
    short = replace(borep_theory_schedule(b4.EXACT_EPS, k).params, T=40, N=30, epoch_k=2)
    row = b4.one_run(P, short, 2, 0, "exact-smoke", b4.EXACT_EPS)
    assert row["kernel_counted_calls"] == row["calls_per_replica"] and row["diverged"] == 0
    assert row["truncated_certified_lower_bound"] > b4.EXACT_EPS


def test_s6_theorem6_terms_match_the_exact_bias_and_order():
    import numpy as np

    from refbilevel.problems.contraction import golden_instance
    from refbilevel.sid_moments import StepSchedule, ll_error_moments, ll_error_path
    from theory_checks import s6_bsgm_complexity as s6

    g = golden_instance()
    steps = StepSchedule.decreasing(3.0, 3.0)
    m, C = ll_error_moments(g.problem, g.lam, 7, steps=steps)
    assert np.isclose(np.trace(C), ll_error_path(g.problem, g.lam, 7, steps=steps)[-1])
    for t, k in ((0, 0), (3, 5), (30, 2)):
        x = s6.theorem6(g.problem, g.lam, t, k, steps)
        assert x["bias_mismatch"] < 1e-12  # E[ĝ] − ∇f through E[ĝ|w_t] = sid_moments' bias
        assert x["var"] <= x["second"] <= x["rhs"]
    # at t = 0, k = 100 the LS has converged (v̄_k ≈ v(w_t)) and only the LL term remains
    x = s6.theorem6(g.problem, g.lam, 0, 100, steps)
    assert x["second"] > x["rhs_without_ll_term"]
