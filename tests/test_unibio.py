"""Epoch-SGD with shrinking balls and UniBiO (docs/unibio.rst §4.1, §4.2, §7.1): schedules,
exact oracle counts (X3), convergence, divergence record, NumPy <-> Numba parity (X4)."""

import numpy as np
import pytest

from refbilevel.algorithms.epoch_sgd import epoch_schedule, epoch_sgd
from refbilevel.algorithms.unibio import (
    run_unibio,
    step_halvings,
    tuned_params,
    unibio_cumulative_counts,
    unibio_oracle_counts,
)
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.projection import project_ball
from refbilevel.randomness import named_stream

NOISY = NoiseConfig(grad_y_g=1.0, grad_x_f=0.01, f_u=0.01, gen_hvp=0.01, jvp=0.01)


@pytest.mark.parametrize("p, lengths", [(2, [5, 10, 20, 40]), (4, [5, 14, 40]),
                                        (6, [5, 15, 50]), (8, [5, 16, 56])])
def test_epoch_schedule_matches_spec_section_7_1(p, lengths):
    """docs/unibio.rst §7.1: T_1 = 5, budget 100 -> 75, 59, 70, 77 inner steps."""
    for rule in ("paper", "code"):
        eps = epoch_schedule(100, 5, 1.0, 1.0, p, rule)
        assert [e.length for e in eps] == lengths
        k = np.arange(len(eps))
        np.testing.assert_allclose([e.radius for e in eps], 2.0 ** (-k / p), rtol=1e-15)
        np.testing.assert_allclose([e.step for e in eps], 2.0 ** (-k), rtol=1e-15)


def test_epoch_schedule_rules_differ_where_truncation_matters():
    # p = 4: real lengths 5, 14.14, 40, 113.1; budget 59: int sum 59 fits, real sum 59.14 not
    assert [e.length for e in epoch_schedule(59, 5, 1, 1, 4, "paper")] == [5, 14, 40]
    assert [e.length for e in epoch_schedule(59, 5, 1, 1, 4, "code")] == [5, 14]


def test_project_ball():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((50, 3))
    w = c + rng.standard_normal((50, 3)) * 3
    out = project_ball(w, 1.0, c)
    assert np.all(np.linalg.norm(out - c, axis=-1) <= 1.0 + 1e-12)
    inside = np.linalg.norm(w - c, axis=-1) <= 1.0
    np.testing.assert_array_equal(out[inside], w[inside])


def test_epoch_sgd_deterministic_converges_on_uniformly_convex_lower_level():
    P = SeparableUniformlyConvex(d=3, p=4.0)
    x = np.array([[0.3, -0.7, 1.1]])
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    w = epoch_sgd(o, x, np.zeros((1, 3)), epoch_schedule(2000, 5, 2.0, 0.5, 4.0))
    assert np.linalg.norm(w - P.y_star(x)) < 1e-3


