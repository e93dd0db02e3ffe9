"""S5: BSGM's Corollary 13 inequality holds on every path; sample complexity O(ε^{-2})
(Grazzi, Pontil, Salzo, JMLR 2023, Corollary 13, Theorem 16; docs/sid_bsgm.rst §10 (Cor. 13'),
§11 (Thm 16'), §14.4, docs/checks.rst S5).

Pathwise part (§14.4): BSGM on the §14.1 golden instance from λ_0 = (0.9, 0.9), α = 1/L_f,
T = 100, SID with η_i = 3/(3+i) restarted in every call, no warm start, on both
Λ = [−1, 1]² (constraint inactive at the optimum) and Λ = [0, 1]² (active), with the
finite-horizon (t = k = J = T) and the increasing (t_s = k_s = J_s = s+1) schedules. On every
replica the DERIVED Corollary 13' inequality

    (1/T)Σ_{s<T}||G_{1/L}(λ_s)||² ≤ 8L(f(λ_0) − f*)/T + (10/T)Σ_{s<T}||Δ_s||²

must hold with the realized errors Δ_s = ĝ_s − ∇f(λ_s) (Theorem 12' is a deterministic
inequality, so it holds on every path; no false positives). G is computed from the exact
∇f; f* = min_Λ f by exact projected gradient descent (f is convex here; matches §14.4).

Sample-complexity part (Theorem 16'(ii)): with the finite-horizon schedule the samples are
N(T) = 4T² and the average of (1/T)Σ||G||² over paths decays like C/T, so N ∝ ε^{-2} with
ε the achieved mean squared gradient mapping. The exponent fitted over T ∈ {10, 20, 40, 80}
(quick) must lie in 2 ± 0.3 (the ± covers the finite range: the bound's two terms decay at
the same 1/T rate but the realized transient does not).

Negative controls: (a) the pathwise inequality with its right side divided by 10 must be
violated on at least one path; (b) the exponent claim "O(ε^{-1})" (exponent 1) must be
outside the measured exponent's interval.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms.bsgm import Box, constrained_minimum, corollary13
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, LEVEL, binomial_ci, brief, mean_ci
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import golden_instance
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.solver import solve

CLAIM = ClaimInfo(
    id="S5",
    claim="BSGM: Corollary 13' inequality on every path; samples O(eps^-2)",
    source="Grazzi, Pontil, Salzo (JMLR 2023) Cor. 13, Thm 16; docs/sid_bsgm.rst §10, §11, "
           "§14.4",
    evidence=(Evidence("exact",
                       "Corollary 13' inequality on every path (deterministic inequality)"),
              Evidence("statistical", "fitted sample exponent, 99.9% interval", fpr=1e-3)),
)

LAM0 = (0.9, 0.9)
CONSTRAINTS = {"[-1,1]^2": Box(-1.0, 1.0), "[0,1]^2": Box(0.0, 1.0)}
CONTROL_SCALE = 0.1
EXP_TOL = 0.3


def run_paths(constraint, schedule: str, T: int, R: int, seed: int, backend: str):
    """BSGM's Trace (λ as x) with every outer step recorded: ``extra`` holds the pathwise
    ||G_α(λ_s)||², ||Δ_s||² and f(λ_s); α = 1/L_f (the "paper" mode's, Corollary 13')."""
    g = golden_instance()
    o = ContractionOracle(g.problem, named_stream(seed, f"S5/{schedule}/{constraint}"))
    return solve(g.problem, "bsgm", backend=backend, mode="paper", oracle=o,
                 x0=np.array(LAM0), replicas=R, T=T, schedule=schedule, constraint=constraint)


def pathwise(tr, f_star: float, scale: float = 1.0) -> dict:
    """Corollary 13' on every path of the trace (docs/sid_bsgm.rst §10)."""
    ex = tr.extra
    return corollary13(ex["grad_map_sq"], ex["delta_sq"], ex["f"][0], tr.params["alpha"],
                       f_star, scale=scale)


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    R = 10 if mode == "quick" else 200
    T = 100
    P = golden_instance().problem
    rows, ctrl_rows, figs = [], [], []
    runs = [(label, box, schedule) for label, box in CONSTRAINTS.items()
            for schedule in ("finite", "increasing")]
    f_stars = {label: constrained_minimum(P, box, LAM0)[1] for label, box in CONSTRAINTS.items()}
    for label, box, schedule in track(runs, "S5 pathwise runs",
                                      note=lambda r: f"{r[0]} {r[2]}"):
        f_star = f_stars[label]
        tr = run_paths(box, schedule, T, R, seed, backend)
        c = pathwise(tr, f_star)
        cc = pathwise(tr, f_star, scale=CONTROL_SCALE)
        rows.append({"constraint": label, "schedule": schedule, "f_star": f_star,
                     "lhs_range": [float(c["lhs"].min()), float(c["lhs"].max())],
                     "rhs_range": [float(c["rhs"].min()), float(c["rhs"].max())],
                     "min_margin": float(c["margin"].min()),
                     "max_lhs_over_rhs": float((c["lhs"] / c["rhs"]).max()),
                     "deterministic_part": float(np.max(c["deterministic_part"])),
                     "violations": int((c["margin"] < 0).sum()), "paths": R,
                     "samples_per_path": int(tr.counts["samples"][-1]),
                     "lhs_mean_ci999": brief(mean_ci(c["lhs"], LEVEL, what="paths")),
                     "rhs_mean_ci999": brief(mean_ci(c["rhs"], LEVEL, what="paths")),
                     "violation_frequency": brief(binomial_ci(
                         int((c["margin"] < 0).sum()), R, LEVEL))})
        ctrl_rows.append({"constraint": label, "schedule": schedule,
                          "violations": int((cc["margin"] < 0).sum()), "paths": R})
        figs.append((label, schedule, c["lhs"], c["rhs"], cc["rhs"]))
    # sample complexity, finite horizon on [-1,1]^2: N = 4T^2 vs achieved ε
    Ts = [10, 20, 40, 80] if mode == "quick" else [10, 20, 40, 80, 160, 320]
    box = CONSTRAINTS["[-1,1]^2"]
    eps_T, N_T, boot = [], [], []
    rng = named_stream(seed, "S5/bootstrap")
    per_T = []
    for T_ in track(Ts, "S5 horizons", note=lambda T_: f"T={T_}"):
        tr = run_paths(box, "finite", T_, R, seed + 1, backend)
        lhs = tr.extra["grad_map_sq"][:T_].mean(axis=0)  # (R,)
        per_T.append(lhs)
        eps_T.append(float(lhs.mean()))
        N_T.append(int(tr.counts["samples"][-1]))
    logN = np.log(np.array(N_T, dtype=float))
    expo = float(np.polyfit(np.log(1.0 / np.array(eps_T)), logN, 1)[0])
    for _ in range(2000):  # bootstrap over paths for a 99.9% interval
        e = [float(v[rng.integers(0, v.size, v.size)].mean()) for v in per_T]
        boot.append(np.polyfit(np.log(1.0 / np.array(e)), logN, 1)[0])
    ci = [float(np.quantile(boot, 0.0005)), float(np.quantile(boot, 0.9995))]
    expo_ok = abs(expo - 2.0) <= EXP_TOL
    control_exp_rejected = not (ci[0] - EXP_TOL <= 1.0 <= ci[1] + EXP_TOL)
    return Measurement(
        passed=all(r["violations"] == 0 for r in rows) and expo_ok,
        control_rejected=any(c["violations"] > 0 for c in ctrl_rows) and control_exp_rejected,
        measured={"pathwise": rows, "sample_complexity": {
            "T": Ts, "samples": N_T, "mean_grad_map_sq": eps_T,
            "mean_grad_map_sq_ci999": [brief(mean_ci(v, LEVEL, what="paths"))["ci"]
                                       for v in per_T],
            "exponent": expo, "exponent_ci999_bootstrap": ci},
            "uncertainty": {
                "pathwise lhs_range, rhs_range, min_margin, max_lhs_over_rhs":
                    "per-path values (R paths); the inequality is deterministic on every "
                    "path, so violations must be 0 whatever the seed",
                "lhs_mean_ci999, rhs_mean_ci999, mean_grad_map_sq_ci999":
                    f"{LEVEL:.1%} Student-t interval of the mean over the R independent "
                    "paths (mean ± t_(R-1) SE)",
                "violation_frequency": f"{LEVEL:.1%} Clopper-Pearson exact binomial "
                                       "interval of the probability that a path violates "
                                       "the inequality",
                "exponent_ci999_bootstrap": f"{LEVEL:.1%} percentile bootstrap over paths "
                                            "(each T resampled independently, 2000 "
                                            "resamples, Generator named_stream(seed, "
                                            "'S5/bootstrap'))",
                "f_star, samples_per_path, samples": EXACT}},
        bound={"pathwise": "lhs <= 8L(f(λ0)-f*)/T + (10/T)Σ||Δ_s||² on every path",
               "exponent": [2.0 - EXP_TOL, 2.0 + EXP_TOL]},
        control={"description": f"(a) right side × {CONTROL_SCALE} must be violated on some "
                                "path; (b) the claim 'samples O(ε^-1)' must be rejected",
                 "per_run": ctrl_rows, "exponent_1_rejected": control_exp_rejected},
        notes=["pathwise inequality: no sampling error (holds for every realization)",
               "§14.4 reference (20 seeds): finite horizon lhs 1.89-2.10, rhs 11.3-13.5 on "
               "[-1,1]^2"],
        figure_data={"runs": figs, "Ts": Ts, "eps": eps_T, "N": N_T},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for i, (_label, _schedule, lhs, rhs, rhs_c) in enumerate(m.figure_data["runs"]):
        x = np.full(lhs.size, i, dtype=float)
        ax1.scatter(x - 0.15, lhs, s=8, color="tab:blue", label="lhs" if i == 0 else None)
        ax1.scatter(x, rhs, s=8, color="tab:green", label="rhs" if i == 0 else None)
        ax1.scatter(x + 0.15, rhs_c, s=8, color="tab:red",
                    label=f"rhs × {CONTROL_SCALE} (control)" if i == 0 else None)
    ax1.set_xticks(range(len(m.figure_data["runs"])),
                   [f"{r[0]}\n{r[1]}" for r in m.figure_data["runs"]], fontsize=6)
    ax1.set_yscale("log")
    ax1.set_ylabel("Corollary 13' sides, per path")
    ax1.legend(fontsize=7)
    eps, N = np.array(m.figure_data["eps"]), np.array(m.figure_data["N"], dtype=float)
    ax2.loglog(1 / eps, N, "o-", label="BSGM finite horizon (N = 4T²)")
    lo, hi = np.array(m.measured["sample_complexity"]["mean_grad_map_sq_ci999"],
                      dtype=float).T  # the interval of ε, drawn on the 1/ε axis
    right = np.where(lo > 0, 1 / np.where(lo > 0, lo, 1.0), 10 / eps)  # clipped if lo <= 0
    ax2.errorbar(1 / eps, N, xerr=[1 / eps - 1 / hi, right - 1 / eps], fmt="none",
                 ecolor="tab:blue", capsize=3, label="99.9% interval of ε (over paths)")
    ax2.loglog(1 / eps, N[0] * (eps[0] / eps) ** 2, "k--", lw=1, label="ε^-2")
    ax2.set_xlabel("1/ε (mean (1/T)Σ||G||²)")
    ax2.set_ylabel("samples")
    ax2.legend(fontsize=7)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.s5_bsgm_pathwise"))
