"""U3: the generalized hypergradient formula (UniBiO Thm 4.1 / B.3 eq. (7); docs/unibio.rst
§1.6, §3.3; docs/checks.rst U3).

    ∇phi(x) = ∇_x f - ∇²_xy g H^{-T} f_u   at y = y*(x),    H = d∇_y g / d[y]^{∘(p-1)},

read with H^{-T} (docs/unibio.rst §1.6: the H^{-1} of the summaries is wrong when H is not
symmetric);
for p = 2 it is the Ghadimi–Wang formula ∇_x f - ∇²_xy g [∇²_yy g]^{-1} ∇_y f.

Measured, at seeded random x (uniform on [-3, 3]^{d_x}) on Example 3 (p = 2, 4, 6, 8, plus
x = 0 where y* = 0 and the classical Hessian is singular for p > 2), the separable LLUC
family (d = 3, p = 2, 2.5, 3, 4.5 and x = 0), the non-separable family of docs/unibio.rst §1.6
(d_y = 3, p = 2, 3.5, 4; d_x = 2 < d_y = 4, p = 3.5; its H = I + A D(y)^{-1} is not
symmetric for p > 2) and the strongly convex quadratic (p = 2); everything is evaluated
by :func:`refbilevel.hypergradient.generalized_hypergradient` at the exact y*(x):
- against the closed form ``problem.grad_phi``: relative error
  ||formula - ∇phi|| / max(1, ||∇phi||) <= 1e-10. Both are backward-stable closed-form
  evaluations and solves of condition number <= ~1e3, so rounding is <= ~1e-13: the
  allowance leaves a margin of 1000. (The non-separable family has no closed form beyond
  Ghadimi–Wang, which its ``grad_phi`` uses; finite differences are its independent truth.)
- against central finite differences of phi, (phi(x + h e_i) - phi(x - h e_i)) / 2h with
  h = 1e-5: error <= h²/6 |phi'''| + eps_phi/h. With |phi'''| <= ~10 on these problems and
  eps_phi <= 1e-15 max(1, |phi|) (closed forms; the non-separable y* comes from damped Newton
  run to a 1e-13-relative gradient, which converges quadratically to ~1e-16), that is
  <= ~2e-10; the tolerance 1e-6 max(1, ||∇phi||) leaves a margin >= 1000. The p values are
  chosen so that phi is C³ (p = 3 on the non-separable family gives a jump in phi'' where a
  y*_i changes sign and an O(h) error there; p = 3.5 is C^{2,1/2}, error O(h^{3/2}) ~ 3e-8
  at worst). The figure's left panel shows the V-shaped error-vs-h curve that picks h.
- Ghadimi–Wang: for p = 2 the generalized formula equals GW at y* to 1e-10 (relative).
  For p > 2 the identity H^{-T} f_u = [∇²_yy g]^{-1} ∇_y f still holds wherever ∇²_yy g is
  invertible (docs/unibio.rst §1.6); the check reports the agreement there for information, and at
  x = 0 (Example 3, separable) the generalized formula stays finite and exact while GW is
  undefined.
The computations are exact at the probed points (no sampling error); the points are a seeded
search, so the verdict adds, per instance, the count of points that fail and a 99.9%
Clopper-Pearson interval for the failure probability under the point distribution.

No statistical test is made: every decision is deterministic (exact at the probes), so
there is no false-positive rate beyond the tolerances justified above. --quick: 300 points
per instance; --full: 3000 points, the separable family at d = 10 with p up to 7.5, and the
non-separable family also at d = 10 (p = 3.5, 4, 6) and d_x = 6 > d_y = 3.

Negative control (docs/checks.rst U3): the H^{-1} form (``h_inverse_hypergradient``) must fail the
same finite-difference comparison on every non-symmetric instance by a margin far above the
tolerance: its largest error must exceed 1000 × tolerance. On the symmetric instances
(p = 2, H ∝ I) the two forms coincide, as the verdict shows. The bump family
(:class:`~refbilevel.problems.uniformly_convex_bump.UniformlyConvexBump`, d = 3, p = 4) is the
non-symmetric instance inside the whole of Assumption 3.2 (H bounded and Lipschitz): there
too the control must fail; it is probed inside its bump's support (``structured_points``,
100 of its points), where H is not symmetric, besides the uniform points.

Problem-generic (refbilevel.checks.problem_selection): the default run adds the default
instance of every other registered BilevelProblem with d_x <= 20 (the finite differences cost
2 d_x solves of y* per point; the sharp-Hölder instance is left out, see EXCLUDED);
``--problem NAME`` runs the named problems instead of the table, plus the non-separable
instance d = 3, p = 4 for the negative control. A registry instance with a non-symmetric H
joins the control instances.
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.checks.problem_selection import Selection, is_bilevel, select_problems
from refbilevel.hypergradient import (
    generalized_hypergradient,
    ghadimi_wang_hypergradient,
    h_inverse_hypergradient,
)
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="U3",
    claim="∇phi(x) = ∇_x f - ∇²_xy g H^(-T) f_u at y*(x); = Ghadimi–Wang for p = 2",
    source="UniBiO Thm 4.1 / B.3 eq. (7); docs/unibio.rst §1.6, §3.3",
    evidence=(Evidence("exact",
                       "closed form, Ghadimi-Wang and finite differences at seeded probes"),),
)

H_FD = 1e-5  # central-difference step (see the module docstring and the figure)
TOL_FD = 1e-6  # relative to max(1, ||∇phi||)
TOL_EXACT = 1e-10  # closed form and Ghadimi–Wang, relative to max(1, ||∇phi||)
CONTROL_MARGIN = 1e3  # the H^{-1} form must miss by > CONTROL_MARGIN × TOL_FD
H_SWEEP = np.logspace(-9, -1, 33)  # the figure's error-vs-step curve


PROBLEM_GENERIC = True
COVERED = ("unibio-example3", "uniformly-convex-separable", "uniformly-convex-nonseparable",
           "quadratic", "uniformly-convex-bump")
MAX_D_X = 20
EXCLUDED = {"uniformly-convex-sharp-holder":
            "∇phi is only 1/(p-1)-Hölder at x = 0 (phi is not C³), so central differences of "
            "phi have no O(h²) error model near 0; U4 checks this instance"}
STRUCTURED_POINTS = 100


def applies(problem) -> str | None:
    reason = is_bilevel(problem)
    if reason is None and problem.d_x > MAX_D_X:
        reason = (f"d_x = {problem.d_x} > {MAX_D_X}: finite differences of phi cost 2 d_x "
                  "lower-level solves per point (pass a smaller instance to the table)")
    return reason


def instances(mode: str, names: list[str] | None = None) -> tuple[list, Selection]:
    """(label, problem, include x = 0) for every instance the check covers, and the registry
    selection (module docstring)."""
    sel = select_problems("U3", names, applies, covered=COVERED, excluded=EXCLUDED)
    if sel.explicit:
        out = [("non-separable d=3, p=4 (control instance)",
                NonSeparableUniformlyConvex(d_y=3, p=4.0), False)]
    else:
        out = _table(mode)
    return out + [(label, P, False) for _, label, P in sel.instances], sel


def _table(mode: str):
    out: list[tuple[str, BilevelProblem, bool]] = [
        (f"Example 3, p={p}", UniBiOExample3(p), True) for p in (2, 4, 6, 8)]
    d = 3 if mode == "quick" else 10
    ps: tuple[float, ...] = ((2.0, 2.5, 3.0, 4.5) if mode == "quick"
                             else (2.0, 2.25, 2.5, 3.0, 4.5, 7.5))
    out += [(f"separable d={d}, p={p:g}", SeparableUniformlyConvex(d=d, p=p), True)
            for p in ps]
    ns = [(3, 3, p, 0) for p in (2.0, 3.5, 4.0)] + [(4, 2, 3.5, 7)]
    if mode == "full":
        ns += [(10, 10, p, 1) for p in (3.5, 4.0, 6.0)] + [(3, 6, 4.0, 2)]
    out += [(f"non-separable d_y={dy}, d_x={dx}, p={p:g}",
             NonSeparableUniformlyConvex(d_y=dy, d_x=dx, p=p, seed=s), False)
            for dy, dx, p, s in ns]
    out.append(("quadratic d=5, p=2", StronglyConvexQuadratic(d_x=5, seed=0), False))
    out.append(("bump d=3, p=4", UniformlyConvexBump(d=3, p=4.0), False))
    return out


def fd_gradient_phi(problem, x: np.ndarray, h: float = H_FD) -> np.ndarray:
    """Central differences of phi along each axis, (n, d_x)."""
    E = np.eye(problem.d_x)
    return np.stack([(problem.phi(x + h * E[i]) - problem.phi(x - h * E[i])) / (2.0 * h)
                     for i in range(problem.d_x)], axis=-1)


def _rel(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=-1) / scale


def asymmetry(problem, x: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """||H - H^T||_F / ||H||_F at (x, y*)."""
    H = problem.generalized_hessian(x, ys)
    return (np.linalg.norm(H - np.swapaxes(H, -1, -2), axis=(-2, -1))
            / np.linalg.norm(H, axis=(-2, -1)))


def _gw_agreement(problem, x, ys, good, scale):
    """Relative GW - generalized difference where ∇²_yy g is invertible (None if nowhere)."""
    ok = np.ones(x.shape[0], dtype=bool)
    if problem.hessian_independent_of_y and problem.p > 2:
        ok = np.min(np.abs(ys), axis=-1) > 1e-3  # D(y*) singular at y*_i = 0
    if not ok.any():
        return None, 0
    gw = ghadimi_wang_hypergradient(problem, x[ok], ys[ok])
    return float(_rel(gw, good[ok], scale[ok]).max()), int(ok.sum())


def step_sweep(problem, x: np.ndarray):
    """FD error of the H^{-T} and H^{-1} forms at one point for every step in H_SWEEP."""
    ys = problem.y_star(x)
    good = generalized_hypergradient(problem, x, ys)
    bad = h_inverse_hypergradient(problem, x, ys)
    scale = max(1.0, float(np.linalg.norm(good)))
    e_good, e_bad = [], []
    for h in H_SWEEP:
        fd = fd_gradient_phi(problem, x[None, :], h)[0]
        e_good.append(np.linalg.norm(good - fd) / scale)
        e_bad.append(np.linalg.norm(bad - fd) / scale)
    return np.array(e_good), np.array(e_bad)


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    rng = named_stream(seed, "U3/points")
    n = 300 if mode == "quick" else 3000
    rows, controls = [], []
    table, selection = instances(mode, problems)
    for label, P, with_zero in track(table, "U3 instances", note=lambda it: it[0]):
        x = rng.uniform(-3.0, 3.0, (n, P.d_x))
        structured = P.structured_points(rng, STRUCTURED_POINTS)
        if structured is not None:
            x = np.concatenate([x, structured[0]])
        if with_zero:
            x = np.concatenate([x, np.zeros((1, P.d_x))])
        ys = P.y_star(x)
        good = generalized_hypergradient(P, x, ys)
        closed = P.grad_phi(x)
        fd = fd_gradient_phi(P, x)
        scale = np.maximum(1.0, np.linalg.norm(closed, axis=-1))
        e_closed = _rel(good, closed, scale)
        e_fd = _rel(good, fd, scale)
        bad_fd = ~(e_fd <= TOL_FD)
        row = {"instance": label, "p": P.p, "d_x": P.d_x, "d_y": P.d_y, "points": x.shape[0],
               "max_err_closed_form": float(e_closed.max()),
               "max_err_fd": float(e_fd.max()), "median_err_fd": float(np.median(e_fd)),
               "fd_failures": brief(binomial_ci(int(bad_fd.sum()), x.shape[0], LEVEL)),
               "closed_form_ok": bool(np.all(e_closed <= TOL_EXACT)),
               "fd_ok": not bool(bad_fd.any())}
        gw_err, gw_n = _gw_agreement(P, x, ys, good, scale)
        row["max_err_ghadimi_wang"] = gw_err
        row["ghadimi_wang_points"] = gw_n
        if P.p == 2:
            row["ghadimi_wang_ok"] = gw_err is not None and gw_err <= TOL_EXACT
        if with_zero:
            row["at_x0"] = {"err_closed_form": float(e_closed[-1]), "err_fd": float(e_fd[-1]),
                            "finite": bool(np.all(np.isfinite(good[-1])))}
        asym = asymmetry(P, x, ys)
        row["max_asymmetry"] = float(asym.max())
        ctrl = _rel(h_inverse_hypergradient(P, x, ys), fd, scale)
        row["control_max_err_fd"] = float(ctrl.max())
        if asym.max() > 1e-8:  # a non-symmetric instance: the control must fail here
            c = {"instance": label, "tolerance": TOL_FD,
                 "max_err_fd": float(ctrl.max()), "median_err_fd": float(np.median(ctrl)),
                 "min_err_fd": float(ctrl.min()),
                 "max_over_tolerance": float(ctrl.max() / TOL_FD),
                 "fraction_failing": float(np.mean(ctrl > TOL_FD)),
                 "rejected": bool(ctrl.max() > CONTROL_MARGIN * TOL_FD)}
            controls.append(c)
            row["_scatter"] = (asym, e_fd, ctrl)
        rows.append(row)
    passed = all(r["closed_form_ok"] and r["fd_ok"] and r.get("ghadimi_wang_ok", True)
                 for r in rows)
    sweep_problem = NonSeparableUniformlyConvex(d_y=3, p=4.0)
    sweep_x = np.array([0.7, -1.1, 0.4])
    sweep = step_sweep(sweep_problem, sweep_x)
    scatter = [(r["instance"], *r.pop("_scatter")) for r in rows if "_scatter" in r]
    return Measurement(
        passed=passed,
        control_rejected=bool(controls) and all(c["rejected"] for c in controls),
        measured={"per_instance": rows, "registry": selection.report(), "uncertainty": {
            "max_err_closed_form, max_err_fd, median_err_fd, max_err_ghadimi_wang, "
            "control_*": EXACT_AT_PROBES,
            "at_x0, step sweep": EXACT,
            "fd_failures": f"count of points whose FD error exceeds the tolerance and the "
                           f"{LEVEL:.1%} Clopper-Pearson exact binomial interval of the "
                           "failure probability under the point distribution"}},
        bound={"closed_form_and_ghadimi_wang": f"relative error <= {TOL_EXACT}",
               "finite_differences": f"central differences, h = {H_FD}; relative error "
                                      f"<= {TOL_FD} (error model <= ~2e-10)",
               "scale": "max(1, ||∇phi(x)||)"},
        control={"description": "the H^{-1} form must fail the finite-difference comparison "
                                f"on every non-symmetric instance by > {CONTROL_MARGIN:g} × "
                                "the tolerance",
                 "per_instance": controls},
        notes=["the non-separable family's grad_phi is the Ghadimi–Wang formula (no other "
               "closed form); finite differences of phi are its independent ground truth",
               "Ghadimi–Wang is reported for p > 2 too, on the points where ∇²_yy g is "
               "invertible (min |y*_i| > 1e-3 on Example 3 / the separable family)",
               "exact NumPy evaluations: the backend argument is not used"],
        figure_data={"rows": rows, "controls": controls, "scatter": scatter,
                     "sweep": sweep, "sweep_label": "non-separable d=3, p=4, "
                                                    "x=(0.7,-1.1,0.4)"},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2, ax3 = fig.subplots(1, 3)
    e_good, e_bad = m.figure_data["sweep"]
    ax1.loglog(H_SWEEP, e_good, "o-", ms=3, label="H^{-T} form (claim)")
    ax1.loglog(H_SWEEP, e_bad, "s-", ms=3, color="tab:red", label="H^{-1} form (control)")
    ax1.axvline(H_FD, color="k", ls=":", lw=1, label=f"chosen h = {H_FD:g}")
    ax1.axhline(TOL_FD, color="k", ls="--", lw=1, label=f"tolerance {TOL_FD:g}")
    ax1.set_xlabel("finite-difference step h")
    ax1.set_ylabel("||formula - FD(phi)|| / max(1, ||∇phi||)")
    ax1.set_title(m.figure_data["sweep_label"], fontsize=7)
    # below the control's flat line, left of the claim's V (the empty quarter of the panel)
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, 0.88))
    rows = m.figure_data["rows"]
    y = np.arange(len(rows))
    floor = 1e-17
    ax2.scatter([max(r["max_err_closed_form"], floor) for r in rows], y, marker="x",
                label="max err vs closed form")
    ax2.scatter([max(r["control_max_err_fd"], floor) for r in rows], y, marker="s", s=40,
                facecolors="none", edgecolors="tab:red", label="H^{-1} control vs FD(phi)")
    ax2.scatter([max(r["max_err_fd"], floor) for r in rows], y, marker="o", s=12,
                label="max err vs FD(phi)")
    ax2.axvline(TOL_FD, color="k", ls="--", lw=1, label="FD tolerance")
    ax2.axvline(TOL_EXACT, color="k", ls=":", lw=1, label="closed-form tolerance")
    ax2.set_xscale("log")
    ax2.set_yticks(y, [r["instance"] for r in rows], fontsize=5)
    ax2.set_xlabel("relative error (max over points)")
    ax2.legend(fontsize=5, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2)
    for label, asym, e_fd, ctrl in m.figure_data["scatter"]:
        (pts,) = ax3.loglog(asym, np.maximum(ctrl, floor), ".", ms=2, label=f"control {label}")
        ax3.loglog(asym, np.maximum(e_fd, floor), "+", ms=3, color=pts.get_color())
    ax3.axhline(TOL_FD, color="k", ls="--", lw=1)
    ax3.set_xlabel("||H - H^T|| / ||H|| at y*")
    ax3.set_ylabel("FD error: H^{-1} (dots), H^{-T} (+)")
    ax3.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), markerscale=4)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.u3_hypergradient_formula"))