@pytest.mark.parametrize("p", [2, 4, 8])
def test_x3_unibio_counts_equal_the_schedule_accounting(p):
    """Per UL iteration 1 ∇_xF, 1 F_u, Q gen-HVPs, 1 JVP; LL: Epoch-SGD budgets (§4.2, §5.6)."""
    prm = tuned_params(p, T=37, I=3, Q=4)
    o = GaussianOracle(UniBiOExample3(p), NOISY, named_stream(1, "x3"))
    tr = run_unibio(o, np.ones((2, 1)), np.ones((2, 1)), prm)
    want = unibio_oracle_counts(prm, p)
    got = {k: v for k, v in o.counts.as_dict().items() if v}
    assert got == want
    warm = sum(e.length for e in prm.epochs(True, p))
    per = sum(e.length for e in prm.epochs(False, p))
    assert want["grad_y_g"] == warm + ((37 - 1) // 3) * per
    cum = unibio_cumulative_counts(prm, p, tr.iterations)
    for k in tr.counts:
        np.testing.assert_array_equal(tr.counts[k], cum[k])


def test_unibio_deterministic_section6_converges():
    """Deterministic Section 6 run (docs/unibio.rst §7.1 settings): the average ||∇phi|| decreases
    and
    the last iterate is near a stationary point (||∇phi|| at the fixed-eta floor)."""
    for p in (2, 4):
        o = GaussianOracle(UniBiOExample3(p), 0.0, np.random.default_rng(0))
        tr = run_unibio(o, np.ones((1, 1)), np.ones((1, 1)), tuned_params(p))
        assert tr.grad_phi_norm[0, 0] == pytest.approx(0.36003949, rel=1e-6)  # ∇phi(1)
        assert tr.avg_grad_phi_norm[-1, 0] < 0.15
        assert tr.grad_phi_norm[-1, 0] < 0.05
        # docs/unibio.rst §9 sanity values (deterministic, code settings): median |y - y*| per
        # Epoch-SGD call about 1e-4 (p = 4..8), 90% quantile 0.02-0.03
        assert np.nanmedian(tr.y_error[1:]) < 1e-3
        assert np.nanquantile(tr.y_error[1:], 0.9) < 0.04


def test_same_seed_same_trajectory_other_seed_differs():
    P = UniBiOExample3(4)
    prm = tuned_params(4, T=50)
    a = run_unibio(GaussianOracle(P, NOISY, named_stream(5, "u")), np.ones(1), np.ones(1), prm)
    b = run_unibio(GaussianOracle(P, NOISY, named_stream(5, "u")), np.ones(1), np.ones(1), prm)
    c = run_unibio(GaussianOracle(P, NOISY, named_stream(6, "u")), np.ones(1), np.ones(1), prm)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_divergence_is_recorded_not_silent():
    """A huge LL step makes y overflow for one replica: it is stopped and flagged."""
    P = UniBiOExample3(4)
    prm = tuned_params(4, T=20, gamma_1=1e60, D_1=1e300, K_0=5, K=5, T_1=5)
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    tr = run_unibio(o, np.array([[1.0], [1.0]]), np.array([[1.0], [0.0]]), prm)
    assert tr.diverged.any()
    first = tr.diverged_at[tr.diverged]
    assert np.all(first >= 0)
    assert "DIVERGED" in tr.summary()
    # nothing after the divergence is reported as a number
    for r in np.flatnonzero(tr.diverged):
        after = tr.iterations >= tr.diverged_at[r]
        assert np.all(np.isnan(tr.grad_phi_norm[after, r]))


@pytest.mark.parametrize("bad, match", [
    (dict(T=0), r"T must be an integer in \[1"),
    (dict(beta=1.0), r"beta must lie in \[0, 1\)"),
    (dict(eta=0.0), r"eta must lie in \(0"),
    (dict(I=0), r"I must be an integer in \[1"),
    (dict(budget_rule="x"), "budget_rule must be one of"),
    (dict(eta_hold=-1), r"eta_hold must be an integer in \[0"),
    (dict(eta_halving=0), r"eta_halving must be an integer in \[1"),
])
def test_bad_parameters(bad, match):
    o = GaussianOracle(UniBiOExample3(4), 0.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        run_unibio(o, np.ones(1), np.ones(1), tuned_params(4, **bad))


def test_geometric_step_schedule_moves_x_by_the_halved_step():
    """eta_hold/eta_halving (docs/unibio.rst §5.5): in 1-D the normalized step moves x by
    exactly η_t = η 2^{-k(t)}, k = 0 before the hold, then 1 + (t - hold) // halving."""
    assert [step_halvings(t, 3, 2) for t in range(8)] == [0, 0, 0, 1, 1, 2, 2, 3]
    assert [step_halvings(t, -1, 2) for t in (0, 10**6)] == [0, 0]
    prm = tuned_params(4, T=12, eta=0.01, K=5, K_0=5, eta_hold=4, eta_halving=3)
    tr = run_unibio(GaussianOracle(UniBiOExample3(4), 0.0, np.random.default_rng(0)),
                    np.ones(1), np.ones(1), prm, record_final=True)
    moved = np.abs(np.diff(tr.x[:, 0, 0]))
    expected = [0.01 * 0.5 ** step_halvings(t, 4, 3) for t in range(12)]
    # |x_{t+1} - x_t| = η_t up to the rounding of x_t (|x| <= 1: a few ulps)
    np.testing.assert_allclose(moved, expected, rtol=0, atol=1e-15)


@pytest.mark.numba
@pytest.mark.parametrize("P, T, tol", [
    (UniBiOExample3(4), 1000, 1e-12),
    (UniBiOExample3(8), 1000, 1e-12),
    (SeparableUniformlyConvex(d=3, p=2.5), 1000, 1e-12),
    # The non-separable instance's H^T = D(y)^{-1} ∇²g divides by 3 y_i² (p = 4): where an
    # iterate passes near y_i = 0, the O(1e-16) difference between BLAS and loop summation
    # orders is amplified by 1/y_i², and the noisy dynamics then amplify it further (measured
    # 7e-11 after 200 and 4.5e-4 after 1000 iterations). Parity is checked over 100
    # iterations, before that amplification, at 1e-9; the stream and counts stay identical.
    (NonSeparableUniformlyConvex(d_y=3, p=4.0), 100, 1e-9),
], ids=["ex3-p4", "ex3-p8", "separable", "nonseparable"])
@pytest.mark.parametrize("schedule", [{}, {"eta_hold": 300, "eta_halving": 200}],
                         ids=["constant-step", "halving-step"])
def test_x4_numpy_numba_parity(P, T, tol, schedule):
    from refbilevel.algorithms.unibio_numba import run_unibio_numba

    prm = tuned_params(4, T=T, alpha=0.2 if P.constants.C is None else None, K=20, K_0=20,
                       **schedule)
    x0 = np.tile(np.linspace(0.5, 1.0, P.d_x), (3, 1))
    y0 = np.ones((3, P.d_y))
    o1 = GaussianOracle(P, NOISY, named_stream(9, "parity"))
    o2 = GaussianOracle(P, NOISY, named_stream(9, "parity"))
    a = run_unibio(o1, x0, y0, prm, record_every=10)
    b = run_unibio_numba(o2, x0, y0, prm, record_every=10)
    scale = max(1.0, float(np.nanmax(np.abs(a.x))))
    assert np.nanmax(np.abs(a.x - b.x)) <= tol * scale
    np.testing.assert_array_equal(a.diverged_at, b.diverged_at)
    assert o1.counts == o2.counts
    assert o1.rng.bit_generator.state == o2.rng.bit_generator.state  # same numbers consumed


@pytest.mark.numba
@pytest.mark.parametrize("p", [2.0, 3.0, 4.0])
def test_scalar_epoch_sgd_kernel_matches_the_numpy_oracle_path(p):
    """The scalar Numba Epoch-SGD kernel of claim U7 (theory_checks/u7_epoch_sgd_rate.py)
    draws the numbers the NumPy path draws (GaussianOracle, grad_y_g noise 1, on
    w ↦ |w|^p/p) and returns the same iterates (≤ 1e-12 relative; same Generator state)."""
    from refbilevel.algorithms.epoch_sgd_numba import scalar_power_epoch_sgd

    R = 7
    eps = epoch_schedule(600, 20, 2.0, 0.5, p)
    o = GaussianOracle(SeparableUniformlyConvex(d=1, p=p), NoiseConfig(grad_y_g=1.0),
                       np.random.default_rng(11))
    a = epoch_sgd(o, np.zeros((R, 1)), np.full((R, 1), 0.9), eps)[:, 0]
    rng = np.random.default_rng(11)
    b = np.full(R, 0.9)
    arr = np.array([[e.length for e in eps], [e.radius for e in eps], [e.step for e in eps]])
    scalar_power_epoch_sgd(rng, np.zeros(R), b, np.ones(R, dtype=np.bool_),
                           arr[0].astype(np.int64), arr[1], arr[2], True, 1.0, p - 1.0)
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    assert o.rng.standard_normal() == rng.standard_normal()


@pytest.mark.parametrize("p", [2.0, 4.0])
def test_path_average_bracket_contains_the_every_step_average(p):
    """Claim U8(b) records every k-th iterate; its bracket of (1/T) Σ ||∇phi(x_t)|| must
    contain the average over all iterates of the same run (same seed), and collapse to it
    at k = 1 (theory_checks/u8_unibio_complexity.py)."""
    from theory_checks.u8_unibio_complexity import path_average_bracket

    P = UniBiOExample3(p)
    prm = tuned_params(p, T=203, eta=0.05)
    runs = {k: run_unibio(GaussianOracle(P, NOISY, np.random.default_rng(5)),
                          np.full((3, 1), 3.0), np.ones((3, 1)), prm, record_every=k)
            for k in (1, 10)}
    exact = runs[1].grad_phi_norm.mean(axis=0)
    lo1, hi1 = path_average_bracket(runs[1], P, prm.eta, prm.T)
    np.testing.assert_allclose([lo1, hi1], [exact, exact], rtol=1e-15)
    lo, hi = path_average_bracket(runs[10], P, prm.eta, prm.T)
    assert np.all(lo <= exact) and np.all(exact <= hi) and np.all(hi - lo > 0)


def test_control_certificate_is_a_lower_bound_of_the_gradient_norm():
    """U8(b)'s control certificate (min |phi'| over an interval) never exceeds the true
    minimum: near the stationary point pi/2 of Example 3 it is <= 0; away from it it is
    within the grid slack of a dense evaluation."""
    from theory_checks.u8_unibio_complexity import _min_grad_norm_on_interval

    P = UniBiOExample3(2)
    assert _min_grad_norm_on_interval(P, np.pi / 2 + 0.01, 0.1) <= 0.0
    dense = np.abs([P.grad_phi(np.array([x]))[0] for x in np.linspace(2.9, 3.1, 20001)])
    cert = _min_grad_norm_on_interval(P, 3.0, 0.1)
    assert dense.min() - 1e-3 <= cert <= dense.min()


@pytest.mark.parametrize("problem", ["finite-sum-quadratic", "quadratic", "unibio-example3",
                                     "uniformly-convex-separable", "uniformly-convex-bump"])
def test_default_neumann_terms_meet_their_stated_bias(problem):
    """The "default" Q (docs/unibio.rst §3.5): (1 − μ/C)^Q <= NEUMANN_BIAS = 1e-3, while Q − 1
    terms would not meet the sufficient condition Q >= (C/μ) ln(1/bias) it is computed from."""
    import math

    from refbilevel.algorithms.unibio import NEUMANN_BIAS
    from refbilevel.solver import prepare

    _, prob, _, params = prepare(problem, "unibio", noise=0.0)
    C, mu, Q = float(prob.constants.C), float(prob.constants.mu), params["Q"]
    assert (1.0 - mu / C) ** Q <= NEUMANN_BIAS
    assert Q - 1 < C / mu * math.log(1.0 / NEUMANN_BIAS) <= Q
