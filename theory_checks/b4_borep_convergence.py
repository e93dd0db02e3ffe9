"""B4: BO-REP run to ε: (1/T)Σ_t ||∇Φ(x_t)|| ≤ ε within the schedule's counted budget
(Hao, Gong, Liu, ICLR 2024, Theorem 3.2, convergence half; docs/borep.rst §5.1-§5.3,
docs/checks.rst B4). B3 stays the accounting of the oracle count; B2 runs tuned constants
with a tail average; B4 runs the theorem's schedule shape with the theorem's full-run average.

Quick mode: a **theory-shaped** schedule. The §5.3 schedule (DERIVED) has the theorem's
ε-exponents but constants conservative by orders of magnitude (B3: 5e9 calls at ε = 2), so
quick mode keeps every ε-exponent and every §5.3 formula that links the parameters, and
replaces only the conservative prefactors by constants calibrated once and frozen:

    1 − β = min(1, b ε²),  η = a ε³,  T = ⌈c_T Δ/(η ε)⌉ (§5.3: c_T = 4),  δ_y = d ε,
    I = max(1, ⌊δ_y/(2L_{y*}η)⌋),  γ = min(1/(2l_{g,1}), μδ_y²/(32σ_{g,1}²)),
    N = ⌈(1/(μγ)) ln(64⌈T/I⌉/δ)⌉,  R = 2δ_y,  ν = min(1/(2l_{g,1}), n ε²),  ρ = l_{f,0}/μ,
    Epoch-SGD: θ_1, k†, T_1 by the §5.3 formulas from D_1 and δ_y,

(a, b, c_T, d, n) = (0.02, 0.1, 2, 0.2, 0.05), Δ = Φ(x_1) − Φ*. Calibration: one pilot on P2
at ε₀ = 1 (seed 0), with a = 0.02 the §8 tuned step; c_T = 2 is half the §5.3 value. Theorem
3.2 asserts that *some* constants work; freezing them tests that the ε-exponents alone keep
(1/T)Σ||∇Φ(x_t)|| ≤ ε down the ladder ε ∈ {1, 0.7, 0.5} (full: also 0.35), on P1 and P2
(reference instances), Gaussian noise σ = 0.01 on every oracle (ledger design (ii)),
x_1 = 1, y_0 = y*(x_1) + 0.1u (u a fixed unit vector: the theorem allows any y_0; from
y_0 = 0 the initialization refinement alone costs 5e9 calls, B3), δ = 0.1, R = 6 (quick) or
32 (full) replicas, on the Numba kernel.

Full mode adds the **schedule-exact** run: the §5.3 schedule itself
(:func:`refbilevel.algorithms.borep.borep_theory_schedule`, nothing calibrated) at ε = 2 on
P2, R = 6, same y_0: T = 18822, I = 2, N = 10015, about 1.0e8 oracle calls per replica
(≈ 45 s per replica at the measured 410-480 ns per lower-level call; minutes, not the
35 min per seed of y_0 = 0). The verdict names which run is which.

Pass rule (statistical, false-positive rate ≤ 1e-3 per decision): at every (problem, ε) the
one-sided 99.9% Student-t upper bound (over the R independent replicas) of the full-run average
(1/T)Σ_{t=1}^{T}||∇Φ(x_t)|| is ≤ ε, no replica diverges, and the run stays within its
counted budget (the X3 accounting of :func:`refbilevel.algorithms.borep.borep_oracle_counts`
equals the kernel's counters). Reported, not asserted with 3 ladder points: the fitted
exponent of the budget at which the replica-mean running average first reaches ε, against
1/ε (the ledger's design asks [4, 4.3]; the audit: fit the budget to reach ε, not the
schedule's own cost).

Negative control (certain to fail): the same runs truncated at T_c = min(⌈T/100⌉, ⌊r*/η⌋).
Every iterate then lies within r = T_c η of x_1, and ||∇Φ|| ≥ ||∇Φ(x_1)|| −
r·sup_{B(x_1, r)}||∇²Φ|| > ε there (closed-form Hessian bounds: P1 cosh(||x||_∞) +
c_ψ||H^{-1}C||², P2 3||x||² + ||B||²; r* is the largest radius where this certificate exceeds
ε: on P1 at ε = 0.5, T/100 steps would reach r = 1, beyond it), so the truncated average
exceeds ε whatever the noise; the certified lower bound and the measured truncated average
are both reported and must exceed ε at every ladder point.

Measured (quick, seed 20261123): full-run averages 0.62-0.68 ε (upper bounds ≤ 0.69 ε) at
every ladder point on both problems, the ratio nearly constant down the ladder; 7.9e4-1.4e6
calls per replica. The budget-to-reach exponent is 1.5-1.6: below the ledger's [4, 4.3]
because in this range the lower level's part, ∝ ε^{-2} log (σ = 0.01 puts γ at its cap),
outweighs the upper level's 4T ∝ ε^{-4}; it is consistent with the Õ(ε^{-4}) upper bound,
which is all the theorem states. Full (R = 32): the same ratios at ε = 0.35 (0.221 on P1
with 6.0e6 calls per replica, 0.207 on P2), exponents 2.4 (P1) and 1.8 (P2) over four points;
the schedule-exact §5.3 run at ε = 2 on P2: full-run average 0.505 (upper bound 0.505) with
1.03e8 calls per replica, 6 replicas, none diverged, counters equal to the budget. Time: quick
8 s CPU (30-50 s wall on the shared machine), full 10 min wall (2.8 min CPU).

Figure: left, the running average (1/t)Σ||∇Φ|| (replica mean) against the cumulative oracle
budget for every (problem, ε), with the ε levels; right, the full-run average's 99.9% upper
bound over ε against the ladder (must be ≤ 1), and the exact-schedule point in full mode.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms.borep import (
    BOREPParams,
    BOREPTheoryConstants,
    borep_cumulative_counts,
    borep_oracle_counts,
    borep_theory_schedule,
)
from refbilevel.algorithms.borep_numba import borep_numba
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, LEVEL, t_quantile
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="B4",
    claim="BO-REP with the theorem's schedule shape reaches (1/T) sum ||grad Phi(x_t)|| <= eps "
          "within its counted budget (theory-shaped ladder; --full: the exact schedule)",
    source="Hao, Gong, Liu (ICLR 2024) Theorem 3.2; docs/borep.rst §5.1-§5.3",
    evidence=(Evidence("statistical", "full-run averages", fpr=1e-3,
                       note="one-sided 99.9% Student-t upper bounds over replicas"),
              Evidence("exact", "control", note="certified lower bound on ||grad Phi|| over "
                                                "the reachable ball")),
)

SHAPE = {"a_eta": 0.02, "b_beta": 0.1, "c_T": 2.0, "d_y": 0.2, "n_nu": 0.05}
SIGMA = 0.01
DELTA = 0.1
Y0_OFFSET = 0.1
PHI_STAR = {"borep-p1": 14.7260868455, "borep-p2": 3.1324348957}  # docs/borep.rst §8
EXACT_EPS = 2.0


def start(problem) -> tuple[np.ndarray, np.ndarray]:
    x1 = np.ones(problem.d_x)
    u = np.ones(problem.d_y) / math.sqrt(problem.d_y)
    return x1, problem.y_star(x1) + Y0_OFFSET * u


def theory_constants(problem) -> BOREPTheoryConstants:
    x1, y0 = start(problem)
    return BOREPTheoryConstants.from_problem(problem, NoiseConfig.uniform(SIGMA), x1, y0,
                                             phi_lower=PHI_STAR[problem.name], delta=DELTA)


def shaped_params(eps: float, k: BOREPTheoryConstants) -> BOREPParams:
    """The theory-shaped schedule of the module docstring at target ε."""
    s = SHAPE
    mu = k.mu
    L_ystar = k.C_gxy / mu
    one_m_beta = min(1.0, s["b_beta"] * eps**2)
    eta = s["a_eta"] * eps**3
    T = math.ceil(s["c_T"] * k.Delta / (eta * eps))
    delta_y = s["d_y"] * eps
    I = max(1, math.floor(delta_y / (2.0 * L_ystar * eta)))
    gamma = min(1.0 / (2.0 * k.l_g1), mu * delta_y**2 / (32.0 * k.sigma_g1**2))
    N = math.ceil(1.0 / (mu * gamma) * math.log(64.0 * math.ceil(T / I) / k.delta))
    nu = min(1.0 / (2.0 * k.l_g1), s["n_nu"] * eps**2)
    theta1 = min(1.0 / (2.0 * k.l_g1), mu * k.D1**2 / (8.0 * k.sigma_g1**2))
    k_dag = max(0, math.ceil(2.0 * math.log2(2.0 * k.D1 / delta_y)))
    T1 = math.ceil(4.0 / (mu * theta1) * math.log(2.0 * max(k_dag, 1) / k.delta))
    return BOREPParams(T=T, eta=eta, beta=1.0 - one_m_beta, I=I, N=N, gamma=gamma, nu=nu,
                       R_ball=2.0 * delta_y, rho=k.l_f0 / mu, epoch_k=k_dag, epoch_T1=T1,
                       epoch_theta1=theta1, epoch_D1=k.D1)


def hessian_bound(problem, radius: float) -> float:
    """sup ||∇²Φ(x)|| over ||x − x_1|| ≤ radius (closed forms of docs/borep.rst §8)."""
    x1, _ = start(problem)
    if problem.name == "borep-p2":
        return 3.0 * (np.linalg.norm(x1) + radius) ** 2 + np.linalg.norm(problem.B, 2) ** 2
    HC = np.linalg.solve(problem.H, problem.C)
    return math.cosh(np.abs(x1).max() + radius) + problem.c_psi * np.linalg.norm(HC, 2) ** 2


def one_run(problem, params: BOREPParams, R: int, seed: int, label: str, eps: float) -> dict:
    x1, y0 = start(problem)
    oracle = GaussianOracle(problem, NoiseConfig.uniform(SIGMA),
                            named_stream(seed, f"B4/{label}"))
    tr = borep_numba(oracle, np.tile(x1, (R, 1)), y0, params=params)
    T = params.T
    # record t holds x_{t+1}: records 0..T-1 are x_1..x_T (the theorem's sum over t = 1..T)
    g = tr.grad_phi_norm[:T]  # (T, R)
    full = g.mean(axis=0)
    q1 = t_quantile(1.0 - 2.0 * (1.0 - LEVEL), R - 1)  # one-sided 99.9%
    upper = float(full.mean() + q1 * full.std(ddof=1) / math.sqrt(R))
    running = np.cumsum(g.mean(axis=1)) / np.arange(1, T + 1)
    budget = borep_cumulative_counts(params, np.arange(1, T + 1))["samples"]
    counted = borep_oracle_counts(params)["samples"]
    kernel = int(tr.counts["samples"][-1]) if "samples" in tr.counts else None
    # the control's horizon: T/100, shortened if needed to the largest radius r on which
    # ||∇Φ(x_1)|| − r sup_{B(x_1, r)}||∇²Φ|| still exceeds ε (so its failure is certain)
    g1 = float(np.linalg.norm(problem.grad_phi(x1)))
    radii = np.geomspace(1e-4, 10.0, 400)
    cert = np.array([g1 - r * hessian_bound(problem, r) for r in radii])
    good = radii[cert > eps]
    r_star = float(good.max()) if good.size else 0.0
    T_trunc = max(1, min(math.ceil(T / 100), math.floor(r_star / params.eta)))
    radius = T_trunc * params.eta
    certified = g1 - radius * hessian_bound(problem, radius)
    return {"label": label, "T": T, "eta": params.eta, "I": params.I, "N": params.N,
            "one_minus_beta": 1.0 - params.beta, "epoch_k": params.epoch_k,
            "calls_per_replica": int(counted), "kernel_counted_calls": kernel,
            "full_run_average_mean": float(full.mean()), "full_run_average_upper999": upper,
            "full_run_average_max": float(full.max()), "diverged": int(tr.diverged.sum()),
            "final_grad_norm_mean": float(tr.grad_phi_norm[T - 1].mean()),
            "truncated_T": T_trunc, "truncated_fraction_of_T": T_trunc / T,
            "truncated_average_min": float(g[:T_trunc].mean(0).min()),
            "truncated_certified_lower_bound": float(certified),
            "_running": running, "_budget": budget}


def first_reach(row: dict, eps: float) -> int | None:
    hit = np.nonzero(row["_running"] <= eps)[0]
    return int(row["_budget"][hit[0]]) if hit.size else None


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    quick = mode == "quick"
    R = 6 if quick else 32
    ladder = [1.0, 0.7, 0.5] if quick else [1.0, 0.7, 0.5, 0.35]
    problems = [RelaxedSmoothP1(), RelaxedSmoothP2()]
    jobs = [(P, e) for P in problems for e in ladder]
    rows = []
    for P, eps in track(jobs, "B4 ladder", note=lambda j: f"{j[0].name} eps={j[1]}"):
        k = theory_constants(P)
        row = one_run(P, shaped_params(eps, k), R, seed, f"{P.name}/{eps}", eps)
        row.update({"problem": P.name, "eps": eps, "schedule": "theory-shaped",
                    "Delta": k.Delta, "budget_first_reach": first_reach(row, eps)})
        rows.append(row)
    exponents = {}
    for P in problems:
        pts = [(r["eps"], r["budget_first_reach"]) for r in rows
               if r["problem"] == P.name and r["budget_first_reach"]]
        exponents[P.name] = (float(np.polyfit(np.log([1 / e for e, _ in pts]),
                                              np.log([b for _, b in pts]), 1)[0])
                             if len(pts) >= 2 else float("nan"))
    if not quick:
        P2 = problems[1]
        k = theory_constants(P2)
        row = one_run(P2, borep_theory_schedule(EXACT_EPS, k).params, 6, seed, "exact",
                      EXACT_EPS)
        row.update({"problem": P2.name, "eps": EXACT_EPS, "schedule": "schedule-exact (§5.3)",
                    "Delta": k.Delta, "budget_first_reach": first_reach(row, EXACT_EPS)})
        rows.append(row)

    def ok(r):
        return (r["full_run_average_upper999"] <= r["eps"] and r["diverged"] == 0
                and (r["kernel_counted_calls"] is None
                     or r["kernel_counted_calls"] == r["calls_per_replica"]))

    passed = all(ok(r) for r in rows)
    rejected = all(r["truncated_certified_lower_bound"] > r["eps"]
                   and r["truncated_average_min"] > r["eps"] for r in rows)

    def public(r):
        return {k: v for k, v in r.items() if not k.startswith("_")}

    return Measurement(
        passed=passed, control_rejected=rejected,
        measured={"runs": [public(r) for r in rows], "shape_constants": SHAPE,
                  "replicas_ladder": R, "noise_std": SIGMA, "y0_offset": Y0_OFFSET,
                  "budget_first_reach_exponent": exponents,
                  "which_is_which": "schedule 'theory-shaped': the theorem's ε-exponents with "
                                    "frozen calibrated prefactors (quick and full); "
                                    "'schedule-exact (§5.3)': the DERIVED schedule itself "
                                    "(full only)",
                  "uncertainty": {
                      "full_run_average_upper999": "one-sided 99.9% Student-t upper bound "
                                                   "over the independent replicas",
                      "calls, budgets, certified bounds": EXACT,
                      "budget_first_reach_exponent": "least squares over the ladder of the "
                                                     "replica-mean running average; reported "
                                                     "(3-4 points), not asserted"}},
        bound={"full_run_average_at_most": "eps (one-sided 99.9% upper bound)",
               "ledger_exponent_range": [4.0, 4.3]},
        control={"description": "the runs truncated at T/100 must stay above eps: a certified "
                                "lower bound on ||grad Phi|| over the reachable ball, and the "
                                "measured truncated averages",
                 "rows": [{"problem": r["problem"], "eps": r["eps"],
                           "certified": r["truncated_certified_lower_bound"],
                           "measured_min": r["truncated_average_min"]} for r in rows]},
        notes=["the §5.3 constants are DERIVED (the paper's are NOT RECOVERED); the "
               "theory-shaped prefactors are calibrated, so a pass shows the exponents keep "
               "the guarantee with frozen constants",
               f"y_0 = y*(x_1) + {Y0_OFFSET}u: the initialization refinement's cost grows as "
               "(D_1/δ_y)², which from y_0 = 0 dominates everything (B3)"],
        figure_data={"rows": rows},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    rows = m.figure_data["rows"]
    for r in rows:
        ls = "-" if r["problem"] == "borep-p2" else "--"
        (ln,) = ax1.loglog(r["_budget"], r["_running"], ls,
                           label=f"{r['problem']} ε={r['eps']:g} ({r['schedule'][:5]})")
        ax1.axhline(r["eps"], color=ln.get_color(), lw=0.5)
    ax1.set_xlabel("cumulative oracle calls per replica")
    ax1.set_ylabel("(1/t) Σ ||∇Φ(x_s)|| (replica mean)")
    ax1.legend(fontsize=5)
    for prob, mk in (("borep-p1", "s"), ("borep-p2", "o")):
        rr = [r for r in rows if r["problem"] == prob and r["schedule"] == "theory-shaped"]
        ax2.plot([r["eps"] for r in rr], [r["full_run_average_upper999"] / r["eps"] for r in rr],
                 mk + "-", label=f"{prob} theory-shaped")
    ex = [r for r in rows if r["schedule"] != "theory-shaped"]
    for r in ex:
        ax2.plot([r["eps"]], [r["full_run_average_upper999"] / r["eps"]], "k*", ms=10,
                 label="P2 schedule-exact (§5.3)")
    ax2.axhline(1.0, color="k", ls="--", lw=0.8)
    ax2.set_xlabel("ε")
    ax2.set_ylabel("99.9% upper bound of (1/T)Σ||∇Φ|| / ε")
    ax2.legend(fontsize=7)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.b4_borep_convergence"))
