"""Smoke tests of the checks U9-U13 (docs/checks.rst): each runs in quick mode (or a reduced
piece of it), its claim holds and its negative control is rejected."""

import numpy as np

from theory_checks import u11_neumann_nonsymmetric as u11


def test_u11_bounds_hold_and_the_reconstruction_has_a_witness():
    m = u11.measure("quick", seed=20261123)
    assert m.passed and m.control_rejected, m.measured
    w = m.counterexample
    assert w is not None and w["ratio"] > 1 + u11.RESOLVE
    assert w["bias_library"] <= w["sqrt_kappa_D_bound"] and w["bias_library"] <= w["schur_bound"]


def test_u11_operator_form_matches_repeated_products_where_they_are_accurate():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((3, 3))
    S = G @ G.T + np.eye(3)
    Dd = np.array([0.5, 1.0, 2.0])
    H = S / Dd[None, :]
    C = float(np.linalg.norm(H, 2))
    ops = u11.bias_operators(S, Dd, C, 5)
    direct = np.linalg.inv(H.T)
    for q in range(6):
        np.testing.assert_allclose(ops[q], direct, rtol=1e-10, atol=1e-12)
        direct = (np.eye(3) - H.T / C) @ direct


def test_u13_variance_law_bound_and_control():
    from theory_checks import u13_neumann_variance as u13

    m = u13.measure("quick", seed=20261123)
    assert m.passed and m.control_rejected, m.measured
    first = {r["instance"]: r["first_Q_exceeding_ttsa"] for r in m.measured["per_instance"]}
    assert first["Example 3 p=2, C=2"] <= 30  # the ledger's probe: exceeded from Q ~ 30


def test_u13_exact_variance_at_q1_is_the_oracle_noise_plus_the_z_noise():
    from theory_checks import u13_neumann_variance as u13

    label, P, x, y, C = u13.instances()[0]
    V1 = u13.exact_variance_curve(P, x, y, C, 1)[0]
    J = P.jvp_xy_g(x, y, np.ones(1))  # d = 1: q̂ = 0, ĝ = ∇_x F - J (1/C) F_u
    s = u13.SIGMA
    assert np.isclose(V1, s["x"] ** 2 + s["J"] ** 2 + (J[0] / C) ** 2 * s["u"] ** 2, rtol=1e-12)


def test_u9_schedule_has_the_theorem_exponents():
    from theory_checks import u9_unibio_convergence as u9

    p = 3.5
    a, b = u9.shaped_params(p, 0.4), u9.shaped_params(p, 0.2)
    assert np.isclose(np.log(a.eta / b.eta) / np.log(2), 3 * p - 3)
    assert np.isclose(np.log((1 - a.beta) / (1 - b.beta)) / np.log(2), 2)
    assert abs(np.log(b.T / a.T) / np.log(2) - (3 * p - 2)) < 1e-3
    assert abs(np.log(b.K / a.K) / np.log(2) - (2 * p - 2)) < 0.05


def test_u9_lemma_c11_holds_on_a_short_noisy_run_and_its_control_is_violated():
    from refbilevel.problems.uniformly_convex import SharpHolderUniformlyConvex
    from theory_checks import u9_unibio_convergence as u9

    P = SharpHolderUniformlyConvex(d=3, p=3.0)
    prm = u9.shaped_params(3.0, 0.5, T=300)
    A, terms, tr = u9.run(P, prm, u9.NOISE, np.full((4, 3), 0.5), np.zeros((4, 3)),
                          np.random.default_rng(1))
    assert u9.lemma_c11_holds(A, terms).all() and tr.diverged.sum() == 0
    ctrl = u9.lemma_c11_control(0)
    assert ctrl["full_inequality_holds"] and ctrl["violated_without_travel"]


def test_u12_order_test_and_mechanism_rules():
    from theory_checks import u12_larger_p_slower as u12

    rng = np.random.default_rng(0)
    groups = [0.1 * k + 0.001 * rng.standard_normal(16) for k in range(4)]
    assert u12.ordered(groups)[0]
    assert not u12.ordered(list(rng.permutation(np.concatenate(groups)).reshape(4, 16)))[0]
    assert u12.mechanism([0.1, 0.2, 0.3], [0.0, 0.08, 0.16])[0].startswith("phi floor")
    assert u12.mechanism([0.1, 0.2, 0.3], [0.0, -0.01, -0.02])[0] == "lower-level cost"


