"""SID (Grazzi, Pontil, Salzo 2023, Alg. 1; docs/sid_bsgm.rst §4.2, §8, §9, §14.1): exact
moments against the golden values, claims S1-S4 (docs/checks.rst), backend parity (X4),
counters (X3) and input validation.

Statistical tests use fixed seeds and reject at 4 standard errors (4.5 for the Hypothesis
test, which runs several examples): under the normal approximation P(|Z| > 4) = 6.3e-5 and
P(|Z| > 4.5) = 6.8e-6 per comparison, so every test's false-positive rate is ≤ 1e-3.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refbilevel.backends import implementation
from refbilevel.estimators.sid import (
    StepSchedule,
    prepare_sid_inputs,
    sid,
    sid_control_reuse,
    sid_normals_per_replica,
)
from refbilevel.estimators.sid_cupy import _DeviceNoise, _HostNoise, _sid_xp
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import LinearContraction, golden_instance
from refbilevel.sid_moments import (
    deterministic_constant,
    exact_solution,
    ll_error_path,
    ll_theorem_s,
    ls_error_path,
    ls_theorem_s,
    random_linear_contraction,
    sid_deterministic_error,
    sid_moments,
    sid_moments_closed_form,
    step_sequence,
)
from refbilevel.testing import assert_estimate_matches
from refbilevel.testing.strategies import contraction_cases

GOLD = golden_instance()
PROB, LAM = GOLD.problem, GOLD.lam
ETA = StepSchedule.decreasing(3.0, 3.0)  # η_i = 3/(3+i), docs/sid_bsgm.rst §14.1


def rel(a, b) -> float:
    """Norm-wise relative difference (robust to components that are near zero)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---- (a) exact values of docs/sid_bsgm.rst §14.1
# ---------------------------------------------------------


def test_golden_exact_solution():
    ex = exact_solution(PROB, LAM)
    # spec values are printed to 8-9 significant digits: compare at 1e-8 absolute
    np.testing.assert_allclose(ex.w_star, [2.60700389, -0.98249027, 0.11478599], atol=1e-8)
    np.testing.assert_allclose(ex.v_star, [7.2327257, 3.15365259, 0.58965465], atol=1e-7)
    np.testing.assert_allclose(ex.grad_f, [9.95313177, -2.68231994], atol=1e-8)
    np.testing.assert_allclose(ex.grad_f, PROB.grad_f(LAM), rtol=1e-13)


GOLDEN_TABLE = [  # (t, k, J): MSE, bias², trace variance (docs/sid_bsgm.rst §14.1)
    ((1, 1, 1), 6.0391745988e01, 4.8919763988e01, 1.1471982000e01),
    ((5, 5, 5), 1.0600426728e01, 3.3528816022e00, 7.2475451253e00),
    ((10, 10, 10), 5.4164033887e00, 4.9695216869e-01, 4.9194512200e00),
    ((10, 20, 5), 6.2087220782e00, 1.8443293707e-01, 6.0242891411e00),
    ((100, 100, 100), 6.1897066563e-01, 1.8808583416e-04, 6.1878257979e-01),
    ((1000, 1000, 1000), 6.2669506234e-02, 2.5940474069e-08, 6.2669480293e-02),
]


@pytest.mark.parametrize("tkj,mse,bias2,var", GOLDEN_TABLE, ids=lambda v: str(v))
def test_golden_table(tkj, mse, bias2, var):
    m = sid_moments(PROB, LAM, *tkj, steps=ETA, w0=GOLD.w0)
    # spec: entries reproduce to ~1e-10 relative; below 1e-6, float64 gives ~1e-9, so
    # those are tested at rtol 1e-6 and the others at rtol 1e-8
    for got, want in ((m.mse, mse), (m.bias2, bias2), (m.variance, var)):
        assert got == pytest.approx(want, rel=1e-6 if want < 1e-6 else 1e-8)
    assert m.mse == pytest.approx(m.bias2 + m.variance, rel=1e-14)


