"""U1: Hölder continuity of y* (UniBiO Lemma 4.2 / B.1; docs/unibio.rst §3.1, docs/checks.rst U1).

    ||y*(x1) - y*(x2)|| <= l_p ||x1 - x2||^{1/(p-1)},   l_p = (p l_g1 / mu)^{1/(p-1)} (DERIVED)

Measured, on every LLUC problem (Example 3 with p = 2, 4, 6, 8; the separable vector family
with non-integer p; the non-separable instance of docs/unibio.rst §1.6):
- the largest ratio ||Δy*|| / (l_p ||Δx||^{1/(p-1)}) over random pairs and adversarial
  pairs x = ±h e_i around the points where y* = 0 (where the Hölder exponent is attained).
  Everything is deterministic and closed form, so the bound is checked exactly (ratio <= 1
  up to a rounding allowance of 1e-12) at every probed pair; which pairs are probed is a
  seeded random search, so the verdict adds the number of violating pairs and a 99.9%
  Clopper-Pearson interval for the violation probability under the probe distribution;
- sharpness on Example 3: the local exponent near x = 0, fitted by least squares on
  log|y*(h)| against log h for h in [1e-9, 1e-4], equals 1/(p-1) within 0.02;
- negative control: the exponent 1/(p-1) + 0.1 (same constant) must be violated on every
  problem whose exponent is sharp at 0 (Example 3 and the separable family). On the
  non-separable instance y* is Lipschitz near 0 (A dominates), so it is not used as a
  control there; the check says so.

Problem-generic (refbilevel.checks.problem_selection): the default run adds the default
instance of every other registered BilevelProblem that states l_p (the bump family of
docs/unibio.rst §1.6, the quadratics, a user's problem); ``--problem NAME`` runs the named
problems instead of the table above, plus Example 3 (p = 4) for the negative control. A
problem that offers ``structured_points`` is also probed at pairs inside that region.
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.checks.problem_selection import Selection, needs_constants, select_problems
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="U1",
    claim="||y*(x1) - y*(x2)|| <= l_p ||x1 - x2||^(1/(p-1))",
    source="UniBiO Lemma 4.2 / B.1; docs/unibio.rst §3.1",
    evidence=(Evidence("exact", "closed-form evaluation at seeded probes and a fixed grid"),),
)

ROUNDING = 1e-12  # the ratios are closed-form; only float64 rounding separates them from 1
SHARPNESS_TOL = 0.02  # docs/checks.rst U1


PROBLEM_GENERIC = True
#: registry families the table below covers (not added again at their default instance)
COVERED = ("unibio-example3", "uniformly-convex-separable", "uniformly-convex-nonseparable",
           "uniformly-convex-bump")
applies = needs_constants("l_p")


def instances(mode: str, names: list[str] | None = None) -> tuple[list, Selection]:
    """(label, problem, exponent sharp at 0) for every problem the check covers, and the
    registry selection (module docstring)."""
    sel = select_problems("U1", names, applies, covered=COVERED)
    if sel.explicit:  # the named problems, plus the control's sharp instance
        out = [("Example 3, p=4 (control instance)", UniBiOExample3(4), True)]
    else:
        out = [(f"Example 3, p={p}", UniBiOExample3(p), True) for p in (2, 4, 6, 8)]
        ps = (2.5, 3.0, 4.5) if mode == "quick" else (2.25, 2.5, 3.0, 3.5, 4.5, 6.0, 7.5)
        d = 3 if mode == "quick" else 10
        out += [(f"separable d={d}, p={p}", SeparableUniformlyConvex(d=d, p=p), True)
                for p in ps]
        out.append(("non-separable d=3, p=4", NonSeparableUniformlyConvex(d_y=3, p=4.0),
                    False))
        # non-symmetric H inside Assumption 3.2; y* is smooth near 0 (not a control problem)
        out.append(("bump d=3, p=4", UniformlyConvexBump(d=3, p=4.0), False))
    out += [(label, P, False) for _, label, P in sel.instances]
    return out, sel


def _pairs(problem, rng, n_random: int):
    """Random pairs, pairs inside the problem's structured region (if it has one), and
    adversarial pairs ±h e_i around x = 0, where y* = 0. The first ``n_random`` are random."""
    d = problem.d_x
    x1 = rng.uniform(-3, 3, size=(n_random, d))
    x2 = x1 + rng.standard_normal((n_random, d)) * 10.0 ** rng.uniform(-8, 0.5, (n_random, 1))
    structured = problem.structured_points(rng, n_random // 4)
    if structured is not None:
        s1 = structured[0]
        s2 = s1 + rng.standard_normal(s1.shape) * 10.0 ** rng.uniform(-8, -0.5,
                                                                        (s1.shape[0], 1))
        x1, x2 = np.concatenate([x1, s1]), np.concatenate([x2, s2])
    h = np.logspace(-12, 0, 49)
    e = np.zeros(d)
    e[0] = 1.0
    a1 = h[:, None] * e
    return np.concatenate([x1, a1]), np.concatenate([x2, -a1])


def holder_ratios(problem, x1, x2, exponent: float) -> np.ndarray:
    dy = np.linalg.norm(problem.y_star(x1) - problem.y_star(x2), axis=-1)
    dx = np.linalg.norm(x1 - x2, axis=-1)
    return dy / (problem.constants.l_p * dx**exponent)


def local_exponent(problem: UniBiOExample3) -> float:
    h = np.logspace(-9, -4, 40)
    y = np.abs(problem.y_star(h[:, None])[:, 0])
    slope, _ = np.polyfit(np.log(h), np.log(y), 1)
    return float(slope)


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    rng = named_stream(seed, "U1/pairs")
    n = 2000 if mode == "quick" else 50000
    rows, control_rows, sharp, curves = [], [], [], []
    table, selection = instances(mode, problems)
    for label, prob, sharp_at_zero in track(table, "U1 problems", note=lambda it: it[0]):
        x1, x2 = _pairs(prob, rng, n)
        e = 1.0 / (prob.p - 1.0)
        r = holder_ratios(prob, x1, x2, e)
        row = {"problem": label, "p": prob.p, "l_p": prob.constants.l_p,
               "max_ratio": float(r.max()), "pairs": int(r.size),
               "violation_frequency": brief(binomial_ci(int(np.sum(r[:n] > 1 + ROUNDING)), n,
                                                        LEVEL)),
               "other_violations": int(np.sum(r[n:] > 1 + ROUNDING))}
        if "l_p_exact" in prob.constants.extra:
            # the sharp constant of Example 3 is attained at x = ±h, h -> 0: ratio -> 1
            row["max_ratio_sharp_constant"] = float(r.max() * prob.constants.l_p
                                                    / prob.constants.extra["l_p_exact"])
        rows.append(row)
        if sharp_at_zero:
            rc = holder_ratios(prob, x1, x2, e + 0.1)
            control_rows.append({"problem": label, "exponent": e + 0.1,
                                 "max_ratio": float(rc.max()), "violated": bool(rc.max() > 1)})
        if isinstance(prob, UniBiOExample3):
            s = local_exponent(prob)
            sharp.append({"p": prob.p, "fitted": s, "expected": e,
                          "ok": abs(s - e) <= SHARPNESS_TOL})
            h = np.logspace(-12, 0, 49)
            curves.append((prob.p, 2 * h, np.abs(prob.y_star(h[:, None]) -
                                                 prob.y_star(-h[:, None]))[:, 0],
                           prob.constants.l_p, prob.constants.extra["l_p_exact"]))
    bound_ok = all(row["max_ratio"] <= 1 + ROUNDING
                   and row.get("max_ratio_sharp_constant", 0.0) <= 1 + ROUNDING for row in rows)
    sharp_ok = all(s["ok"] for s in sharp)
    return Measurement(
        passed=bound_ok and sharp_ok,
        control_rejected=all(c["violated"] for c in control_rows),
        measured={"per_problem": rows, "sharpness": sharp, "registry": selection.report(),
                  "uncertainty": {
            "max_ratio, max_ratio_sharp_constant": EXACT_AT_PROBES,
            "violation_frequency": f"count of random pairs with ratio > 1 + {ROUNDING} and "
                                   f"the {LEVEL:.1%} Clopper-Pearson exact binomial interval "
                                   "of the violation probability under the random-pair "
                                   "distribution (the structured-region pairs and the fixed "
                                   "adversarial pairs ±h e_1 are counted apart: "
                                   "other_violations, exact)",
            "sharpness": EXACT + " (least squares on a fixed grid h in [1e-9, 1e-4])"}},
        bound={"max_ratio": 1.0, "rounding_allowance": ROUNDING,
               "sharpness_tolerance": SHARPNESS_TOL},
        control={"description": "exponent 1/(p-1) + 0.1 with the same l_p must be violated "
                                "on every problem with a sharp exponent at x = 0",
                 "per_problem": control_rows},
        notes=["non-separable instance: y* is Lipschitz near 0 (A dominates), so it is not a "
               "control problem; its bound is still checked"],
        figure_data={"curves": curves, "rows": rows, "sharp": sharp},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for p, dx, dy, l_p, _l_exact in m.figure_data["curves"]:
        (line,) = ax1.loglog(dx, dy, "o", ms=3, label=f"p={p:g} measured")
        e = 1 / (p - 1)
        ax1.loglog(dx, l_p * dx**e, "-", color=line.get_color(), lw=1,
                   label="bound l_p Δx^(1/(p-1))")
        ax1.loglog(dx, l_p * dx ** (e + 0.1), ":", color=line.get_color(), lw=1)
    ax1.set_xlabel("||x1 - x2|| (x = ±h around 0)")
    ax1.set_ylabel("||y*(x1) - y*(x2)||")
    ax1.set_title("Example 3: measured vs bound (solid) and control exponent +0.1 (dotted)",
                  fontsize=8)
    ax1.legend(fontsize=6, ncol=2)
    rows = m.figure_data["rows"]
    ax2.barh([r["problem"] for r in rows], [r["max_ratio"] for r in rows], color="tab:blue",
             label="claim: max ratio")
    ctrl = {c["problem"]: c["max_ratio"] for c in m.control["per_problem"]}
    ax2.barh([r["problem"] for r in rows], [min(ctrl.get(r["problem"], 0), 5) for r in rows],
             height=0.3, color="tab:red", label="control (clipped at 5)")
    ax2.axvline(1.0, color="k", ls="--", label="bound = 1")
    ax2.set_xlabel("max ||Δy*|| / (l_p ||Δx||^e)")
    ax2.tick_params(axis="y", labelsize=6)
    ax2.legend(fontsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.u1_holder_continuity"))
