"""U8: UniBiO's complexity (UniBiO Thm 5.1, eq. (63), Appendix E.3; docs/unibio.rst §5.5,
§5.6, §7.3; docs/checks.rst U8).

(a) Accounting: the oracle count of the implemented theory schedule
    (:mod:`refbilevel.algorithms.unibio_schedule`, docs/unibio.rst §5.5 DERIVED) grows as
    ε^{-(5p-6)}:
    the local log-log slope of the exact count against 1/ε, at ε from 1e-2 to 1e-4, lies in
    [5p-6 - 0.05, 5p-6 + 0.3] (the upper allowance covers the log factors: Q = O(log 1/ε)).
    Negative control: the same accounting with the LL updated at every step (I = 1) has
    slope 5p-4 and must fall outside the band.
(c) Monotone in p: at ε = 1e-2 the count increases with p (separable family, p = 2, 3, 4).
(d) Deterministic rate (docs/unibio.rst §7.3): on Example 3 with the Section 6 settings (T = 500,
    K = 100, no noise), the least-squares slope of log((1/t)Σ_{s<t}||∇phi(x_s)||) against
    log t for t >= 10 is at most -1/(3p-2) (the worst-case bound T^{-1/(3p-2)}), p = 2..8.
    Negative control: a stalled run (eta = 1e-9) has slope ~0 and must violate it.
(b) Empirical budget, p = 2: UniBiO run with the theory schedule of (a) to its last
    iteration T, on Example 3 (x_0 = 3, |phi'(x_0)| = 0.98) and on the vector LLUC problem
    SeparableUniformlyConvex(d = 2, p = 2) (x_0 = 3·1, ||∇phi(x_0)|| = 1.11), oracle noise
    std 0.01 (at 0.1 the budget is ~30x larger: 1.3e10 calls at eps = 0.49). The run uses
    exactly the schedule's oracle calls (counted, <= the eq. (63) budget), and the path
    average A = (1/T) Σ_{t<T} ||∇phi(x_t)|| must satisfy E[A] <= eps: the one-sided 99.9%
    Student-t upper bound over independent seeds must be <= eps (false-fail rate <= 1e-3 if
    the per-seed averages are near-normal; the margin is ~8x). The kernel records every k-th
    iterate; since ||x_{t+1} - x_t|| <= eta (normalized momentum) and ∇phi satisfies eq. (28)
    with L_phi1, L_phi2, each unrecorded ||∇phi(x_t)|| is bounded from the recorded x_s,
    s <= t < s + k, by L_phi1 (eta (t-s))^{1/(p-1)} + L_phi2 eta (t-s), so A is bracketed
    rigorously. Negative control: the same run with eta/100 (Example 3): every iterate stays
    within T eta/100 of x_0, where |phi'| > eps, so its A exceeds eps on every path (a
    certainty, computed as the minimum of |phi'| over that interval); it must fail the test.
    p = 3, 4 are reported, not run: the DERIVED budgets exceed 1e23 calls at eps = 0.9.
(a), (c), (d) are deterministic (exact counts, noise-free runs): no false-positive rate applies.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms.unibio import tuned_params, unibio_oracle_counts
from refbilevel.algorithms.unibio_schedule import theory_schedule
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, LEVEL, mean_ci, t_quantile
from refbilevel.checks.verdict import ACCOUNTING_NOTE
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import SeparableUniformlyConvex
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.solver import solve

CLAIM = ClaimInfo(
    id="U8",
    claim="UniBiO: oracle count O~(eps^-(5p-6)), increasing in p; the theory schedule "
          "reaches eps within its budget (p = 2); deterministic slope <= -1/(3p-2)",
    source="UniBiO Theorem 5.1, eq. (63), Appendix E.3; docs/unibio.rst §5.5, §5.6, §7.3",
    evidence=(Evidence("accounting", "(a), (c)", note=ACCOUNTING_NOTE),
              Evidence("exact", "(d) noise-free runs"),
              Evidence("statistical", "(b) one-sided 99.9% Student-t bound over seeds", fpr=1e-3)),
)

NOISE = NoiseConfig.uniform(0.1)  # sigma_phi > 0, so 1 - beta ~ eps^2 as in the theorem
SLOPE_BAND = (-0.05, 0.3)


def _schedule(problem, eps, *, x0: float = 1.0, noise: NoiseConfig = NOISE,
              I_rule: str = "paper"):
    """(x_0 vector, theory schedule) from x_0 = x0·1, y_0 = 0 (Delta_phi and G_0 there)."""
    X0 = np.full(problem.d_x, x0)
    delta_phi = float(problem.phi(X0)) - problem.constants.extra["phi_inf"]
    G_0 = float(np.linalg.norm(problem.grad_y_g(X0, np.zeros(problem.d_y))))
    grad_phi_0 = float(np.linalg.norm(problem.grad_phi(X0)))
    return X0, theory_schedule(problem, noise, eps, delta_phi=delta_phi, G_0=max(G_0, 1e-3),
                               grad_phi_0=grad_phi_0, I_rule=I_rule)


def _budget(problem, eps, I_rule="paper"):
    return float(_schedule(problem, eps, I_rule=I_rule)[1].oracle_budget())


def accounting(mode: str):
    eps = np.logspace(-2, -4, 5 if mode == "quick" else 9)
    rows, ctrl = [], []
    probs = (UniBiOExample3(2), SeparableUniformlyConvex(d=2, p=3.0), UniBiOExample3(4))
    for prob in track(probs, "U8 accounting", note=lambda P: f"p={P.p:g}"):
        p = prob.p
        b = np.array([_budget(prob, e) for e in eps])
        bc = np.array([_budget(prob, e, "every-step") for e in eps])
        s = np.diff(np.log(b)) / np.diff(np.log(1 / eps))
        sc = np.diff(np.log(bc)) / np.diff(np.log(1 / eps))
        want = 5 * p - 6
        rows.append({"problem": type(prob).__name__, "p": p, "expected_slope": want,
                     "local_slopes": s, "budgets": b, "eps": eps,
                     "ok": bool(want + SLOPE_BAND[0] <= s[-1] <= want + SLOPE_BAND[1])})
        ctrl.append({"p": p, "slope_I_equals_1": sc[-1],
                     "rejected": not (want + SLOPE_BAND[0] <= sc[-1] <= want + SLOPE_BAND[1])})
    return rows, ctrl


EMPIRICAL_NOISE = NoiseConfig.uniform(0.01)
N_RECORDS = 20000  # recorded iterates per run; the bracket of A shrinks as T/N_RECORDS
# (name, problem, x_0, eps, seeds); x_0 = 3 has ||∇phi(x_0)|| ~ 1 on both problems
EMPIRICAL_CASES = {
    "quick": [("Example 3", lambda: UniBiOExample3(2), 3.0, 0.7, 3)],
    "full": [("Example 3", lambda: UniBiOExample3(2), 3.0, 0.7, 5),
             ("Example 3", lambda: UniBiOExample3(2), 3.0, 0.5, 5),
             ("separable d=2", lambda: SeparableUniformlyConvex(d=2, p=2.0), 3.0, 0.9, 5)],
}
CONTROL_ETA_FACTOR = 0.01


def path_average_bracket(trace, problem, eta: float, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Rigorous lower and upper bounds on A = (1/T) Σ_{t<T} ||∇phi(x_t)|| per replica from
    the iterates recorded every k steps: ||x_{t+1} - x_t|| <= eta and eq. (28) bound the
    change of ||∇phi|| over r steps by L_phi1 (eta r)^{1/(p-1)} + L_phi2 eta r."""
    c, p = problem.constants, problem.p
    keep = trace.iterations < T  # A averages x_0..x_{T-1}; the trace also records x_T
    starts = trace.iterations[keep].astype(np.int64)
    lengths = np.diff(np.append(starts, T))
    r = eta * np.arange(int(lengths.max()), dtype=float)  # eta × offset within a block
    drift = np.cumsum(c.L_phi1 * r ** (1.0 / (p - 1.0)) + c.L_phi2 * r)  # summed over block
    slack = drift[lengths - 1].sum() / T
    centre = (lengths[:, None] * trace.grad_phi_norm[keep]).sum(axis=0) / T
    return np.maximum(centre - slack, 0.0), centre + slack