def test_bias2_at_1000_matches_50_digit_value():
    # the centered recursion avoids the cancellation the spec mentions (50-digit value
    # 2.5940474076e-08); 1e-9 relative is 10x the printed precision
    m = sid_moments(PROB, LAM, 1000, 1000, 1000, steps=ETA)
    assert m.bias2 == pytest.approx(2.5940474076e-08, rel=1e-9)


@pytest.mark.parametrize("tkj", [row[0] for row in GOLDEN_TABLE[:5]])
def test_raw_and_centered_recursions_agree(tkj):
    # two formulations of the same exact recursion (the raw one is the spec's text)
    a = sid_moments(PROB, LAM, *tkj, steps=ETA)
    b = sid_moments(PROB, LAM, *tkj, steps=ETA, form="raw")
    assert a.mse == pytest.approx(b.mse, rel=1e-10)
    np.testing.assert_allclose(a.mean_error, b.mean_error, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs,value", [
    ({"ls_offset": 1}, 5.682876),  # LS uses η_{i+1}
    ({"ls_offset": 10}, 16.940062),  # LS continues the LL index, η_{t+i}
    ({"v0": "rhs"}, 5.396423),  # v_0 = ∇₁Ê_J
    ({"ll_lambda_noise": False}, 5.380767),  # LL sample without Y_i
])
def test_variant_conventions(kwargs, value):
    # spec prints 7 significant digits: half a unit in the last place is 5e-7
    m = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA, **kwargs)
    assert m.mse == pytest.approx(value, abs=5e-7)


def test_code_convention_equals_sid_with_one_more_ls_step():
    # docs/sid_bsgm.rst §4.4: bioptexps' v_0 = ∇₁Ê_J with η_{i+1} for K steps = SID with k = K + 1
    code = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA, v0="rhs", ls_offset=1)
    assert code.mse == pytest.approx(5.351404, abs=5e-7)
    assert code.mse == pytest.approx(sid_moments(PROB, LAM, 10, 11, 10, steps=ETA).mse,
                                     rel=1e-12)


def test_t_times_mse_sequence():
    # docs/sid_bsgm.rst §14.1 prints t·MSE to 2 decimals: allow half a unit (0.005) plus rounding
    # slack
    ts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 1000, 10000]
    want = [60.39, 60.14, 54.08, 53.23, 56.66, 59.69, 61.34, 62.10, 62.44, 62.67, 62.73]
    got = [t * sid_moments(PROB, LAM, t, t, t, steps=ETA).mse for t in ts]
    np.testing.assert_allclose(got, want, atol=0.0051)


@pytest.mark.parametrize("tkj,mse,bias2", [
    ((5, 5, 5), 1.8227104849e01, 1.3182854129e01),
    ((20, 20, 20), 7.7548275648e00, 4.2934913332e-04),
])
def test_constant_step_values(tkj, mse, bias2):
    m = sid_moments(PROB, LAM, *tkj, steps=StepSchedule.constant(0.5))
    assert m.mse == pytest.approx(mse, rel=1e-8)
    assert m.bias2 == pytest.approx(bias2, rel=1e-8)


@pytest.mark.parametrize("tk,value", [
    ((1, 1), 6.9942665082e00), ((3, 3), 1.6795117179e00),
    ((10, 10), 1.6199130803e-03), ((20, 20), 3.3479216266e-07),
])
def test_deterministic_values(tk, value):
    # spec: direct iteration, rtol 1e-6 (float64 gives ~5e-9 relative at (20, 20))
    assert sid_deterministic_error(PROB, LAM, *tk) == pytest.approx(value, rel=1e-6)
    # the error-coordinate iteration has no cancellation: it matches the 50-digit values
    assert sid_deterministic_error(PROB, LAM, *tk, centered=True) == pytest.approx(value,
                                                                                   rel=1e-9)


def _additive(problem, full_sigma: bool = False) -> LinearContraction:
    sig = problem.Sigma_xi
    if full_sigma:
        rng = np.random.default_rng(5)
        G = rng.standard_normal(sig.shape)
        sig = G @ G.T / sig.shape[0] + 0.1 * np.eye(sig.shape[0])
    return LinearContraction(problem.A, problem.B, problem.c, problem.P, problem.Q, problem.S,
                             problem.p, problem.s, s_Z=0.0, s_Y=0.0, s_eps=problem.s_eps,
                             Sigma_xi=sig)


