"""S2: SID's MSE is Θ(1/t) with t = k = J and decreasing steps (Grazzi, Pontil, Salzo 2023,
Corollary 10; docs/sid_bsgm.rst §9 Corollary 10', §14.1 suggested test 3; docs/checks.rst S2).

Measured on the §14.1 golden instance with η_i = 3/(3+i) (Theorem S's conditions hold
there: βc/2 = 1.032 > 1):

- the least-squares slope of log MSE against log t over t = k = J ∈ [64, 1000] from the
  exact moment recursion (8 log-spaced t in quick mode, 16 in full mode); the claim holds
  when it lies in −1 ± 0.05 (docs/checks.rst). Deterministic: no false positives;
- the same slope from Monte Carlo MSEs (R replicas per t), with its standard error from
  the per-point SEs (delta method: SE(log MSE) = SE(MSE)/MSE); it must also lie in
  −1 ± 0.05, and agree with the exact slope on the same t grid within 4 SE. With the
  quick-mode SE (about 0.009) the exact slope on that grid (−0.9926) is 4.8 SE inside the
  band, so a false failure of the band test has probability < 1e-6, and the 4-SE
  comparison has false-positive rate 6.3e-5 (normal approximation);
- the constant-step floor: with η ≡ 0.5 the variance at t = 1000 stays within a factor 2
  of its value at t = 64 (it does not vanish), reported as part of the claim.

Negative controls (both must be rejected by the same slope test):
- constant step η ≡ 0.5: slope ≈ −0.01, outside −1 ± 0.05;
- the wrong exponent: "MSE = Θ(t^{-1/2})" — the exact slope must lie outside −0.5 ± 0.05.
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, z_level
from refbilevel.problems.contraction import golden_instance
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.sid_moments import StepSchedule, sid_moments
from theory_checks.s1_sid_mse import mc_mse

CLAIM = ClaimInfo(
    id="S2",
    claim="E||ĝ − ∇f||² = Θ(1/t) with t = k = J and decreasing steps: log-log slope −1 ± 0.05",
    source="Grazzi, Pontil, Salzo 2023, Corollary 10; docs/sid_bsgm.rst §9, §14.1",
    evidence=(Evidence("exact", "slope of the exact moment recursion"),
              Evidence("statistical", "Monte Carlo slope within 4 SE", fpr=1e-3)),
)

SLOPE, TOL = -1.0, 0.05  # docs/checks.rst S2
WRONG_SLOPE = -0.5  # the control exponent
STEPS = StepSchedule.decreasing(3.0, 3.0)
CONSTANT = StepSchedule.constant(0.5)


def t_grid(points: int) -> np.ndarray:
    return np.unique(np.round(np.geomspace(64, 1000, points)).astype(int))


def fit_slope(ts, y, se_log=None) -> tuple[float, float]:
    """(slope, SE) of the least-squares line through (log t, log y); SE from per-point SEs
    of log y (independent points), 0 when none are given (exact values)."""
    x = np.log(np.asarray(ts, dtype=float))
    X = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(X, np.log(y), rcond=None)
    if se_log is None:
        return float(coef[0]), 0.0
    H = np.linalg.pinv(X)[0]  # slope = H @ log y
    return float(coef[0]), float(np.sqrt(np.sum((H * np.asarray(se_log)) ** 2)))


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    g = golden_instance()
    prob, lam = g.problem, g.lam
    ts = t_grid(8 if mode == "quick" else 16)
    exact = [sid_moments(prob, lam, t, t, t, steps=STEPS)
             for t in track(ts, "S2 exact recursion", note=lambda t: f"t={t}")]
    mse = np.array([e.mse for e in exact])
    slope_exact, _ = fit_slope(ts, mse)
    const = [sid_moments(prob, lam, t, t, t, steps=CONSTANT)
             for t in track(ts, "S2 exact recursion, constant step", note=lambda t: f"t={t}")]
    mse_c = np.array([e.mse for e in const])
    var_c = np.array([e.variance for e in const])
    slope_const, _ = fit_slope(ts, mse_c)

    ts_mc = np.array([64, 128, 256, 512, 1000]) if mode == "quick" else t_grid(8)
    R = 4000 if mode == "quick" else 40_000
    mc, mc_se = [], []
    for t in track(ts_mc, "S2 Monte Carlo", note=lambda t: f"t={t}"):
        m, se, _, _ = mc_mse(backend, prob, lam, int(t), int(t), int(t), steps=STEPS, R=R,
                             rng=named_stream(seed, f"S2/mc/t={t}"), chunk=20_000)
        mc.append(m)
        mc_se.append(se)
    mc, mc_se = np.array(mc), np.array(mc_se)
    slope_mc, slope_mc_se = fit_slope(ts_mc, mc, mc_se / mc)
    slope_exact_mc_grid, _ = fit_slope(
        ts_mc, [sid_moments(prob, lam, int(t), int(t), int(t), steps=STEPS).mse for t in ts_mc])
    mc_agrees = abs(slope_mc - slope_exact_mc_grid) <= 4 * slope_mc_se

    in_band = lambda s, c: abs(s - c) <= TOL  # noqa: E731
    floor_ratio = float(var_c[-1] / var_c[0])
    passed = (in_band(slope_exact, SLOPE) and in_band(slope_mc, SLOPE) and mc_agrees
              and floor_ratio > 0.5)
    control_const = not in_band(slope_const, SLOPE)
    control_exp = not in_band(slope_exact, WRONG_SLOPE)
    return Measurement(
        passed=bool(passed),
        control_rejected=bool(control_const and control_exp),
        measured={"t_exact": ts, "mse_exact": mse, "t_times_mse": ts * mse,
                  "slope_exact": slope_exact, "t_mc": ts_mc, "mse_mc": mc, "se_mc": mc_se,
                  "mse_mc_ci_4se": np.column_stack([mc - 4 * mc_se, mc + 4 * mc_se]),
                  "R_per_t": R, "slope_mc": slope_mc, "slope_mc_se": slope_mc_se,
                  "slope_mc_ci_4se": [slope_mc - 4 * slope_mc_se, slope_mc + 4 * slope_mc_se],
                  "slope_exact_on_mc_grid": slope_exact_mc_grid,
                  "mc_slope_agrees_with_exact": bool(mc_agrees),
                  "constant_step_variance_t64": float(var_c[0]),
                  "constant_step_variance_t1000": float(var_c[-1]),
                  "constant_step_variance_ratio": floor_ratio,
                  "uncertainty": {
                      "mse_exact, t_times_mse, slope_exact, slope_exact_on_mc_grid, "
                      "constant_step_variance_*": EXACT + " (moment recursion)",
                      "mse_mc": "mse_mc_ci_4se = mse_mc ± 4 se_mc, se_mc = sd/√R over R "
                                "independent replicas (normal approximation), two-sided "
                                f"level {z_level(4.0):.4%}",
                      "slope_mc": "slope_mc_ci_4se = slope_mc ± 4 slope_mc_se, SE by the "
                                  "delta method from the per-t SEs (independent streams per "
                                  f"t), two-sided level {z_level(4.0):.4%}: the level of "
                                  "the check's 4-SE agreement test"}},
        bound={"slope": SLOPE, "tolerance": TOL, "t_range": [64, 1000],
               "constant_step_variance_ratio_min": 0.5},
        control={"description": "same slope test on (a) constant step η ≡ 0.5 (variance does "
                                "not vanish) and (b) the wrong exponent −1/2: both rejected",
                 "slope_constant_step": slope_const, "constant_step_rejected": control_const,
                 "wrong_exponent": WRONG_SLOPE, "wrong_exponent_rejected": control_exp},
        notes=[f"backend {backend}; η_i = 3/(3+i) (LL and LS, LS index restarted)"],
        figure_data={"ts": ts, "mse": mse, "mse_c": mse_c, "var_c": var_c, "ts_mc": ts_mc,
                     "mc": mc, "mc_se": mc_se},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    f = m.figure_data
    ts = f["ts"]
    ax1.loglog(ts, f["mse"], "o-", label=f"exact, slope {m.measured['slope_exact']:.3f}")
    ax1.errorbar(f["ts_mc"], f["mc"], yerr=4 * f["mc_se"], fmt="s", ms=4,
                 label=f"Monte Carlo ± 4 SE, slope {m.measured['slope_mc']:.3f}")
    ax1.loglog(ts, f["mse_c"], "^-", color="tab:red",
               label=f"control η ≡ 0.5, slope {m.control['slope_constant_step']:.3f}")
    ax1.loglog(ts, f["mse"][0] * (ts / ts[0]) ** -1.0, "k--", lw=1, label="reference t^-1")
    ax1.loglog(ts, f["mse"][0] * (ts / ts[0]) ** -0.5, "k:", lw=1,
               label="control exponent t^-1/2")
    ax1.set_xlabel("t = k = J")
    ax1.set_ylabel("E||ĝ − ∇f||²")
    ax1.legend(fontsize=6)
    ax2.semilogx(ts, ts * f["mse"], "o-", label="t · MSE (decreasing steps)")
    ax2.set_xlabel("t = k = J")
    ax2.set_ylabel("t · MSE")
    ax2b = ax2.twinx()
    ax2b.semilogx(ts, f["var_c"], "^-", color="tab:red", label="variance, η ≡ 0.5")
    ax2b.set_ylabel("tr Cov(ĝ), constant step", color="tab:red")
    ax2.legend(fontsize=6, loc="lower right")


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.s2_sid_rate"))