def _min_grad_norm_on_interval(problem, centre: float, radius: float) -> float:
    """min |phi'| over [centre - radius, centre + radius] (d_x = 1): the minimum over a grid
    of spacing h, less the eq. (28) change over h/2."""
    c, p = problem.constants, problem.p
    grid = np.linspace(centre - radius, centre + radius, 4001)
    h = grid[1] - grid[0]
    vals = np.abs([float(problem.grad_phi(np.array([x]))[0]) for x in grid])
    return float(vals.min() - c.L_phi1 * (h / 2) ** (1.0 / (p - 1.0)) - c.L_phi2 * h / 2)


def _bracketed_run(problem, X0, prm, n: int, rng):
    """n seeds of the theory run (Numba kernel, every k-th iterate recorded): the per-seed
    bracket of A and how many seeds diverged."""
    tr = solve(problem, "unibio", backend="numba", mode="paper",
               oracle=GaussianOracle(problem, EMPIRICAL_NOISE, rng), x0=np.tile(X0, (n, 1)),
               y0=0.0, T=prm.T, record_every=max(1, prm.T // N_RECORDS), **prm.as_options())
    lo, hi = path_average_bracket(tr, problem, prm.eta, prm.T)
    return lo, hi, int(tr.diverged.sum())


def empirical_budget(mode: str, seed) -> tuple[list[dict], dict]:
    """Part (b): theory-schedule runs to T on the Numba kernel (the NumPy path would take
    hours; X4 and tests/test_unibio.py check the kernels' parity with it)."""
    rows = []
    for name, make, x0, eps, n in track(EMPIRICAL_CASES[mode], "U8 empirical budget",
                                        note=lambda c: f"{c[0]} eps={c[3]}"):
        problem = make()
        X0, sched = _schedule(problem, eps, x0=x0, noise=EMPIRICAL_NOISE)
        prm = sched.params()
        lo, hi, diverged = _bracketed_run(problem, X0, prm, n,
                                          named_stream(seed, f"U8b/{name}/eps={eps}"))
        ci = mean_ci(hi, what="seeds (upper brackets of A)")
        upper = ci["mean"] + t_quantile(2 * LEVEL - 1, n - 1) * ci["se"]  # one-sided 99.9%
        used = unibio_oracle_counts(prm, problem.p)["samples"]
        rows.append({"problem": name, "p": problem.p, "x0": x0, "eps": eps, "seeds": n,
                     "T": prm.T, "I": prm.I, "K": prm.K, "K_0": prm.K_0, "eta": prm.eta,
                     "budget_eq63": sched.oracle_budget(), "calls_used": used,
                     "A_lower": lo, "A_upper": hi, "E_A_upper_999": upper, "interval": ci,
                     "diverged": diverged,
                     "ok": bool(upper <= eps and used <= sched.oracle_budget()
                                and diverged == 0)})
    # negative control: eta/100 on Example 3 at the first case's eps (one seed suffices:
    # the rejection is certain, see the module docstring)
    _, make, x0, eps, _ = EMPIRICAL_CASES[mode][0]
    problem = make()
    X0, sched = _schedule(problem, eps, x0=x0, noise=EMPIRICAL_NOISE)
    prm = sched.params(eta=sched.eta * CONTROL_ETA_FACTOR)
    lo, hi, _ = _bracketed_run(problem, X0, prm, 1, named_stream(seed, "U8b/control"))
    floor = _min_grad_norm_on_interval(problem, x0, prm.T * prm.eta)
    control = {"eta_factor": CONTROL_ETA_FACTOR, "eps": eps, "A_lower": float(lo[0]),
               "A_upper": float(hi[0]), "certain_floor_of_A": floor,
               "rejected": bool(lo[0] > eps and floor > eps)}
    return rows, control


def deterministic_slopes(backend: str, eta_override: float | None = None):
    out = []
    stage = "U8 deterministic runs" + ("" if eta_override is None else " (stalled control)")
    for p in track((2, 4, 6, 8), stage, note=lambda p: f"p={p}"):
        prob = UniBiOExample3(p)
        prm = tuned_params(p) if eta_override is None else tuned_params(p, eta=eta_override)
        tr = solve(prob, "unibio", backend=backend, mode="paper",
                   oracle=GaussianOracle(prob, 0.0, np.random.default_rng(0)), x0=1.0, y0=1.0,
                   T=prm.T, **prm.as_options())
        keep = tr.iterations < prm.T  # the averages over x_0..x_{t-1}, t <= T (not x_T)
        avg = tr.avg_grad_phi_norm[keep, 0]
        t = tr.iterations[keep] + 1.0
        keep = t >= 10
        slope = float(np.polyfit(np.log(t[keep]), np.log(avg[keep]), 1)[0])
        out.append({"p": p, "slope": slope, "bound": -1.0 / (3 * p - 2),
                    "ok": slope <= -1.0 / (3 * p - 2), "t": t, "avg": avg})
    return out


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    rows, ctrl = accounting(mode)
    fams = [SeparableUniformlyConvex(d=2, p=p) for p in (2.0, 3.0, 4.0)]
    mono = [_budget(P, 1e-2) for P in fams]
    monotone = bool(all(a < b for a, b in zip(mono, mono[1:], strict=False)))
    det = deterministic_slopes(backend)
    stalled = deterministic_slopes(backend, eta_override=1e-9)
    b_rows, b_control = empirical_budget(mode, seed)
    b_out_of_reach = {f"p={p:g}": float(_schedule(
        SeparableUniformlyConvex(d=2, p=p), 0.9, x0=3.0, noise=EMPIRICAL_NOISE)[1]
        .oracle_budget()) for p in (3.0, 4.0)}
    strip = [{k: v for k, v in d.items() if k not in ("t", "avg")} for d in det]
    return Measurement(
        passed=all(r["ok"] for r in rows) and monotone and all(d["ok"] for d in det)
        and all(r["ok"] for r in b_rows),
        control_rejected=all(c["rejected"] for c in ctrl)
        and all(not d["ok"] for d in stalled) and b_control["rejected"],
        measured={
            "a_accounting": [{k: v for k, v in r.items()} for r in rows],
            "c_budget_at_eps_1e-2_by_p": dict(zip(("2", "3", "4"), mono, strict=True)),
            "c_monotone": monotone,
            "d_deterministic_slopes": strip,
            "b_empirical_p2": b_rows,
            "b_budget_out_of_reach_eps_0.9": b_out_of_reach,
            "uncertainty": {"a_c_d": EXACT + ": (a), (c) exact oracle counts of the theory "
                            "schedule, (d) noise-free runs (exact oracles)",
                            "b": [r["interval"] for r in b_rows]},
        },
        bound={"a": f"local slope in 5p-6 + [{SLOPE_BAND[0]}, {SLOPE_BAND[1]}]",
               "b": "one-sided 99.9% upper bound of E[(1/T) sum ||grad phi(x_t)||] <= eps, "
                    "with calls used <= the eq. (63) budget",
               "c": "strictly increasing in p", "d": "slope <= -1/(3p-2)"},
        control={"description": "(a) I = 1 accounting (slope 5p-4) outside the band; (b) the "
                                "theory run with eta/100 stays above eps; (d) a stalled run "
                                "(eta = 1e-9) violates the slope bound",
                 "b_eta_over_100": b_control,
                 "a_I_equals_1": ctrl,
                 "d_stalled_slopes": [{"p": d["p"], "slope": d["slope"]} for d in stalled]},
        notes=["(b) is run for p = 2 only: for p = 3, 4 the DERIVED budgets exceed 1e23 "
               "oracle calls (b_budget_out_of_reach_eps_0.9)",
               "(d) uses the Section 6 code settings, not the paper's unrecovered Fig. 5 "
               "setting (docs/unibio.rst §7.3)"],
        figure_data={"rows": rows, "det": det, "stalled": stalled, "b_rows": b_rows,
                     "b_control": b_control},
        backends_used=["numba"],  # (b) runs on the Numba backend whatever --backend says
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for r in m.figure_data["rows"]:
        (line,) = ax1.loglog(1 / r["eps"], r["budgets"], "o-",
                             label=f"p={r['p']:g} ({r['problem']})")
        ref = r["budgets"][0] * (r["eps"][0] / r["eps"]) ** r["expected_slope"]
        ax1.loglog(1 / r["eps"], ref, ":", color=line.get_color())
    top = max(float(np.max(r["budgets"])) for r in m.figure_data["rows"])
    ax1.set_xlabel("1/eps")
    ax1.set_ylabel("oracle calls: eq. (63) count, not run")
    ax1.set_title(f"(a) ACCOUNTING, not a measurement: counts\nup to {top:.0e} calls; "
                  "dotted: eps^-(5p-6)", fontsize=8)
    ax1.legend(fontsize=8, loc="upper left")
    for d, s in zip(m.figure_data["det"], m.figure_data["stalled"], strict=True):
        (line,) = ax2.loglog(d["t"], d["avg"], label=f"p={d['p']} slope {d['slope']:.2f}")
        ax2.loglog(s["t"], s["avg"], ":", color=line.get_color())
        ax2.loglog(d["t"], d["avg"][9] * (d["t"] / 10.0) ** d["bound"], "--", lw=0.8,
                   color=line.get_color())
    ax2.set_xlabel("t")
    ax2.set_ylabel("(1/t) sum ||grad phi(x_s)||")
    ax2.set_title("(d) measured, noise-free runs; dashed: bound\nslope -1/(3p-2); "
                  "dotted: stalled control", fontsize=8)
    ax2.legend(fontsize=8)
    b_rows, ctrl = m.figure_data["b_rows"], m.figure_data["b_control"]
    labels = [f"{r['problem']}\neps={r['eps']:g}" for r in b_rows] + ["control\neta/100"]
    pos = np.arange(len(labels))
    ax3.bar(pos[:-1], [r["E_A_upper_999"] for r in b_rows], color="C0",
            label="99.9% upper bound of E[A]")
    ax3.bar(pos[-1], ctrl["A_lower"], color="C3", label="control: lower bracket of A")
    ax3.scatter(pos, [r["eps"] for r in b_rows] + [ctrl["eps"]], marker="_", s=400,
                color="k", zorder=3, label="eps")
    ax3.set_xticks(pos, labels, fontsize=6)
    ax3.set_title("(b) measured: theory schedule\nrun to T (p = 2)", fontsize=8)
    ax3.set_ylabel("A = (1/T) sum ||grad phi(x_t)||")
    ax3.set_ylim(0, 1.4 * max([ctrl["A_lower"]] + [r["eps"] for r in b_rows]))
    ax3.legend(fontsize=8, loc="upper left")


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.u8_unibio_complexity"))