def test_u12_phi_floor_grows_with_p():
    from refbilevel.problems.uniformly_convex import SharpHolderUniformlyConvex
    from theory_checks import u12_larger_p_slower as u12

    floors = [u12.exact_hypergradient_path(SharpHolderUniformlyConvex(d=3, p=p), 400, 0.01,
                                           0.9).mean() for p in u12.PS]
    assert all(a < b for a, b in zip(floors, floors[1:], strict=False))


def test_u10_periods_and_sequences():
    from refbilevel.problems.unibio_example3 import UniBiOExample3
    from theory_checks import u10_lower_level_tracking as u10

    P = UniBiOExample3(4)
    I_h, I_l = u10.holder_period(P), u10.lipschitz_period(P)
    c = P.constants
    def drift(i):
        return c.l_p * (i * u10.ETA) ** (1 / 3)

    assert drift(I_h) <= u10.EPS_Y / 2 < drift(I_h + 1)
    assert I_l > 100 * I_h  # the LLSC rule allows a far longer period
    for xs in u10.sequences(I_h, 200, np.random.default_rng(0)).values():
        assert np.abs(np.diff(xs[:, 0])).max() <= u10.ETA * (1 + 1e-9)
        assert xs.min() < 0 < xs.max()  # every sequence crosses the flattest point x = 0


def test_u10_exact_lemmas_and_controls():
    from theory_checks import u10_lower_level_tracking as u10

    for r in [u10.lemma_c8(4)]:
        assert r["c8_ok"] and r["l0l1_ok"] and r["hessian_unbounded"]
        assert r["lipschitz_control_violated"] and r["l1_zero_control_violated"]
    for r in u10.lemma_c2(np.random.default_rng(0)):
        assert r["ok"] and r["control_exponent_1_over_p_violated"], r
    e = u10.lemma_c6(np.random.default_rng(0), R=10)
    assert e["ok"] and e["control_gamma_over_4_violations"] > 0


def test_u10_example3_constants_sums_and_martingale_tail():
    from theory_checks import u10_lower_level_tracking as u10

    r = u10.example3_constants(4, np.random.default_rng(0))
    assert r["ok"] and r["controls_violated"], r
    g = u10.uc_sum(6, np.random.default_rng(1))
    assert g["ok"] and g["control_2mu_plus_0.1_violated"]
    for row in u10.lemma_c7(np.random.default_rng(2), 4000):
        assert row["ok"] and row["control_violated"], row


def test_u9_nonseparable_family_runs_without_lemma_c11_constants():
    from theory_checks import u9_unibio_convergence as u9

    fam = u9.NONSEP
    P = fam.make(3.0)
    prm = u9.shaped_params(3.0, 0.5, T=100, **dict(fam.overrides))
    A, terms, tr = u9.run(P, prm, u9.NOISE, np.full((2, 3), fam.x0), np.zeros((2, 3)),
                          np.random.default_rng(3))
    assert "step_floor" not in terms and np.all(np.isfinite(A)) and tr.diverged.sum() == 0


def test_u9_lemma_c12_sigma_phi_and_designed_control():
    from refbilevel.oracles import NoiseConfig
    from refbilevel.problems.uniformly_convex import SharpHolderUniformlyConvex
    from theory_checks import u9_unibio_convergence as u9

    P = SharpHolderUniformlyConvex(d=3, p=3.0)
    noise = NoiseConfig(grad_x_f=1.0, f_u=1.0, gen_hvp=1.0, jvp=1.0)
    prm = u9.shaped_params(3.0, 0.5)
    assert np.isclose(u9.sigma_phi(P, prm, noise), np.sqrt(3 * (1 + 1 + 1 + prm.Q)))
    assert u9.sigma_phi(u9.NONSEP.make(3.0), prm, noise) is None
    c = u9.lemma_c12_control(0)
    assert c["true_form"]["holds"] and c["variant_1_minus_beta"]["violated"]


def test_u11_lemma_b6_criterion_at_zero_and_its_control():
    r = u11.lemma_b6_at_zero()
    assert r["ok"] and r["control_violated"], r


def test_u11_remark2_shifted_variable_and_its_control():
    for p in (3.0, 4.0):
        r = u11.remark2_shifted_variable(p)
        assert r["ok"] and r["unshifted_non_finite_at_c"], r