@pytest.mark.parametrize("eta", [0.5, 1.0, 0.83])
@pytest.mark.parametrize("tkj", [(1, 1, 1), (7, 3, 2), (20, 20, 20), (0, 5, 3), (5, 0, 1)])
@pytest.mark.parametrize("full_sigma", [False, True])
def test_recursion_matches_closed_form_additive_noise(eta, tkj, full_sigma):
    # docs/sid_bsgm.rst §14.1: with s_Z = s_Y = 0 and constant η the closed form agrees with the
    # recursion to 1e-12; we test 1e-10 relative (suggested test 2)
    prob = _additive(PROB, full_sigma)
    a = sid_moments(prob, LAM, *tkj, steps=eta)
    b = sid_moments_closed_form(prob, LAM, *tkj, eta=eta)
    assert a.mse == pytest.approx(b.mse, rel=1e-10)
    assert a.bias2 == pytest.approx(b.bias2, rel=1e-10, abs=1e-300)
    np.testing.assert_allclose(a.mean_error, b.mean_error, rtol=1e-10, atol=1e-13)


# ---- (b) S1: Monte Carlo against the exact recursion ---------------------------------------


def _mc(backend: str, problem, lam, t, k, J, steps, R, seed, control=None):
    oracle = ContractionOracle(problem, np.random.default_rng(seed))
    if control is None:
        est = implementation("estimator", "sid", backend)(oracle, lam, t, k, J, steps=steps,
                                                          replicas=R)
    else:
        est = implementation("estimator", "sid_control_reuse", backend)(
            oracle, lam, t, k, J, steps=steps, replicas=R, reuse=control)
    e = est.value - exact_solution(problem, lam).grad_f
    sq = np.sum(e * e, axis=1)
    return sq.mean(), sq.std(ddof=1) / np.sqrt(R), e.mean(0), e.std(0, ddof=1) / np.sqrt(R)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=pytest.mark.numba)])
def test_s1_monte_carlo_mse_matches_recursion(backend):
    """S1 at (10, 10, 10), R = 1e5. Three 4-SE comparisons (MSE and the two components of
    the mean error): false-positive rate ≤ 3 · 6.3e-5 = 1.9e-4 (normal approximation)."""
    R = 100_000
    exact = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA)
    m, se, mean, mean_se = _mc(backend, PROB, LAM, 10, 10, 10, ETA, R, seed=20261123)
    assert abs(m - exact.mse) <= 4 * se, (m, exact.mse, se)
    assert np.all(np.abs(mean - exact.mean_error) <= 4 * mean_se), (mean, exact.mean_error)
    # a MC estimate that detects nothing proves nothing: the SE must be small enough to
    # separate the control (≈ 5.97) from the truth (5.416)
    assert se < 0.03


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=pytest.mark.numba)])
def test_s1_negative_control_is_rejected(backend):
    """The LS that reuses each sample for two steps has MSE ≈ 5.97 (docs/sid_bsgm.rst §14.1): it
    must be
    outside 4 SE of the exact 5.416."""
    exact = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA)
    m, se, _, _ = _mc(backend, PROB, LAM, 10, 10, 10, ETA, 100_000, seed=7, control="pairs")
    assert abs(m - exact.mse) > 4 * se
    assert m == pytest.approx(5.97, abs=0.1)  # spec: "about 5.97"


def test_s1_ll_reuse_control_is_rejected():
    # smaller R suffices: the bias (≈ 0.52) is > 20 SE at R = 4e4
    exact = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA)
    m, se, _, _ = _mc("numpy", PROB, LAM, 10, 10, 10, ETA, 40_000, seed=8, control="ll")
    assert abs(m - exact.mse) > 4 * se
    assert m == pytest.approx(5.94, abs=0.1)  # spec: "about 5.94"


# ---- (c) S2: Θ(1/t) ---------------------------------------------------------------------------


