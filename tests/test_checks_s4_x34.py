"""Theory checks S4 (stochastic fixed-point solver rates), X3 (oracle counts) and X4 (backend
parity) in quick mode: each claim holds and each negative control is rejected (spec
docs/checks.rst). Plus the library helpers these checks added: SID's solvers run alone
(``ll_solver``/``ls_solver``), BO-REP's cumulative counts and the estimator parity cases.

S4's quick mode makes 6 Monte Carlo comparisons at 4 standard errors (false-positive rate
≤ 3.8e-4, fixed seed); X3 and X4 are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest

from refbilevel.algorithms.borep import (
    BOREPParams,
    borep,
    borep_cumulative_counts,
    borep_oracle_counts,
)
from refbilevel.backend_comparison import compare_estimator, estimator_cases
from refbilevel.estimators.sid import StepSchedule, ll_solver, ls_solver, sid
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import golden_instance
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP2
from theory_checks import s4_sid_solver_rates, x3_oracle_counts, x4_backend_parity

GOLD = golden_instance()
ETA = StepSchedule.decreasing(3.0, 3.0)


# ---- the checks, quick mode --------------------------------------------------------------------
def test_s4_quick_passes_and_rejects_the_control():
    m = s4_sid_solver_rates.measure("quick", seed=0)
    assert m.passed and m.control_rejected
    rows = m.measured["per_solver"]
    assert {r["solver"] for r in rows} == {"LL", "LS"}
    assert all(abs(r["slope_exact"] + 1) < 0.01 for r in rows)
    assert all(abs(c["slope_constant_step"]) < 0.01 for c in m.control["per_solver"])


@pytest.mark.numba  # runs every algorithm's Numba kernel as well
def test_x3_quick_passes_and_rejects_the_control():
    m = x3_oracle_counts.measure("quick", seed=0)
    assert m.passed and m.control_rejected
    runs = m.measured["runs"]
    assert {r["algorithm"] for r in runs} == set(m.measured["algorithms"])
    assert {r["backend"] for r in runs} == {"numpy", "numba"}


@pytest.mark.numba
def test_x4_quick_passes_and_rejects_the_control():
    m = x4_backend_parity.measure("quick", seed=0)
    assert m.passed and m.control_rejected
    assert m.measured["worst_relative_difference"]["algorithms"] <= 1e-12
    if m.measured["cupy"]["status"] == "skipped":
        assert m.measured["cupy"]["reason"]


# ---- library helpers added for these checks ----------------------------------------------------
def test_ll_and_ls_solvers_are_the_steps_of_sid():
    """ll_solver is SID's step 1 and ls_solver its step 3: with the same Generator, SID with
    k = 0 (resp. t = 0) and J = 1 equals the solver followed by SID's remaining draws, bit
    for bit, and both consume the same random numbers."""
    P, lam = GOLD.problem, GOLD.lam
    o1 = ContractionOracle(P, np.random.default_rng(3))
    o2 = ContractionOracle(P, np.random.default_rng(3))
    a = sid(o1, lam, 9, 0, 1, steps=ETA, replicas=4, w0=np.ones(3))
    w = ll_solver(o2, lam, 9, steps=ETA, replicas=4, w0=np.ones(3))
    assert (w.counts.zeta, w.counts.phi) == (9, 9)
    _, g2 = o2.grad_E(w.value, lam, o2.draw_xi(4))
    b = g2 + o2.vjp_lam(w.value, lam, np.zeros((4, 3)), o2.draw_zeta(4, "Y"))
    np.testing.assert_array_equal(a.value, b)
    assert o1.rng.standard_normal() == o2.rng.standard_normal()

    o1 = ContractionOracle(P, np.random.default_rng(5))
    o2 = ContractionOracle(P, np.random.default_rng(5))
    w0 = np.array([0.3, -0.2, 0.1])
    a = sid(o1, lam, 0, 11, 1, steps=ETA, replicas=4, w0=w0)
    G1, G2 = o2.grad_E(np.tile(w0, (4, 1)), lam, o2.draw_xi(4))
    v = ls_solver(o2, lam, 11, steps=ETA, g1=G1, w=w0, replicas=4)
    assert (v.counts.zeta, v.counts.vjp_w) == (11, 11)
    np.testing.assert_array_equal(a.value, G2 + o2.vjp_lam(w0, lam, v.value,
                                                           o2.draw_zeta(4, "Y")))
    assert o1.rng.standard_normal() == o2.rng.standard_normal()


def test_solver_shapes_defaults_and_validation():
    P, lam = GOLD.problem, GOLD.lam
    o = ContractionOracle(P, np.random.default_rng(0))
    assert ll_solver(o, lam, 3, steps=ETA).value.shape == (3,)
    assert ls_solver(o, lam, 3, steps=ETA).value.shape == (3,)
    assert ls_solver(o, np.tile(lam, (2, 1)), 3, steps=ETA).value.shape == (2, 3)
    # noise-free with η ≡ 1: the LS is v ← Aᵀv + g₁, so v_k → v̂ = (I − Aᵀ)^{-1} g₁
    from refbilevel.problems.contraction import LinearContraction
    from refbilevel.sid_moments import exact_solution

    det = LinearContraction(P.A, P.B, P.c, P.P, P.Q, P.S, P.p, P.s)
    ex = exact_solution(det, lam)
    v = ls_solver(ContractionOracle(det, np.random.default_rng(0)), lam, 200, steps=1.0).value
    np.testing.assert_allclose(v, ex.v_star, rtol=1e-10)
    w = ll_solver(ContractionOracle(det, np.random.default_rng(0)), lam, 200, steps=1.0).value
    np.testing.assert_allclose(w, ex.w_star, rtol=1e-10)
    with pytest.raises(ValueError, match="g1 must be"):
        ls_solver(o, lam, 3, steps=ETA, g1=np.ones(2))
    with pytest.raises(ValueError, match="t must be"):
        ll_solver(o, lam, -1, steps=ETA)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_borep_cumulative_counts_match_the_trace(variant):
    P2 = RelaxedSmoothP2()
    code = {"project": False, "epoch_k": 0, "variant": "code"} if variant == "code" else {}
    p = BOREPParams(**{**dict(T=23, eta=0.02, beta=0.9, I=4, N=3, gamma=0.1, nu=0.2,
                              R_ball=5, rho=6, epoch_k=3, epoch_T1=4, epoch_theta1=0.5,
                              epoch_D1=20), **code})
    o = GaussianOracle(P2, NoiseConfig.uniform(0.1), np.random.default_rng(0))
    tr = borep(o, np.ones(P2.d_x), np.zeros(P2.d_y), params=p)
    want = borep_cumulative_counts(p, tr.iterations)
    for k, v in want.items():
        np.testing.assert_array_equal(tr.counts[k], v, err_msg=k)
    assert {k: int(v[-1]) for k, v in want.items()} == borep_oracle_counts(p)
    with pytest.raises(ValueError, match="iterations must lie"):
        borep_cumulative_counts(p, [24])


@pytest.mark.numba
def test_estimator_parity_cases_cover_every_numba_estimator():
    from refbilevel.backends import implementations

    cases = estimator_cases(0)
    have = {n for n, b in implementations("estimator").items() if "numba" in b}
    assert {c.estimator for c in cases} == have
    for case in cases[:3] + cases[-3:]:
        (row,) = compare_estimator(case)
        assert row.ok, row
    (bad,) = compare_estimator(cases[0], seeds=(0, 1))  # negative control: other draws
    assert not bad.ok and not bad.same_stream
