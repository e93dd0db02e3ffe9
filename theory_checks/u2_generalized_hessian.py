"""U2: the generalized Hessian is uniformly positive (UniBiO Lemma B.2; docs/unibio.rst §3.2).

    lambda_min( d∇_y g / d[y]^{∘(p-1)} ) >= mu,   and   ||H v|| >= mu ||v||

H is built column by column from the problem's generalized HVP (its analytic limit where
y_i = 0) at random (x, y), including y with tiny and large coordinates. Eigenvalues of H are
real (H is similar to a symmetric PSD matrix, docs/unibio.rst §3.2), so lambda_min is the
smallest real part; the imaginary parts are reported.

- ||H v|| >= mu ||v|| is Lemma B.2's conclusion under its hypothesis that H does not depend
  on y; it is checked on those problems (Example 3, the separable family). On the
  non-separable instance (H = I + A D(y)^{-1}) only lambda_min >= mu is claimed; the smallest
  singular value found there is reported for information (it can fall below mu).
- Tolerance: eigenvalues and norms are computed in float64 by backward-stable routines; we
  allow 1e-9 (max(1, ||H||)) for rounding, orders of magnitude below any real violation.
- Everything is evaluated exactly at the sampled points (no sampling error); the points are
  a seeded random search, so the verdict adds, per problem, the number of violating points
  and a 99.9% Clopper-Pearson interval for the violation probability under the sampling
  distribution.
- Negative control (docs/checks.rst): mu' = 1.5 mu must be violated somewhere. For p > 2 the
  lemma is not tight (lambda_min(H) = 1 while mu_p < 1), so the control bites on the p = 2
  members, where lambda_min(H) = mu exactly.
- Problem-generic (refbilevel.checks.problem_selection): the default run adds the default
  instance of every other registered BilevelProblem that states mu (20 points where
  d_y > 20: H is built from d_y products per point); ``--problem NAME`` runs the named
  problems instead of the table, plus Example 3 (p = 2), where the control is tight. The
  bump family (docs/unibio.rst §1.6: H non-symmetric and y-dependent, bounded) is probed
  inside its bump's support too (``structured_points``).
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.checks.problem_selection import Selection, needs_constants, select_problems
from refbilevel.problems.hypercleaning import LpHyperCleaning
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="U2",
    claim="lambda_min(d grad_y g / d[y]^(p-1)) >= mu and ||H v|| >= mu ||v||",
    source="UniBiO Lemma B.2, Assumption 3.2(v); docs/unibio.rst §2.1(v), §3.2",
    evidence=(Evidence("exact", "eigenvalues at seeded probes"),),
)

ROUNDING = 1e-9
CONTROL_FACTOR = 1.5


PROBLEM_GENERIC = True
COVERED = ("unibio-example3", "uniformly-convex-separable", "uniformly-convex-nonseparable",
           "lp-hypercleaning", "uniformly-convex-bump")
applies = needs_constants("mu")
LARGE_D, LARGE_D_POINTS = 20, 20


def instances(mode: str, names: list[str] | None = None) -> tuple[list, Selection]:
    """(label, problem) for every problem the check covers, and the registry selection."""
    sel = select_problems("U2", names, applies, covered=COVERED)
    if sel.explicit:
        out = [("Example 3, p=2 (control instance)", UniBiOExample3(2))]
    else:
        out = _table(mode)
    return out + [(label, P) for _, label, P in sel.instances], sel


def _table(mode: str):
    out = [(f"Example 3, p={p}", UniBiOExample3(p)) for p in (2, 4, 6, 8)]
    ds = (1, 3) if mode == "quick" else (1, 3, 10, 50)
    for d in ds:
        for p in (2.0, 2.5, 4.0):
            out.append((f"separable d={d}, p={p:g}", SeparableUniformlyConvex(d=d, p=p)))
    for d in ds[1:]:
        out.append((f"non-separable d={d}, p=4", NonSeparableUniformlyConvex(d_y=d, p=4.0)))
    out.append(("l_p hyper-cleaning, p=3", LpHyperCleaning(p=3.0)))
    out.append(("bump d=3, p=4", UniformlyConvexBump(d=3, p=4.0)))
    return out


def _points(problem, rng, n: int):
    x = rng.uniform(-3, 3, (n, problem.d_x))
    # log-uniform magnitudes so tiny (near the singular points of D(y)) and large
    # coordinates both occur; the non-separable H blows up as y_i -> 0, keep it >= 1e-2
    lo = -12 if problem.hessian_independent_of_y else -2
    y = rng.choice([-1.0, 1.0], (n, problem.d_y)) * 10.0 ** rng.uniform(lo, 1, (n, problem.d_y))
    structured = problem.structured_points(rng, n // 2)
    if structured is not None:  # half the points inside the family's structured region
        x = np.concatenate([x[: n - n // 2], structured[0]])
        y = np.concatenate([y[: n - n // 2], structured[1]])
    v = rng.standard_normal((n, problem.d_y))
    return x, y, v


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    rng = named_stream(seed, "U2/points")
    n_default = 500 if mode == "quick" else 20000
    rows, ok = [], True
    table, selection = instances(mode, problems)
    for label, prob in track(table, "U2 problems", note=lambda it: it[0]):
        n = LARGE_D_POINTS if prob.d_y > LARGE_D else n_default
        x, y, v = _points(prob, rng, n)
        H = prob.generalized_hessian(x, y)
        eig = np.linalg.eigvals(H)
        lam = eig.real.min(axis=-1)
        scale = np.maximum(1.0, np.linalg.norm(H, ord=2, axis=(-2, -1)))
        mu = prob.constants.mu
        Hv = np.linalg.norm(prob.gen_hvp(x, y, v), axis=-1)
        sv = Hv / np.linalg.norm(v, axis=-1)
        row = {"problem": label, "mu": mu, "min_lambda_min": float(lam.min()),
               "min_lambda_over_mu": float((lam / mu).min()),
               "max_abs_imag": float(np.abs(eig.imag).max()),
               "min_Hv_over_v": float(sv.min()),
               "singular_value_claim": bool(prob.hessian_independent_of_y)}
        lam_bad = ~(lam >= mu - ROUNDING * scale)
        row["violation_frequency"] = {"lambda_min": brief(binomial_ci(int(lam_bad.sum()), n,
                                                                      LEVEL))}
        if prob.hessian_independent_of_y:
            row["violation_frequency"]["Hv"] = brief(binomial_ci(
                int(np.sum(~(sv >= mu - ROUNDING * scale))), n, LEVEL))
        row["lambda_ok"] = bool(np.all(lam >= mu - ROUNDING * scale))
        row["Hv_ok"] = (bool(np.all(sv >= mu - ROUNDING * scale))
                        if prob.hessian_independent_of_y else None)
        row["control_violated"] = bool(np.any(lam < CONTROL_FACTOR * mu - ROUNDING * scale)
                                       or (prob.hessian_independent_of_y and
                                           np.any(sv < CONTROL_FACTOR * mu - ROUNDING * scale)))
        ok &= row["lambda_ok"] and row["Hv_ok"] is not False
        rows.append(row)
    return Measurement(
        passed=bool(ok),
        control_rejected=any(r["control_violated"] for r in rows),
        measured={"per_problem": rows, "points_per_problem": n_default,
                  "points_per_problem_d_y_above_20": LARGE_D_POINTS,
                  "registry": selection.report(), "uncertainty": {
            "min_lambda_min, min_lambda_over_mu, max_abs_imag, min_Hv_over_v": EXACT_AT_PROBES,
            "violation_frequency": f"count of points violating the claim (beyond the "
                                   f"rounding allowance) and the {LEVEL:.1%} Clopper-Pearson "
                                   "exact binomial interval of the violation probability "
                                   "under the sampling distribution"}},
        bound={"lambda_min/mu": ">= 1", "||Hv||/(mu||v||)": ">= 1 (y-independent H)",
               "rounding_allowance": f"{ROUNDING} * max(1, ||H||)"},
        control={"description": f"mu' = {CONTROL_FACTOR} mu must be violated somewhere",
                 "violated_on": [r["problem"] for r in rows if r["control_violated"]]},
        notes=["lambda_min >= mu is loose for p > 2 (lambda_min(H) = 1, mu_p < 1); the "
               "control is violated on the p = 2 problems, where it is tight"],
        figure_data={"rows": rows},
    )


def plot(m: Measurement, fig) -> None:
    ax = fig.subplots(1, 1)
    rows = m.figure_data["rows"]
    labels = [r["problem"] for r in rows]
    y = np.arange(len(rows))
    ax.scatter([r["min_lambda_over_mu"] for r in rows], y, label="min lambda_min(H) / mu")
    ax.scatter([r["min_Hv_over_v"] / r["mu"] for r in rows], y, marker="x",
               label="min ||Hv|| / (mu ||v||)")
    ax.axvline(1.0, color="k", ls="--", label="claim: >= 1")
    ax.axvline(CONTROL_FACTOR, color="tab:red", ls=":", label=f"control: >= {CONTROL_FACTOR}")
    ax.set_xscale("log")
    ax.set_yticks(y, labels, fontsize=6)
    ax.legend(fontsize=7)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.u2_generalized_hessian"))