def _slope(ts, ys):
    return np.polyfit(np.log(ts), np.log(ys), 1)[0]


def test_s2_slope_from_exact_recursion():
    ts = np.unique(np.round(np.geomspace(64, 1000, 8)).astype(int))
    mse = [sid_moments(PROB, LAM, t, t, t, steps=ETA).mse for t in ts]
    assert abs(_slope(ts, mse) + 1.0) <= 0.05  # docs/checks.rst S2
    # and the wrong exponent −1/2 is rejected by the same test (negative control)
    assert abs(_slope(ts, mse) + 0.5) > 0.05


def test_s2_constant_step_variance_does_not_vanish():
    ts = np.unique(np.round(np.geomspace(64, 1000, 8)).astype(int))
    m = [sid_moments(PROB, LAM, t, t, t, steps=StepSchedule.constant(0.5)) for t in ts]
    var = np.array([x.variance for x in m])
    assert var[-1] > 0.5 * var[0]  # ≈ 7.22 vs 7.39: a floor, not a 1/t decay
    assert abs(_slope(ts, [x.mse for x in m]) + 1.0) > 0.05  # fails the S2 slope test


# ---- (d) S3: deterministic linear rate -------------------------------------------------------


def test_s3_deterministic_linear_rate_golden():
    const = deterministic_constant(PROB, LAM, t_max=40)
    assert const.C == pytest.approx(52.39, abs=0.005)  # docs/sid_bsgm.rst §14.1 suggested test 4
    T = 40
    err = np.array([[sid_deterministic_error(PROB, LAM, t, k, centered=True)
                     for k in range(T)] for t in range(T)])
    mins = np.minimum.outer(np.arange(T), np.arange(T))
    ratio = err / (const.C * const.q**mins)
    assert ratio.max() <= 1.0
    assert ratio.max() == pytest.approx(0.24, abs=0.005)  # spec: largest ratio 0.24
    # negative control: the doubled rate q^{2 min(t,k)} must be violated
    assert (err / (const.C * const.q ** (2 * mins))).max() > 1.0


# ---- (e) S4: Theorem S for the fixed-point solvers ---------------------------------------------


