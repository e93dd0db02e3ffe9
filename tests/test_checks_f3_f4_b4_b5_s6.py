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


@pytest.mark.parametrize("cid", ["F4", "S6"])
def test_new_checks_are_registered(cid):
    assert cid in discover()
