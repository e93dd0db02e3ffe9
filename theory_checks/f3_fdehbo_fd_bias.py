"""F3: FdeHBO (Theorem 1) and FMBO (Theorem 2) reach E||∇Φ(x_a(T))||² = Õ(T^{-2/3}) where the
finite differences are biased: non-quadratic lower level, y-dependent Hessian, multiplicative
minibatch noise (Yang, Xiao, Ji, NeurIPS 2023, Theorems 1, 2; docs/fdehbo.rst §2, §7, §10.2,
docs/checks.rst F3).

What F2 cannot see, F3 runs: on F2's quadratic the finite differences are exact (FdeHBO =
FMBO), H = I and the noise is additive, so STORM's same-sample corrections are noise-free.
Here:

- problem: logistic hyper-cleaning (:class:`refbilevel.problems.logistic_cleaning.
  LogisticCleaning`, N = 10 training rows weighted by σ(x_i), d_y = 3, m = 10 validation
  rows, μ = 0.1, ρ = 0.01, upper-level weight c_f = 10, seed 0): g is not quadratic,
  ∇²_yy g depends on y (L_gyy = 0.357, L_gxy = 0.054 from the problem's DERIVED bounds), Φ is
  nonconvex in x; y*(x) by Newton, ∇Φ by formula (2);
- noise: :class:`refbilevel.oracles.row_weights.RowWeightOracle`, minibatches of 2 rows
  (with replacement) at both levels, written as row weights: multiplicative, (x, y)-dependent,
  so a same-sample STORM difference is still noisy;
- schedule: F2's Theorem 1/2 family α_t = (w+t)^{-1/3}, β = c_β α, λ = c_λ α, η = c_η α²,
  (w, c_β = c_λ, c_η) = (8, 1, 3) (the paper's eqs. (33)/(67) are NOT RECOVERED; these
  satisfy docs/fdehbo.rst §7's admissibility conditions here: η ≤ 1, β, λ ≤ 1/L_g);
  r_v = 100 ≥ sup||∇_y f||/μ on the path; FdeHBO's δ_ε at Theorem 1's bound
  min(c_ηf, c_ηR)/(8 L r_v² (w+T_max−1)^{2/3}) with L = max(L_gxy, L_gyy) (docs/fdehbo.rst §7's
  safe choice); x_0 = 0, y_0 = 0, v_0 = 0;
- both algorithms on one common sample stream (the oracle maps FdeHBO's and FMBO's draws to
  the same families), so the FdeHBO − FMBO gap is the finite differences' doing; it is
  reported against δ_ε (Lemma 5: O(δ) per evaluation).

Test (as F2): x_a(T) is uniform on {0..T−1}, so E||∇Φ(x_a(T))||² is the prefix average of
E||∇Φ(x_t)||² and one run gives every T ≤ T_max (the schedule does not depend on T; δ_ε is
set for T_max, so it satisfies Theorem 1's bound for every T ≤ T_max). The least-squares slope
of its log against log T over 5 log-spaced T in [T_max/16, T_max] must be ≤ −2/3 + 0.1 (the
tolerance covers the Õ's logarithms and the finite range) for both algorithms: the upper end
of the 99.9% Student-t interval over 8 groups of replicas (t_7 = 5.41 group standard errors),
so each decision's false-positive rate is ≤ 1e-3 (normal group slopes). Evidence:
statistical.

Negative control: the same statistic must reject the false claim "E||∇Φ(x_a(T))||² = O(T^{-1})"
(the deterministic rate): the lower end of the FMBO interval must lie above −1 + 0.1. (The
claims ledger's suggested control, a fixed δ_ε = 0.5, is run in ``--full`` and reported:
on this instance its bias floor, measured on the exact-oracle run, is ~1e-4 at δ = 1-4,
far below the noise level at T_max, so it is not certain to fail and is not used as the
control; the audit note asked to size it with a pilot and state the margin, which this is.)

Quick: R = 128 replicas, T_max = 2000. Full: R = 256, T_max = 8000, plus the fixed-δ = 0.5
FdeHBO run and an exact-oracle FMBO run (full batches) whose E||∇Φ||² shows how much of the
level the noise makes.

Measured (seed 20261123): quick, slope −0.755 [−0.820, −0.691] for both algorithms (the
FdeHBO − FMBO gap 1.2e-9 at δ_ε = 6.6e-7), E||∇Φ(x_a(T))||² from 0.104 (T = 125) to 0.0130
(T = 2000); full, −0.706 [−0.759, −0.650], gap 6.5e-9; the fixed-δ = 0.5 run −0.694 with a
level 54% higher at T_max (0.0079 against 0.0052); the exact-oracle FMBO run's prefix average
0.0017, so the noise sets most of the level. Time: quick 8 s CPU (25 s wall on the shared
machine; half of it the Newton ground truth), full about 3 min CPU (measured before the
problem's y* cache halved the ground-truth cost).

Figure: left, the prefix averages with 99.9% bands and the T^{-2/3} reference; right, the
slope intervals against the threshold −2/3 + 0.1 and the control's threshold −1 + 0.1.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms.fdehbo import StormSchedule, theorem1_delta_bound
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, LEVEL, t_quantile
from refbilevel.oracles.row_weights import RowWeightOracle
from refbilevel.problems.logistic_cleaning import LogisticCleaning
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.solver import solve
from refbilevel.solver_record import solver_record
from theory_checks.f2_fdehbo_rate import GROUPS, prefix_average_rate

CLAIM = ClaimInfo(
    id="F3",
    claim="FdeHBO and FMBO: E||grad Phi(x_a(T))||^2 = O~(T^(-2/3)) with biased finite "
          "differences, non-quadratic LL, multiplicative noise",
    source="Yang, Xiao, Ji (NeurIPS 2023) Theorems 1, 2; docs/fdehbo.rst §2, §7, §10.2",
    evidence=(Evidence("statistical", "slope intervals", fpr=1e-3,
                       note="99.9% Student-t over 8 replica groups"),),
)

TOL = 0.1
SCHEDULE = StormSchedule(w=8.0, c_beta=1.0, c_lambda=1.0, c_eta_f=3.0, c_eta_R=3.0,
                         c_eta_g=3.0)
BATCH = 2
R_V = 100.0
CONTROL_SLOPE = -1.0  # the false claim of the control: the deterministic rate T^{-1}
FIXED_DELTA = 0.5  # the claims ledger's fixed-δ variant (reported in --full)


def problem() -> LogisticCleaning:
    """The F3 instance (module docstring)."""
    return LogisticCleaning(n=10, d=3, m=10, mu=0.1, rho=0.01, upper_scale=10.0, seed=0)


def delta_theorem1(P: LogisticCleaning, T: int) -> float:
    L = max(P.constants.extra["L_gyy"], P.constants.extra["L_gxy"])
    return theorem1_delta_bound(SCHEDULE, L, R_V, T)


def run(variant: str, *, R: int, T: int, seed: int, delta: float, batch: int | None = BATCH):
    P = problem()
    oracle = RowWeightOracle(P, batch, batch, named_stream(seed, "F3/samples"))
    # NumPy: the row-weight minibatch oracle has no Numba form. "paper" with every schedule
    # field given: LogisticCleaning states no Lipschitz constant of ∇φ, which only the
    # computed modes need
    # δ goes to a method that takes a finite-difference step (FdeHBO; FMBO's products are
    # exact)
    fd = {"delta": delta} if "delta" in solver_record(variant).options else {}
    return solve(P, variant, mode="paper", oracle=oracle, x0=np.zeros((R, P.d_x)), y0=0.0,
                 T=T, r_v=R_V, **SCHEDULE.as_dict(), **fd)


def rate(tr, label: str) -> dict:
    """Slope of the prefix average of mean ||∇Φ||² against T, overall and per group (F2's
    statistic, :func:`theory_checks.f2_fdehbo_rate.prefix_average_rate`)."""
    return {"label": label, **prefix_average_rate(tr.grad_phi_norm[:-1] ** 2),
            "diverged": int(tr.diverged.sum()), "v_norm_max": float(tr.extra["v_norm_max"])}


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    R, T = (128, 2000) if mode == "quick" else (256, 8000)
    P = problem()
    delta = delta_theorem1(P, T)
    thr = -2.0 / 3.0 + TOL
    traces = {v: run(v, R=R, T=T, seed=seed, delta=delta)
              for v in track(["fmbo", "fdehbo"], "F3 runs")}
    rows = [rate(traces[v], v) for v in ("fmbo", "fdehbo")]
    gap = float(np.nanmax(np.abs(traces["fmbo"].x - traces["fdehbo"].x)))
    passed = all(r["ci999"][1] <= thr and r["diverged"] == 0 for r in rows)
    ctrl_thr = CONTROL_SLOPE + TOL
    rejected = rows[0]["ci999"][0] > ctrl_thr
    informative = {}
    if mode == "full":
        fixed = rate(run("fdehbo", R=R, T=T, seed=seed, delta=FIXED_DELTA),
                     f"fdehbo, fixed δ = {FIXED_DELTA}")
        exact = run("fmbo", R=1, T=T, seed=seed, delta=delta, batch=None)
        informative = {
            "fixed_delta_run": {k: v for k, v in fixed.items()
                                if k not in ("curve", "curve_band")},
            "exact_oracle_fmbo_final_grad_sq": float(exact.grad_phi_norm[-1, 0] ** 2),
            "exact_oracle_fmbo_prefix_avg_at_T_max": float(
                np.mean(exact.grad_phi_norm[:-1, 0] ** 2))}
        rows_fig = rows + [fixed]
    else:
        rows_fig = rows

    def public(r):
        return {k: v for k, v in r.items() if k not in ("curve", "curve_band")}

    return Measurement(
        passed=passed, control_rejected=rejected,
        measured={"evidence": "statistical (99.9% Student-t over 8 replica groups; "
                              "false-positive rate <= 1e-3 per decision)",
                  "runs": [public(r) for r in rows], "replicas": R, "T_max": T,
                  "delta_theorem1": delta, "L_gyy": P.constants.extra["L_gyy"],
                  "L_gxy": P.constants.extra["L_gxy"], "r_v": R_V, "batch": BATCH,
                  "schedule": SCHEDULE.as_dict(),
                  "fdehbo_minus_fmbo_max_abs_x_gap": gap, **informative,
                  "uncertainty": {
                      "slope": "point estimate from all replicas; ci999 = mean of the 8 group "
                               f"slopes ± {t_quantile(LEVEL, GROUPS - 1):.2f} group SE",
                      "E_grad_sq_ci999": f"{LEVEL:.1%} Student-t interval over the R "
                                         "independent replicas, per T",
                      "delta_theorem1, gap, schedule": EXACT + " (the gap is a max over one "
                                                               "common sample stream)"}},
        bound={"slope_at_most": thr, "claimed_slope": -2.0 / 3.0, "tolerance": TOL,
               "delta": "Theorem 1: min(c_ηf, c_ηR)/(8 max(L_gxy, L_gyy) r_v² "
                        "(w+T_max-1)^(2/3))"},
        control={"description": "the false claim O(T^-1) must be rejected: the lower end of "
                                f"FMBO's slope interval above {ctrl_thr:g}",
                 "threshold": ctrl_thr, "fmbo_ci999": rows[0]["ci999"]},
        notes=["FdeHBO and FMBO see the same samples; their gap is the finite differences' "
               "doing (rounding ~1e-10 plus the O(δ²) truncation at this δ)",
               "the ledger's fixed-δ control is reported in --full, not used: its bias floor "
               "(~1e-4) is below the noise level at T_max on this instance"],
        figure_data={"rows": rows_fig, "thr": thr, "ctrl_thr": ctrl_thr},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    fd = m.figure_data
    for r in fd["rows"]:
        curve = r["curve"]
        t = np.arange(1, curve.size + 1)
        (line,) = ax1.loglog(t, curve, label=f"{r['label']}: slope {r['slope']:.3f}")
        lo, hi = r["curve_band"]
        ax1.fill_between(t, np.maximum(lo, curve * 1e-3), hi, color=line.get_color(),
                         alpha=0.2, lw=0)
    c0 = fd["rows"][0]["curve"]
    t = np.arange(1, c0.size + 1)
    ax1.loglog(t, c0[-1] * (t / t[-1]) ** (-2 / 3), "k--", lw=1, label="T^(-2/3)")
    ax1.set_xlabel("T")
    ax1.set_ylabel("(1/T) Σ E||∇Φ(x_t)||² (99.9% band)")
    ax1.legend(fontsize=7)
    for i, r in enumerate(fd["rows"]):
        lo, hi = r["ci999"]
        ax2.plot([lo, hi], [i, i], "-", lw=4)
        ax2.plot(r["slope"], i, "ko", ms=4)
    ax2.axvline(fd["thr"], color="k", ls="--", label="threshold -2/3 + 0.1")
    ax2.axvline(fd["ctrl_thr"], color="tab:red", ls=":", label="control: -1 + 0.1")
    ax2.set_yticks(range(len(fd["rows"])), [r["label"] for r in fd["rows"]], fontsize=7)
    ax2.set_xlabel("fitted slope (99.9% interval)")
    ax2.legend(fontsize=7)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.f3_fdehbo_fd_bias"))
