"""U5: the hypergradient error of an inexact lower level (UniBiO Lemma B.4; docs/unibio.rst
§3.4, §3.3 eq. (34); docs/checks.rst U5).

    ||∇̄f(x, y) - ∇phi(x)|| <= L_phi2 ||y - y*(x)||,
    ∇̄f(x, y) = ∇_x f(x, y) - ∇²_xy g(x, y) H(x, y)^{-T} f_u(x, y)

(the surrogate hypergradient evaluated at y instead of y*(x):
:func:`refbilevel.hypergradient.generalized_hypergradient` at (x, y)). The constant of the
lemma is L̄ = l_f1 + l_g1 l_f2/mu + C_f l_g2/mu + l_g1 C_f L_H/mu², the joint Lipschitz
constant of ∇̄f (docs/unibio.rst §3.3-3.4, DERIVED; "constant = L̄ = L_phi2"). It is computed here
from
each problem's stated ingredients with the library's
:func:`~refbilevel.problems.constants.lipschitz_hypergradient_constants`. For the problems
with DERIVED constants (Example 3, the separable family, the sharp-Hölder instance) this is
exactly their ``constants.L_phi2`` (the verdict checks it). The strongly convex quadratic
stores a different L_phi2, the exact smoothness constant ||∇²phi|| of eq. (8); it is not the
lemma's constant, and the verdict shows an instance where it fails as a U5 constant (a note,
not part of the claim).

Problems: Example 3 (p = 2, 4, 6, 8), the separable family (d = 3, p = 2, 2.5, 3, 4.5:
there ∇̄f does not depend on y at all, so the left side is 0), the sharp-Hölder instance
(d = 1, p = 2, 4, 8; d = 3, p = 3.5) and the quadratic (d = 1 with H = 0.5, K = F = 1,
rho = 0, where ∇̄f(x, y) - ∇phi(x) = (K F / H)(y - y*) = L̄ (y - y*) exactly: the bound is
attained at every pair; d = 5; d = 1 with H = 2 for the note). Skipped, and listed in the
verdict: the non-separable family (H unbounded as y_i -> 0: no C, L_H) and the ℓ_p
hyper-cleaning problem (no derived constants).

Probes: seeded random (x, y) with x uniform on [-3, 3]^d and y = y*(x) + N(0, I)
10^{U(-8, 0.5)}, plus, for d = 1, a deterministic grid of x over [-pi, pi] times
y - y* = ±t, t in [1e-8, 3] (this covers small ||y - y*|| everywhere, including the x where
f_u is steepest), and for d > 1 the axis directions y* ± t e_i. Everything is closed form
(exact at each probe), so each probe is checked exactly: the ratio
lhs / (L̄ ||y - y*|| + allowance) must be <= 1, with a rounding allowance of
1e-13 (||∇̄f(x, y)|| + ||∇phi(x)||) (closed forms and solves of condition number <= 100 are
accurate to ~1e-14 relative). The random probes are a seeded search, so the verdict adds
per problem the count of violating probes and a 99.9% Clopper-Pearson interval for the
violation probability under the probe distribution.

No statistical test is made: every decision is deterministic (exact at each probe), so
there is no false-positive rate beyond the rounding allowance. --quick: 3000 random probes
and a 201-point x grid per problem; --full: 50000 and 2001, the separable family at d = 10,
more p, and a d = 50 quadratic.

Sharpness: on the d = 1 quadratic the max ratio must be >= 1 - 1e-6 (it is 1 to rounding).
Elsewhere the constant is loose (it pays for the x-variation of ∇²_xy g and for 1/mu where
||H^{-1}|| is smaller); the max ratios are reported as measured.

Negative control: the constant L̄/2 must be violated somewhere; the verdict reports, per
problem, the max of lhs / ((L̄/2) ||y - y*||), i.e. by how much it is violated (2 on the
sharp instance).

Problem-generic (refbilevel.checks.problem_selection): the default run adds the default
instance of every other registered BilevelProblem whose stated constants give L̄ and with
d_x <= 20 (the grid probes cost 8 · 82 · d_y lower-level solves); ``--problem NAME`` runs the
named problems instead of the table, plus the sharp quadratic (d = 1, H = 0.5), where the
control bites.
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.checks.problem_selection import Selection, is_bilevel, select_problems
from refbilevel.hypergradient import generalized_hypergradient
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import surrogate_lipschitz_constant
from refbilevel.problems.hypercleaning import LpHyperCleaning
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
    SharpHolderUniformlyConvex,
)
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="U5",
    claim="||∇̄f(x, y) - ∇phi(x)|| <= L_phi2 ||y - y*(x)||  (L_phi2 = L̄ of docs/unibio.rst §3.3)",
    source="UniBiO Lemma B.4; docs/unibio.rst §3.4, §3.3 eq. (34)",
    evidence=(Evidence("exact", "closed-form evaluation at seeded probes"),),
)

ROUNDING = 1e-13
SHARP_RATIO = 1 - 1e-6
CONTROL_FACTOR = 0.5


def quadratic_1d(h: float) -> StronglyConvexQuadratic:
    """d = 1, H = h, K = F = 1, rho = 0: ∇̄f - ∇phi = (y - y*)/h, L̄ = 1/h, L_phi2 = 1/h²."""
    return StronglyConvexQuadratic(d_x=1, mu=h, L=h, k_range=(1.0, 1.0), f_range=(1.0, 1.0),
                                   rho=0.0, seed=0)


PROBLEM_GENERIC = True
COVERED = ("unibio-example3", "uniformly-convex-separable", "uniformly-convex-sharp-holder",
           "quadratic", "uniformly-convex-nonseparable", "lp-hypercleaning")
MAX_D_X = 20


def applies(problem) -> str | None:
    reason = is_bilevel(problem)
    if reason is None and surrogate_lipschitz_constant(problem.constants) is None:
        reason = "its constants do not give L̄ (mu, l_g1, l_g2, L_H, l_f1, l_f2 or C_f is None)"
    if reason is None and problem.d_x > MAX_D_X:
        reason = f"d_x = {problem.d_x} > {MAX_D_X} (pass a smaller instance to the table)"
    return reason


def instances(mode: str, names: list[str] | None = None) -> tuple[list, Selection]:
    """(label, problem, role) and the registry selection; role "claim", "sharp" (also must
    attain the bound) or "note" (reported apart, see the module docstring)."""
    sel = select_problems("U5", names, applies, covered=COVERED)
    if sel.explicit:
        out = [("quadratic d=1, H=0.5 (control instance)", quadratic_1d(0.5), "sharp")]
    else:
        out = _table(mode)
    return out + [(label, P, "claim") for _, label, P in sel.instances], sel


def _table(mode: str):
    out: list[tuple[str, BilevelProblem, str]] = [
        (f"Example 3, p={p}", UniBiOExample3(p), "claim") for p in (2, 4, 6, 8)]
    d = 3 if mode == "quick" else 10
    ps: tuple[float, ...] = ((2.0, 2.5, 3.0, 4.5) if mode == "quick"
                             else (2.0, 2.25, 2.5, 3.0, 4.5, 7.5))
    out += [(f"separable d={d}, p={p:g}", SeparableUniformlyConvex(d=d, p=p), "claim")
            for p in ps]
    ps = (2.0, 4.0, 8.0) if mode == "quick" else (2.0, 2.5, 3.0, 4.0, 6.0, 8.0)
    out += [(f"sharp-Hölder d=1, p={p:g}", SharpHolderUniformlyConvex(d=1, p=p), "claim")
            for p in ps]
    out.append(("sharp-Hölder d=3, p=3.5", SharpHolderUniformlyConvex(d=3, p=3.5), "claim"))
    out.append(("quadratic d=1, H=0.5", quadratic_1d(0.5), "sharp"))
    out.append(("quadratic d=5", StronglyConvexQuadratic(d_x=5, seed=0), "claim"))
    if mode == "full":
        out.append(("quadratic d=50", StronglyConvexQuadratic(d_x=50, seed=1), "claim"))
    out.append(("quadratic d=1, H=2", quadratic_1d(2.0), "note"))
    out.append(("non-separable d=3, p=4", NonSeparableUniformlyConvex(d_y=3, p=4.0), "claim"))
    out.append(("l_p hyper-cleaning, p=3", LpHyperCleaning(p=3.0), "claim"))
    return out


def probes(problem, rng, n: int, n_grid: int):
    """(x, y, number of random probes): random probes, then the deterministic ones."""
    d = problem.d_x
    x = rng.uniform(-3, 3, (n, d))
    y = problem.y_star(x) + rng.standard_normal((n, problem.d_y)) * 10.0 ** rng.uniform(
        -8, 0.5, (n, 1))
    t = np.logspace(-8, np.log10(3.0), 41)
    t = np.concatenate([t, -t])
    if d == 1:
        xg = np.repeat(np.linspace(-np.pi, np.pi, n_grid), t.size)[:, None]
        shift = np.tile(t, n_grid)[:, None]
    else:
        base = rng.uniform(-3, 3, (8, d))
        E = np.eye(problem.d_y)
        xg = np.repeat(base, d * t.size, axis=0)
        shift = np.tile((t[:, None, None] * E[None]).reshape(-1, problem.d_y), (8, 1))
    yg = problem.y_star(xg) + shift
    return np.concatenate([x, xg]), np.concatenate([y, yg]), n


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    rng = named_stream(seed, "U5/probes")
    n, n_grid = (3000, 201) if mode == "quick" else (50000, 2001)
    rows, skipped, controls, curves = [], [], [], []
    table, selection = instances(mode, problems)
    for label, P, role in track(table, "U5 problems", note=lambda it: it[0]):
        L = surrogate_lipschitz_constant(P.constants)
        if L is None:
            c = P.constants
            skipped.append({"problem": label, "missing_constants": [
                k for k in ("mu", "l_g1", "l_g2", "C", "L_H", "l_f1", "l_f2", "C_f")
                if getattr(c, k) is None]})
            continue
        x, y, n_rand = probes(P, rng, n, n_grid)
        ys = P.y_star(x)
        surrogate = generalized_hypergradient(P, x, y)
        truth = P.grad_phi(x)
        lhs = np.linalg.norm(surrogate - truth, axis=-1)
        dy = np.linalg.norm(y - ys, axis=-1)
        tol = ROUNDING * (np.linalg.norm(surrogate, axis=-1) + np.linalg.norm(truth, axis=-1))
        r = lhs / (L * dy + tol)
        rc = lhs / (CONTROL_FACTOR * L * dy + tol)
        stored = P.constants.L_phi2
        row = {"problem": label, "role": role, "p": P.p, "L_bar": L, "stored_L_phi2": stored,
               "L_bar_equals_stored_L_phi2": stored is not None
               and abs(stored - L) <= 1e-12 * L,
               "probes": int(r.size), "max_ratio": float(r.max()),
               "violation_frequency": brief(binomial_ci(int(np.sum(r[:n_rand] > 1)), n_rand,
                                                        LEVEL)),
               "grid_violations": int(np.sum(r[n_rand:] > 1)),
               "min_dy_probed": float(dy.min()), "max_dy_probed": float(dy.max())}
        if stored is not None and not row["L_bar_equals_stored_L_phi2"]:
            rs = lhs / (stored * dy + tol)
            row["max_ratio_with_stored_L_phi2"] = float(rs.max())
        if role == "sharp":
            row["sharp"] = bool(r.max() >= SHARP_RATIO)
        rows.append(row)
        controls.append({"problem": label, "role": role, "constant": CONTROL_FACTOR * L,
                         "max_ratio": float(rc.max()), "violated": bool(np.any(rc > 1))})
        if P.d_x == 1 and label.startswith(("Example 3, p=4", "sharp-Hölder d=1, p=2",
                                            "quadratic d=1, H=0.5")):
            k = slice(n_rand, None)
            curves.append((label, dy[k], lhs[k], L))
    note_rows = [r for r in rows if r["role"] == "note"]
    claim_rows = [r for r in rows if r["role"] != "note"]
    passed = all(r["max_ratio"] <= 1 for r in rows) and all(r.get("sharp", True) for r in rows)
    control_rows = [c for c in controls if c["role"] != "note"]
    notes = ["skipped (constants not stated): " + "; ".join(
                 f"{s['problem']} (None: {', '.join(s['missing_constants'])})" for s in skipped),
             "separable family: ∇̄f(x, ·) is constant (f_u = c, ∇²_xy g independent of y), so "
             "the left side is exactly 0 there",
             "exact NumPy evaluations: the backend argument is not used"]
    for r in note_rows:
        notes.append(f"{r['problem']}: the quadratic's stored L_phi2 = ||∇²phi|| = "
                     f"{r['stored_L_phi2']:g} (the exact constant of eq. (8)) is smaller than "
                     f"L̄ = {r['L_bar']:g}; with it the U5 ratio reaches "
                     f"{r['max_ratio_with_stored_L_phi2']:.3g} > 1, so Lemma B.4 needs L̄, "
                     "not an arbitrary valid eq. (8) constant")
    return Measurement(
        passed=passed,
        control_rejected=any(c["violated"] for c in control_rows),
        measured={"per_problem": claim_rows, "note_instances": note_rows, "skipped": skipped,
                  "registry": selection.report(),
                  "uncertainty": {
                      "max_ratio, max_ratio_with_stored_L_phi2, control max_ratio":
                          EXACT_AT_PROBES,
                      "violation_frequency": f"count of random probes with ratio > 1 and the "
                                             f"{LEVEL:.1%} Clopper-Pearson exact binomial "
                                             "interval of the violation probability under the "
                                             "random-probe distribution (grid probes counted "
                                             "apart, exactly: grid_violations)"}},
        bound={"max_ratio": "<= 1", "ratio": "lhs / (L̄ ||y - y*|| + rounding allowance)",
               "rounding_allowance": f"{ROUNDING} (||∇̄f|| + ||∇phi||)",
               "sharp instance": f"max ratio >= {SHARP_RATIO}"},
        control={"description": f"the constant {CONTROL_FACTOR:g} L̄ must be violated "
                                "somewhere (max_ratio > 1: by that factor)",
                 "per_problem": controls},
        notes=notes,
        figure_data={"rows": rows, "controls": controls, "curves": curves},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    grid = np.logspace(-8, 0.5, 20)
    for label, dy, lhs, L in m.figure_data["curves"]:
        keep = lhs > 0
        (pts,) = ax1.loglog(dy[keep], lhs[keep], ".", ms=1, alpha=0.4, label=label)
        ax1.loglog(grid, L * grid, "-", color=pts.get_color(), lw=1)
        ax1.loglog(grid, CONTROL_FACTOR * L * grid, ":", color=pts.get_color(), lw=1)
    ax1.set_xlabel("||y - y*(x)|| (grid probes)")
    ax1.set_ylabel("||∇̄f(x, y) - ∇phi(x)||")
    ax1.set_title("measured (dots), bound L̄ Δy (solid), control L̄/2 Δy (dotted)", fontsize=7)
    ax1.legend(fontsize=5, markerscale=6)
    rows = m.figure_data["rows"]
    y = np.arange(len(rows))
    floor = 1.2e-4  # ratio 0 (separable family) is drawn at the left edge
    ax2.scatter([max(r["max_ratio"], floor) for r in rows], y, s=12, label="claim: max ratio")
    ctrl = {c["problem"]: c["max_ratio"] for c in m.figure_data["controls"]}
    ax2.scatter([max(ctrl[r["problem"]], floor) for r in rows], y, marker="s", s=30,
                facecolors="none", edgecolors="tab:red", label=f"control {CONTROL_FACTOR:g} L̄")
    sy = [i for i, r in enumerate(rows) if "max_ratio_with_stored_L_phi2" in r]
    ax2.scatter([rows[i]["max_ratio_with_stored_L_phi2"] for i in sy], sy, marker="x",
                color="tab:purple", label="quadratic's stored L_phi2 (info)")
    ax2.axvline(1.0, color="k", ls="--", label="bound: ratio 1")
    ax2.set_xscale("log")
    ax2.set_xlim(left=1e-4)
    ax2.set_yticks(y, [r["problem"] for r in rows], fontsize=5)
    ax2.set_xlabel("max ||∇̄f - ∇phi|| / (constant ||y - y*||); separable: 0 (left edge)")
    ax2.legend(fontsize=5, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.u5_surrogate_error"))