def test_s4_ll_solver_theorem_s():
    ts = ll_theorem_s(PROB, LAM, beta=3.0, gamma=3.0)
    assert ts.conditions_hold
    assert ts.nu == pytest.approx(341.17, abs=0.005)  # docs/sid_bsgm.rst §14.1
    n = 5000
    path = ll_error_path(PROB, LAM, n, steps=ETA)
    scaled = path * (3.0 + np.arange(n + 1))
    assert scaled.max() <= ts.nu
    assert scaled.max() <= 23.4  # spec: "stays ≤ 23.4"
    # O(1/i) is sharp: (γ+i)E||w_i − w||² settles at a positive level (≈ 2.88) instead of
    # decaying, i.e. the error is Θ(1/i)
    assert scaled[-1] > 0.9 * scaled[n // 2] > 0
    _assert_faster_rate_fails(path)


def _assert_faster_rate_fails(path):
    """Negative control: a rate O(i^{-3/2}) would keep (γ+i)^{3/2} E bounded; here it grows
    like sqrt(i) (about 5x from i = n/25 to i = n), so that claim is rejected."""
    n = path.size - 1
    s15 = path * (3.0 + np.arange(n + 1)) ** 1.5
    assert s15[-1] > 3.0 * s15[n // 25]


def test_s4_ls_solver_theorem_s():
    ts = ls_theorem_s(PROB, LAM, beta=3.0, gamma=3.0)
    assert ts.conditions_hold
    n = 5000
    path = ls_error_path(PROB, LAM, n, steps=ETA)
    scaled = path * (3.0 + np.arange(n + 1))
    assert scaled.max() <= ts.nu
    assert scaled[-1] > 0.9 * scaled[n // 2] > 0  # Θ(1/i), as for the LL
    _assert_faster_rate_fails(path)


def test_ll_path_is_the_sid_recursion():
    # E||w_t − w||² from ll_error_path equals the trace used inside the SID recursion:
    # cross-check through the deterministic case, where it is ||A^t (w_0 − w)||²
    det = LinearContraction(PROB.A, PROB.B, PROB.c, PROB.P, PROB.Q, PROB.S, PROB.p, PROB.s)
    path = ll_error_path(det, LAM, 15, steps=1.0)
    e0 = -exact_solution(det, LAM).w_star
    want = [float(np.sum((np.linalg.matrix_power(PROB.A, i) @ e0) ** 2)) for i in range(16)]
    np.testing.assert_allclose(path, want, rtol=1e-12)


# ---- (f) backend parity (X4) and counters (X3) -----------------------------------------------


def _instance(d: int, seed: int):
    n = 1 if d == 1 else 2
    rng = np.random.default_rng(seed)
    prob = random_linear_contraction(d, n, rng, q=0.9, s_Z=0.3 / np.sqrt(d), s_Y=0.1,
                                     full_sigma=d != 3)
    return prob, rng.standard_normal(n)


@pytest.mark.numba
@pytest.mark.parametrize("d", [1, 3, 100])
@pytest.mark.parametrize("R", [1, 7])
@pytest.mark.parametrize("variant", [None, "pairs", "ll"])
def test_numpy_numba_parity(d, R, variant):
    from refbilevel.estimators.sid_numba import sid_control_reuse_numba, sid_numba

    prob, lam = _instance(d, seed=d)
    t, k, J = (6, 9, 4) if d == 100 else (13, 17, 5)
    steps = StepSchedule.decreasing(2.0, 3.0)
    o1 = ContractionOracle(prob, np.random.default_rng(99))
    o2 = ContractionOracle(prob, np.random.default_rng(99))
    w0 = np.linspace(-1, 1, d)
    if variant is None:
        a = sid(o1, lam, t, k, J, steps=steps, w0=w0, replicas=R)
        b = sid_numba(o2, lam, t, k, J, steps=steps, w0=w0, replicas=R)
    else:
        a = sid_control_reuse(o1, lam, t, k, J, steps=steps, w0=w0, replicas=R, reuse=variant)
        b = sid_control_reuse_numba(o2, lam, t, k, J, steps=steps, w0=w0, replicas=R,
                                    reuse=variant)
    # same draws, different summation order (BLAS vs loops): ≤ 1e-12 relative (docs/design.rst)
    assert a.value.shape == b.value.shape == (R, lam.size)
    assert rel(b.value, a.value) <= 1e-12
    assert a.counts == b.counts
    # both consumed exactly the same random numbers
    assert o1.rng.standard_normal() == o2.rng.standard_normal()


@pytest.mark.numba
def test_numba_golden_single_replica_is_bit_identical():
    from refbilevel.estimators.sid_numba import sid_numba

    o1 = ContractionOracle(PROB, np.random.default_rng(1))
    o2 = ContractionOracle(PROB, np.random.default_rng(1))
    a = sid(o1, LAM, 10, 10, 10, steps=ETA)
    b = sid_numba(o2, LAM, 10, 10, 10, steps=ETA)
    assert a.value.shape == (2,)
    # observed bit-for-bit at R = 1 on this instance (3x3 products summed in the same
    # order); if a BLAS update changes that, the 1e-12 contract above still holds
    assert rel(b.value, a.value) <= 1e-12


@pytest.mark.numba
def test_fixed_type_entry_point_equals_the_dispatcher():
    """sid_numba calls the compiled entry point directly after the first call
    (refbilevel.backends.numba_entry): repeated calls, with and without replicas and with a
    warm start, give bit-for-bit what the ordinary dispatcher gives on the same stream."""
    from refbilevel.estimators.sid import prepare_sid_inputs
    from refbilevel.estimators.sid_numba import (
        _SID_KERNEL,
        SidRun,
        contraction_record,
        sid_numba,
    )

    for kwargs in ({}, {"replicas": 3}, {"w0": np.ones(3)}, {}):
        o1 = ContractionOracle(PROB, np.random.default_rng(5))
        o2 = ContractionOracle(PROB, np.random.default_rng(5))
        a = sid_numba(o1, LAM, 7, 8, 3, steps=ETA, **kwargs).value
        inp = prepare_sid_inputs(o2, LAM, 7, 8, 3, ETA, kwargs.get("w0"),
                                 kwargs.get("replicas"))
        b = np.empty((inp.R, 2))
        _SID_KERNEL.via_dispatcher(o2.rng, contraction_record(o2),
                                   SidRun(inp.lam, inp.w0, inp.t, inp.k, inp.J, inp.eta, 0), b)
        np.testing.assert_array_equal(a.reshape(b.shape), b)
        assert o1.rng.standard_normal() == o2.rng.standard_normal()
    # the fast path is in use, and it was resolved for the one signature the dispatcher has
    assert _SID_KERNEL.signature in _SID_KERNEL.dispatcher.overloads


def test_cupy_path_logic_with_numpy_arrays():
    """The CuPy path's array code, run with xp = numpy and host noise, reproduces the NumPy
    reference (same draws and operations); the device-noise path agrees statistically."""
    o1 = ContractionOracle(PROB, np.random.default_rng(4))
    o2 = ContractionOracle(PROB, np.random.default_rng(4))
    a = sid(o1, LAM, 10, 12, 5, steps=ETA, replicas=7)
    inp = prepare_sid_inputs(o2, LAM, 10, 12, 5, ETA, None, 7)
    b = _sid_xp(np, o2, inp, _HostNoise(np, o2))
    assert rel(b, a.value) <= 1e-12
    # device noise (here numpy's generator stands in for CuPy's): S1-type 4.5-SE check,
    # false-positive rate 2 · 6.8e-6
    R = 20_000
    o3 = ContractionOracle(PROB, np.random.default_rng(5))
    inp = prepare_sid_inputs(o3, LAM, 10, 10, 10, ETA, None, R)
    g = _sid_xp(np, o3, inp, _DeviceNoise(np, o3))
    e = g - exact_solution(PROB, LAM).grad_f
    exact = sid_moments(PROB, LAM, 10, 10, 10, steps=ETA)
    sq = np.sum(e * e, 1)
    assert abs(sq.mean() - exact.mse) <= 4.5 * sq.std(ddof=1) / np.sqrt(R)
    assert np.all(np.abs(e.mean(0) - exact.mean_error) <= 4.5 * e.std(0, ddof=1) / np.sqrt(R))


@pytest.mark.cupy
def test_cupy_backend_matches_reference_on_host_noise():
    from refbilevel.backends import backend_status

    ok, why = backend_status("cupy")
    if not ok:
        pytest.skip(why)
    o1 = ContractionOracle(PROB, np.random.default_rng(4))
    o2 = ContractionOracle(PROB, np.random.default_rng(4))
    a = sid(o1, LAM, 10, 12, 5, steps=ETA, replicas=64)
    b = implementation("estimator", "sid", "cupy")(o2, LAM, 10, 12, 5, steps=ETA, replicas=64)
    assert rel(b.value, a.value) <= 1e-12
    assert a.counts == b.counts


def test_counts_match_the_paper():
    # docs/sid_bsgm.rst §4.2 / Def. 15: one SID call uses t + k + J copies of ζ and J copies of ξ
    o = ContractionOracle(PROB, np.random.default_rng(0))
    est = sid(o, LAM, 7, 4, 3, steps=ETA, replicas=5)
    c = est.counts
    assert (c.zeta, c.xi, c.phi, c.vjp_w, c.vjp_lam, c.grad_E) == (14, 3, 7, 4, 3, 3)
    assert c.samples == 7 + 4 + 2 * 3
    assert o.counts == c
    # the random numbers consumed equal what the benchmark floor draws
    o1 = ContractionOracle(PROB, np.random.default_rng(3))
    o2 = ContractionOracle(PROB, np.random.default_rng(3))
    sid(o1, LAM, 7, 4, 3, steps=ETA, replicas=5)
    o2.rng.standard_normal(5 * sid_normals_per_replica(o2, 7, 4, 3))
    assert o1.rng.standard_normal() == o2.rng.standard_normal()


def test_single_replica_shapes():
    o = ContractionOracle(PROB, np.random.default_rng(0))
    assert sid(o, LAM, 3, 3, 2, steps=ETA).value.shape == (2,)
    assert sid(o, LAM, 3, 3, 2, steps=ETA, replicas=1).value.shape == (1, 2)
    assert sid(o, np.tile(LAM, (4, 1)), 3, 3, 2, steps=ETA).value.shape == (4, 2)


def test_noise_free_sid_is_the_deterministic_iteration():
    det = LinearContraction(PROB.A, PROB.B, PROB.c, PROB.P, PROB.Q, PROB.S, PROB.p, PROB.s)
    o = ContractionOracle(det, np.random.default_rng(0))
    g = sid(o, LAM, 10, 10, 3, steps=1.0).value
    assert np.linalg.norm(g - exact_solution(det, LAM).grad_f) == pytest.approx(
        1.6199130803e-03, rel=1e-6)


# ---- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"t": -1}, "t must be an integer in"),
    ({"k": -2}, "k must be an integer in"),
    ({"J": 0}, "J must be an integer in"),
    ({"t": 2.5}, "t must be an integer"),
    ({"lam": [np.nan, 0.0]}, "lam must be finite"),
    ({"lam": [1.0, 2.0, 3.0]}, "lam must have shape"),
    ({"w0": np.zeros(2)}, "w0 must have shape"),
    ({"steps": "decreasing"}, "unknown step schedule"),
    ({"steps": 1.5}, "must lie in"),
    ({"steps": [1.0, 0.5]}, "at least"),
    ({"steps": [1.0, 0.0, 1.0, 1.0, 1.0]}, "must lie in"),
    ({"replicas": 0}, "replicas must be an integer in"),
    ({"replicas": 3, "lam": np.zeros((4, 2))}, "replica counts disagree"),
])
def test_bad_input_raises(kwargs, match):
    args = {"lam": LAM, "t": 5, "k": 5, "J": 2, "steps": ETA, "w0": None, "replicas": None}
    args.update(kwargs)
    o = ContractionOracle(PROB, np.random.default_rng(0))
    with pytest.raises(ValueError, match=match):
        sid(o, args["lam"], args["t"], args["k"], args["J"], steps=args["steps"],
            w0=args["w0"], replicas=args["replicas"])


def test_bad_schedule_and_control_raise():
    with pytest.raises(ValueError, match="step schedule kind must be one of"):
        StepSchedule("cosine")
    with pytest.raises(ValueError, match="beta must lie in"):
        StepSchedule.decreasing(4.0, 3.0)
    with pytest.raises(ValueError, match="eta must lie in"):
        StepSchedule.constant(0.0)
    with pytest.raises(ValueError, match="reuse must be one of"):
        sid_control_reuse(ContractionOracle(PROB, np.random.default_rng(0)), LAM, 2, 2, 1,
                          steps=ETA, reuse="triples")
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        ContractionOracle(PROB, 0)
    with pytest.raises(ValueError, match="form must be"):
        sid_moments(PROB, LAM, 1, 1, 1, steps=ETA, form="other")
    with pytest.raises(ValueError, match="needs s_Z = s_Y = 0"):
        sid_moments_closed_form(PROB, LAM, 1, 1, 1, eta=0.5)
    np.testing.assert_allclose(step_sequence(ETA, 3), [1.0, 0.75, 0.6])


def test_x2_contraction_oracle_unbiased_with_configured_variance():
    """Spec §14.1: E Φ(w,λ;ζ) = Φ(w,λ), E||Φ(·;ζ) − Φ||² = d s_Z²||w||² + d s_Y²||λ||² +
    d s_ε², E||Zᵀv||² = d s_Z²||v||², E||Yᵀv||² = n s_Y²||v||², Cov ξ = Σ_ξ (correlated Σ_ξ
    here). 4.5-SE comparisons (31 of them): false-positive rate ≤ 31 · 6.8e-6 = 2.1e-4."""
    rng = np.random.default_rng(11)
    prob = random_linear_contraction(3, 2, rng, s_Z=0.2, s_Y=0.3, s_eps=0.4)
    d, n, R = 3, 2, 40_000
    o = ContractionOracle(prob, np.random.default_rng(12))
    w, lam, v = rng.standard_normal(d), rng.standard_normal(n), rng.standard_normal(d)

    def check_mean(x, mean):
        se = x.std(0, ddof=1) / np.sqrt(R)
        assert np.all(np.abs(x.mean(0) - mean) <= 4.5 * se)

    def check_sq(x, mean, want):
        sq = np.sum((x - mean) ** 2, -1)
        assert abs(sq.mean() - want) <= 4.5 * sq.std(ddof=1) / np.sqrt(R)

    W = np.tile(w, (R, 1))
    phi = o.phi_map(W, lam, o.draw_zeta(R))
    exact = prob.A @ w + prob.B @ lam + prob.c
    check_mean(phi, exact)
    check_sq(phi, exact, d * prob.s_Z**2 * w @ w + d * prob.s_Y**2 * lam @ lam
             + d * prob.s_eps**2)
    V = np.tile(v, (R, 1))
    jw = o.vjp_w(W, lam, V, o.draw_zeta(R, "Z"))
    check_mean(jw, prob.A.T @ v)
    check_sq(jw, prob.A.T @ v, d * prob.s_Z**2 * v @ v)
    jl = o.vjp_lam(W, lam, V, o.draw_zeta(R, "Y"))
    check_mean(jl, prob.B.T @ v)
    check_sq(jl, prob.B.T @ v, n * prob.s_Y**2 * v @ v)
    g1, g2 = o.grad_E(W, lam, o.draw_xi(R))
    e1, e2 = prob.grad_E(w, lam)
    check_mean(g1, e1)
    check_mean(g2, e2)
    xi = np.concatenate([g1 - e1, g2 - e2], axis=1)
    # covariance entries: E[ξ_a ξ_b] = Σ_ab, each a mean of R products
    prods = xi[:, :, None] * xi[:, None, :]
    se = prods.std(0, ddof=1) / np.sqrt(R)
    iu = np.triu_indices(d + n)
    assert np.all(np.abs(prods.mean(0) - prob.Sigma_xi)[iu] <= 4.5 * se[iu])
    assert o.counts.as_dict() == {"zeta": 3, "xi": 1, "phi": 1, "vjp_w": 1, "vjp_lam": 1,
                                  "grad_E": 1}


def test_oracle_sample_parts_are_enforced():
    o = ContractionOracle(PROB, np.random.default_rng(0))
    z = o.draw_zeta(4, "Y")
    with pytest.raises(ValueError, match="sample lacks part"):
        o.vjp_w(np.zeros((4, 3)), LAM, np.ones((4, 3)), z)
    with pytest.raises(ValueError, match="parts must be"):
        o.draw_zeta(4, "X")


# ---- (g) Hypothesis: S1 on random small instances ------------------------------------------


@settings(max_examples=8, deadline=None)
@given(case=contraction_cases(max_d=3, max_n=2), t=st.integers(0, 6), k=st.integers(0, 6),
       J=st.integers(1, 4), beta=st.floats(0.5, 3.0))
def test_s1_random_instances(case, t, k, J, beta):
    """MC MSE and MC mean error against the exact recursion, R = 2e4 (NumPy reference), on
    random contractions drawn by refbilevel.testing (failures shrink to d = n = 1). Two
    Bonferroni z-tests per example at 6.25e-5 each (normal approximation): 8 examples,
    false-positive rate <= 1e-3 in all."""
    steps = StepSchedule.decreasing(beta, 3.0)
    R = 20_000
    exact = sid_moments(case.problem, case.lam, t, k, J, steps=steps)
    m, se, mean, mean_se = _mc("numpy", case.problem, case.lam, t, k, J, steps, R,
                               seed=case.seed)
    rate = 1e-3 / 16
    assert_estimate_matches(m, se, exact.mse, false_positive_rate=rate)
    assert_estimate_matches(mean, mean_se, exact.mean_error, false_positive_rate=rate)
