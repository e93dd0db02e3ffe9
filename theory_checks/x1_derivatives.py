"""X1: every problem's derivatives match finite differences; HVP/JVP pass the adjoint test
(docs/checks.rst X1; generalized derivatives: UniBiO Definition A.1 and Lemma B.6, spec
docs/unibio.rst §1.4-1.6; fixed-point problems: docs/sid_bsgm.rst §2-§4, §14).

Measured, for every registered problem (``refbilevel.problems.problem_names()``; one the
instance table below does not know is checked at its default instance, one without a
default instance is reported as uncovered and fails the check; ``--problem NAME`` checks only
the named registered problems, a user's included: problem-generic, see
refbilevel.checks.problem_selection), in dimensions d ∈ {1, 2, 10, 100}, at seeded random
points (x, y) with y_i = ±U(0.5, 1) (away from
y_i = 0, where the generalized derivatives are limits, and from the kink of Example 3's f
at |y|^{p-1} = π/2) and unit-scale random directions, with the procedure of
:mod:`refbilevel.problems.derivative_check`:

- BilevelProblem (unibio-example3, uniformly-convex-*, lp-hypercleaning, quadratic,
  finite-sum-quadratic, borep-p1/p2): ∇_x f, ∇_y f, ∇_x g, ∇_y g (full central-difference
  gradients), ∇²_yy g v, ∇²_xy g v, ∇²_yx g w (directional differences of the gradients),
  the generalized f_u, H v and Hᵀ u (differences in u = [y]^{∘(p-1)}, docs/unibio.rst §1.4
  (10a)/(10b); Hᵀ as the u-gradient of <u, ∇_y g>), and ∇phi (directional difference of phi;
  in quick mode only where d <= 10, since phi costs a Newton solve for the problems without
  a closed-form y*); adjoint tests <∇²_xy g v, w> = <v, ∇²_yx g w>, <∇²_yy g v, u> =
  <v, ∇²_yy g u>, <H v, u> = <v, Hᵀ u>. For the finite-sum quadratic also the per-minibatch
  derivatives that FiniteSumOracle returns, against differences of the minibatch values.
- FixedPointProblem (linear-contraction, ridge-contraction): ∂₁Φ u, ∂₂Φ u, ∇₁E, ∇₂E, ∇f
  (eq. (4)), ∇²f u, the per-sample ∂₁Φ(·; j)ᵀ of the ridge problem; adjoint tests of ∂₁Φ and
  ∂₂Φ. NOT APPLICABLE there: ∇²_yy g, ∇²_xy g, f_u and the generalized Hessian (the lower
  level is a fixed point w = Φ(w, λ), not an argmin of some g: there is no g), and ∇phi's
  analogue is ∇f, which is checked.

Tolerances (derivative_check's module docstring). Central differences with step h = 1e-6
(relative step h·min(1, min|u_i|) in u) have truncation error h² M3 ||d||³/6 ≈ 2e-13 M3 and
rounding ≈ eps |F| / h ≈ 2e-10 |F|; the check reports both terms for every comparison (the
truncation by Richardson extrapolation, |D(h) - D(2h)|/3, the rounding as eps (|F+| + |F-|)/2h)
and holds the relative error ||analytic - FD||_∞ / max(1, ||analytic||_∞, ||FD||_∞) to
1e-6. At these points the estimated FD error is below ~1e-8 for d <= 20 and ~1e-7 at
d = 100 (rounding of |F| ~ 300, e.g. BO-REP P2's ||x||⁴/4), so the tolerance sits one to
three orders above the reference's own error (the smallest ratio is reported as
``min_fd_tolerance_margin``), while the weakest wrong derivative below (a factor 1 + 1e-3)
is an error of ~1e-3, a thousand times the tolerance. Adjoint residuals
|<Av, w> - <v, Aᵀw>| / (||Av|| ||w|| + ||v|| ||Aᵀw||) are pure rounding, O(d eps) = 2e-14 at
d = 100, held to 1e-12. Everything is deterministic at the sampled points (no statistical
decision, so no false-positive rate beyond the rounding margins above); the verdict adds,
per problem, a 99.9% Clopper-Pearson interval for the probability that a (point, derivative)
pair fails under the point distribution.

Negative controls (each run through the same procedure; all must be rejected):
- ∇_y g scaled by 1 + 1e-3 (quadratic): the ∇_y g finite-difference comparison must fail;
- the JVP transposed, ∇²_xy g v replaced by (∇²_xy g)ᵀ v (square quadratic, non-symmetric
  cross block): its finite-difference comparison and the JVP adjoint test must fail;
- f_u with exponent p instead of p - 1, ∇_y f / (p |y|^{p-1}) (non-separable, p = 4);
- Hᵀ replaced by H (non-separable, non-symmetric H: the H^{-1} pitfall of docs/unibio.rst §1.6):
  its finite-difference comparison and the generalized adjoint test must fail;
- ∂₁Φᵀ replaced by ∂₁Φ (golden contraction, A non-symmetric): the adjoint test must fail.
Full mode runs the controls at d = 10 and d = 100, adds points (12 instead of 3), more
exponents, rectangular shapes and seeds.

The ``backend`` argument is recorded only: X1 checks the reference (NumPy) derivatives;
agreement of the Numba/CuPy kernels with them is claim X4.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.checks.problem_selection import ProblemSelectionError
from refbilevel.power_map import power_map_jacobian_diag
from refbilevel.problems import make_problem, problem_names
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.contraction import (
    FixedPointProblem,
    LinearContraction,
    RidgeContraction,
    golden_instance,
)
from refbilevel.problems.derivative_check import (
    ADJOINT,
    ADJOINT_RTOL,
    FD_RTOL,
    FD_STEP,
    Comparison,
    bilevel_derivative_checks,
    finite_sum_derivative_checks,
    fixed_point_derivative_checks,
)
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.hypercleaning import LpHyperCleaning
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.registry import problem_entry
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.problems.uniformly_convex_bump import UniformlyConvexBump
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="X1",
    claim="gradients, HVPs, JVPs and generalized derivatives (f_u, H v, Hᵀ v) of every problem "
          "match finite differences; HVP/JVP pass the adjoint (dot-product) test",
    source="docs/checks.rst X1; UniBiO Def. A.1, Lemma B.6 (docs/unibio.rst §1.4-1.6); "
           "docs/sid_bsgm.rst §2-§4, §14 (fixed-point problems)",
    evidence=(Evidence("exact", "finite differences and adjoint tests at seeded points"),),
)

DIMS = (1, 2, 10, 100)
SCALE_CONTROL = 1e-3
NOT_APPLICABLE_FIXED_POINT = ("hvp_yy_g, jvp_xy_g/jvp_yx_g, f_u, gen_hvp, gen_hvp_T: no "
                              "lower-level objective g (w = Φ(w, λ) is a fixed point, "
                              "docs/sid_bsgm.rst §2); their analogues ∂₁Φ, ∂₂Φ and ∇f are checked")

Factory = Callable[[], object]


# ---- the instances ----------------------------------------------------------------------------
def _random_linear_contraction(d: int, seed: int) -> LinearContraction:
    """A LinearContraction with q = 0.7, n = max(1, d // 2), generic (non-symmetric) A."""
    rng = np.random.default_rng(seed)
    n = max(1, d // 2)
    A = rng.standard_normal((d, d))
    A *= 0.7 / np.linalg.norm(A, 2)
    Pm, Sm = rng.standard_normal((d, d)), rng.standard_normal((n, n))
    return LinearContraction(A, rng.standard_normal((d, n)), rng.standard_normal(d),
                             Pm @ Pm.T / d, rng.standard_normal((d, n)), Sm @ Sm.T / n,
                             rng.standard_normal(d), rng.standard_normal(n))


def instances(mode: str) -> dict[str, list[tuple[str, Factory]]]:
    """{registry name: [(label, factory), ...]} covering d ∈ {1, 2, 10, 100}."""
    full = mode == "full"
    ps = (2.0, 2.5, 3.0, 4.0, 6.0) if full else (2.0, 2.5, 4.0)
    out: dict[str, list[tuple[str, Factory]]] = {
        "unibio-example3": [(f"Example 3 p={p}", lambda p=p: UniBiOExample3(p))
                            for p in (2, 4, 6, 8)],
        "uniformly-convex-separable": [
            (f"separable d={d} p={p:g}", lambda d=d, p=p: SeparableUniformlyConvex(d=d, p=p))
            for d in DIMS for p in ps],
        "uniformly-convex-nonseparable": [
            (f"non-separable d={d} p=4", lambda d=d: NonSeparableUniformlyConvex(
                d_y=d, p=4.0, seed=d)) for d in DIMS],
        # n = d_x training rows >= d keeps phi's curvature moderate (with n < d the lower level
        # is only ||w||_p^p-convex in most directions and phi's third derivative is large)
        # d <= 10: the bump's constants shrink eps like 1/d, and its support (every |u_i| in
        # a band) is what the structured points probe
        "uniformly-convex-bump": [(f"bump d={d} p={p:g}", lambda d=d, p=p: UniformlyConvexBump(
            d=d, p=p)) for d in (1, 2, 3, 10) for p in (3.5, 4.0)],
        "lp-hypercleaning": [(f"hyper-cleaning n={max(20, d)} d={d} p=3",
                              lambda d=d: LpHyperCleaning(n=max(20, d), d=d, p=3.0, seed=d))
                             for d in DIMS],
        "quadratic": [
            (f"quadratic {'householder' if s else 'dense'} d={d}",
             lambda d=d, s=s: StronglyConvexQuadratic(d, seed=d, structured=s))
            for d in DIMS for s in (False, True)],
        "finite-sum-quadratic": [(f"finite-sum d={d}", lambda d=d: FiniteSumQuadratic(
            n_inner=128, n_outer=128, d_inner=d, d_outer=d, seed=d)) for d in DIMS],
        "finite-sum-quadratic-householder": [
            (f"finite-sum householder d={d}", lambda d=d: FiniteSumQuadratic(
                n_inner=128, n_outer=128, d_inner=d, d_outer=d, seed=d, bases="householder"))
            for d in (2, 10)],
        "borep-p1": [("P1 reference (5x8)", lambda: RelaxedSmoothP1()),
                     ("P1 sine (5x8)", lambda: RelaxedSmoothP1("sine"))]
        + [(f"P1 d={d}", lambda d=d: RelaxedSmoothP1(d_x=d, d_y=d, seed=d)) for d in DIMS],
        "borep-p2": [("P2 reference (4x6)", lambda: RelaxedSmoothP2())]
        + [(f"P2 d={d}", lambda d=d: RelaxedSmoothP2(d_x=d, d_y=d, seed=d)) for d in DIMS],
        "linear-contraction": [("golden instance (d=3, n=2)", lambda: golden_instance().problem)]
        + [(f"linear contraction d={d}", lambda d=d: _random_linear_contraction(d, d))
           for d in DIMS],
        "ridge-contraction": [(f"ridge d={d}", lambda d=d: RidgeContraction.from_seed(
            d=d, N=max(40, 2 * d), seed=d)) for d in DIMS],
    }
    if full:
        out["uniformly-convex-nonseparable"] += [
            ("non-separable d_y=4 d_x=2 p=3.5", lambda: NonSeparableUniformlyConvex(
                d_y=4, d_x=2, p=3.5, seed=7)),
            ("non-separable d=10 p=2.5", lambda: NonSeparableUniformlyConvex(
                d_y=10, p=2.5, seed=3))]
        out["lp-hypercleaning"].append(("hyper-cleaning n=8 d=3 p=4", lambda: LpHyperCleaning(
            n=8, d=3, p=4.0, seed=1)))
        out["quadratic"] += [
            ("quadratic rect 3x7 log", lambda: StronglyConvexQuadratic(
                3, 7, seed=1, spectrum_kind="log")),
            ("quadratic rect 7x3 householder", lambda: StronglyConvexQuadratic(
                7, 3, seed=2, structured=True))]
        out["finite-sum-quadratic"].append(("finite-sum ridge n=8 20x5", lambda: (
            FiniteSumQuadratic(8, 8, 20, 5, seed=3, reg=0.05))))
    return out


# ---- points -----------------------------------------------------------------------------------
def _unit(rng, n, d):
    return rng.standard_normal((n, d)) / np.sqrt(d)


def bilevel_points(P, rng, n):
    """x, y (|y_i| in [0.5, 1]) and unit-scale directions v, u (in R^{d_y}), w (R^{d_x}); for a
    problem with ``structured_points`` (the bump family), half the points come from there."""
    x = 0.5 * rng.standard_normal((n, P.d_x))
    y = rng.choice([-1.0, 1.0], (n, P.d_y)) * rng.uniform(0.5, 1.0, (n, P.d_y))
    structured = P.structured_points(rng, n // 2)
    if structured is not None:
        x = np.concatenate([x[: n - n // 2], structured[0]])
        y = np.concatenate([y[: n - n // 2], structured[1]])
    return x, y, _unit(rng, n, P.d_y), _unit(rng, n, P.d_y), _unit(rng, n, P.d_x)


def fixed_point_points(P, rng, n):
    """w, λ (inside the ridge problem's feasible set) and directions u, ul, v."""
    w = rng.standard_normal((n, P.d))
    if isinstance(P, RidgeContraction):
        lam = rng.uniform(P.lam_min, min(P.lam_max, 2.0), (n, P.n))
    else:
        lam = rng.standard_normal((n, P.n))
    return w, lam, _unit(rng, n, P.d), _unit(rng, n, P.n), _unit(rng, n, P.d)


def run_procedure(P, rng, n: int, hypergradient: bool) -> list[Comparison]:
    """The derivative_check procedure for one problem at n random points."""
    if isinstance(P, FixedPointProblem):
        return fixed_point_derivative_checks(P, *fixed_point_points(P, rng, n))
    pts = bilevel_points(P, rng, n)
    out = bilevel_derivative_checks(P, *pts, hypergradient=hypergradient)
    if isinstance(P, FiniteSumQuadratic):
        ii = rng.integers(0, P.n_inner, (n, 4))
        io = rng.integers(0, P.n_outer, (n, 4))
        out += finite_sum_derivative_checks(P, *pts, ii, io)
    return out


# ---- negative controls ------------------------------------------------------------------------
class WrongDerivative:
    """A problem with one public method replaced (a deliberately wrong derivative); every
    other attribute is the wrapped problem's, so the same procedure runs on it."""

    def __init__(self, problem, method: str, replacement: Callable):
        self._problem = problem
        self.replaced = method
        setattr(self, method, replacement)

    def __getattr__(self, name):
        return getattr(self._problem, name)


def controls(d: int) -> list[tuple[str, object, tuple[str, ...]]]:
    """(description, wrong problem, comparisons that must fail)."""
    Q = StronglyConvexQuadratic(d, seed=d + 1)
    N = NonSeparableUniformlyConvex(d_y=d, p=4.0, seed=d + 1)
    G = golden_instance().problem if d <= 10 else _random_linear_contraction(d, d + 1)
    g_label = "golden contraction" if d <= 10 else f"linear contraction d={d}"
    return [
        (f"∇_y g scaled by 1 + {SCALE_CONTROL:g} (quadratic d={d})",
         WrongDerivative(Q, "grad_y_g",
                         lambda x, y: (1.0 + SCALE_CONTROL) * Q.grad_y_g(x, y)),
         ("grad_y_g",)),
        (f"JVP transposed: (∇²_xy g)ᵀ v for ∇²_xy g v (quadratic d={d})",
         WrongDerivative(Q, "jvp_xy_g", lambda x, y, v: Q.jvp_yx_g(x, y, v)),
         ("jvp_xy_g", "jvp adjoint")),
        (f"f_u with exponent p for p-1: ∇_y f / (p|y|^(p-1)) (non-separable d={d}, p=4)",
         WrongDerivative(N, "f_u", lambda x, y: N.grad_y_f(x, y) / power_map_jacobian_diag(
             np.asarray(y, dtype=np.float64), N.p + 1.0)),
         ("f_u",)),
        (f"Hᵀ replaced by H (non-separable d={d}, p=4; docs/unibio.rst §1.6)",
         WrongDerivative(N, "gen_hvp_T", lambda x, y, v: N.gen_hvp(x, y, v)),
         ("gen_hvp_T", "gen_hvp adjoint")),
        (f"∂₁Φᵀ replaced by ∂₁Φ ({g_label}, non-symmetric A)",
         WrongDerivative(G, "vjp_w", lambda w, lam, v: G.jvp_w(w, lam, v)),
         ("jvp_w adjoint",)),
    ]


def _run_control(label, wrong, targets, rng, n) -> dict:
    inner = wrong._problem
    if isinstance(inner, FixedPointProblem):
        comps = fixed_point_derivative_checks(wrong, *fixed_point_points(inner, rng, n))
    else:
        comps = bilevel_derivative_checks(wrong, *bilevel_points(inner, rng, n),
                                          hypergradient=False)
    by_name = {c.name: c for c in comps}
    return {"control": label, "replaced": wrong.replaced,
            "must_fail": {t: {"error": by_name[t].error, "tolerance": by_name[t].tolerance,
                              "ratio": by_name[t].error / by_name[t].tolerance,
                              "failed": not by_name[t].passed} for t in targets},
            "all_failing": [c.name for c in comps if not c.passed],
            "rejected": all(not by_name[t].passed for t in targets)}


# ---- measure ----------------------------------------------------------------------------------
PROBLEM_GENERIC = True


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    """``problems``: registered names to check (their table instances, or their default
    instance); None: every registered problem. The negative controls always run."""
    full = mode == "full"
    n = 12 if full else 3
    table = instances(mode)
    if problems is not None:
        for name in problems:
            try:
                problem_entry(name)
            except ValueError as exc:
                raise ProblemSelectionError(f"X1: {exc}") from None
    registered = problem_names() if problems is None else list(problems)
    jobs, uncovered = [], []
    for name in registered:
        if name in table:
            jobs += [(name, label, make) for label, make in table[name]]
            continue
        try:  # a problem registered after this check was written: its default instance
            make_problem(name)
        except (TypeError, ValueError):
            uncovered.append(name)
            continue
        jobs.append((name, f"{name} (default instance)", lambda name=name: make_problem(name)))
    rows: list[dict] = []
    per_derivative: dict[str, dict] = {}
    by_d: dict[str, dict[str, float]] = {}
    for name, label, make in track(jobs, "X1 problems", note=lambda j: j[1]):
        P = make()
        rng = named_stream(seed, f"X1/points/{label}")
        dims = (P.d, P.n) if isinstance(P, FixedPointProblem) else (P.d_x, P.d_y)
        comps = run_procedure(P, rng, n, hypergradient=full or max(dims) <= 10)
        failed_pairs = sum(c.n_failed for c in comps)
        pairs = sum(c.n_points for c in comps)
        row = {"problem": label, "registry": name, "class": type(P).__name__,
               "dims": list(dims), "p": getattr(P, "p", None) if isinstance(P, BilevelProblem)
               else None, "interface": "FixedPointProblem" if isinstance(P, FixedPointProblem)
               else "BilevelProblem",
               "errors": {c.name: c.error for c in comps},
               "failed": [c.name for c in comps if not c.passed],
               "violation_frequency": brief(binomial_ci(failed_pairs, pairs, LEVEL)),
               "passed": all(c.passed for c in comps)}
        rows.append(row)
        for c in comps:
            agg = per_derivative.setdefault(c.name, {
                "test": c.test, "what": c.what, "tolerance": c.tolerance, "max_error": -1.0,
                "worst_problem": None, "max_truncation_estimate": 0.0,
                "max_rounding_estimate": 0.0, "problems": 0, "max_dimension": 0,
                "points_failed": 0, "points": 0})
            agg["problems"] += 1
            agg["points"] += c.n_points
            agg["points_failed"] += c.n_failed
            agg["max_dimension"] = max(agg["max_dimension"], max(dims))
            if not (c.error <= agg["max_error"]):
                agg["max_error"], agg["worst_problem"] = c.error, label
            if c.truncation is not None:
                agg["max_truncation_estimate"] = max(agg["max_truncation_estimate"],
                                                     c.truncation)
                agg["max_rounding_estimate"] = max(agg["max_rounding_estimate"], c.rounding)
            ratio = c.error / c.tolerance
            if c.test == ADJOINT:
                agg["margin"] = None
            else:  # tolerance / estimated error of the FD reference itself
                agg["margin"] = min(agg.get("margin") or np.inf, c.tolerance / max(
                    (c.truncation or 0.0) + (c.rounding or 0.0), 1e-300))
            cell = by_d.setdefault(str(max(dims)), {"fd": 0.0, "adjoint": 0.0,
                                                    "fd_estimate": 0.0})
            if c.test == ADJOINT:
                cell["adjoint"] = max(cell["adjoint"], ratio)
            else:
                cell["fd"] = max(cell["fd"], ratio)
                cell["fd_estimate"] = max(cell["fd_estimate"],
                                          (c.truncation + c.rounding) / c.tolerance)
    control_rows = []
    for d in ((10, 100) if full else (10,)):
        for label, wrong, targets in track(controls(d), f"X1 controls d={d}",
                                           note=lambda c: c[0]):
            control_rows.append(_run_control(label, wrong, targets,
                                             named_stream(seed, f"X1/control/{label}"), n))
    passed = not uncovered and all(r["passed"] for r in rows)
    control_rejected = bool(control_rows) and all(c["rejected"] for c in control_rows)
    fixed = sorted({r["registry"] for r in rows if r["interface"] == "FixedPointProblem"})
    return Measurement(
        passed=passed,
        control_rejected=control_rejected,
        measured={
            "per_derivative": per_derivative,
            "per_problem": rows,
            "worst_ratio_by_dimension": by_d,
            "min_fd_tolerance_margin": min(a["margin"] for a in per_derivative.values()
                                           if a["margin"] is not None),
            "coverage": {"registered": registered, "uncovered": uncovered,
                         "instances": len(rows), "points_per_instance": n,
                         "dimensions": list(DIMS),
                         "not_applicable": {name: NOT_APPLICABLE_FIXED_POINT for name in fixed}},
            "uncertainty": {
                "per_derivative, per_problem.errors": EXACT_AT_PROBES,
                "max_truncation_estimate, max_rounding_estimate":
                    "exact computation (Richardson |D(h) - D(2h)|/3 and eps(|F+|+|F-|)/2h at "
                    "the probed points, relative to max(1, |analytic|, |FD|))",
                "violation_frequency": f"count of (point, derivative) pairs beyond the "
                                       f"tolerance and the {LEVEL:.1%} Clopper-Pearson exact "
                                       "binomial interval of that probability under the "
                                       "point distribution"}},
        bound={"finite_difference": f"||analytic - FD||_∞ / max(1, ||analytic||_∞, ||FD||_∞) "
                                    f"<= {FD_RTOL:g}, central differences with h = "
                                    f"{FD_STEP:g} (h min(1, min|u_i|) in u)",
               "adjoint": f"|<Av,w> - <v,Aᵀw>| / (||Av|| ||w|| + ||v|| ||Aᵀw||) <= "
                          f"{ADJOINT_RTOL:g}"},
        control={"description": "deliberately wrong derivatives (gradient × (1 + 1e-3), JVP "
                                "transposed, f_u with exponent p, H for Hᵀ, ∂₁Φ for ∂₁Φᵀ) "
                                "must fail the same procedure",
                 "per_control": control_rows},
        notes=[f"contraction problems ({', '.join(fixed)}): {NOT_APPLICABLE_FIXED_POINT}",
               "∇phi is compared in quick mode only where max(d_x, d_y) <= 10 (phi costs a "
               "Newton solve for the non-separable and hyper-cleaning problems); in full "
               "mode everywhere",
               f"backend {backend!r} recorded only: X1 checks the NumPy reference "
               "derivatives; backend agreement is claim X4"]
        + ([f"registered problems with no X1 instance: {', '.join(uncovered)}"]
           if uncovered else []),
        figure_data={"per_derivative": per_derivative, "controls": control_rows,
                     "by_d": by_d},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    agg = m.figure_data["per_derivative"]
    names = list(agg)
    yy = np.arange(len(names))
    ratios = [max(agg[k]["max_error"], 1e-300) / agg[k]["tolerance"] for k in names]
    pred = [max(agg[k]["max_truncation_estimate"] + agg[k]["max_rounding_estimate"], 1e-300)
            / agg[k]["tolerance"] if agg[k]["test"] != ADJOINT else np.nan for k in names]
    ax1.scatter(ratios, yy, label="max error / tolerance (all problems)")
    ax1.scatter(pred, yy, marker="|", s=80, color="gray",
                label="FD error estimate (trunc. + round.) / tol.")
    first = True
    for c in m.figure_data["controls"]:
        for t, r in c["must_fail"].items():
            if t in names:
                ax1.scatter(r["ratio"], names.index(t), marker="x", color="tab:red",
                            label="negative controls" if first else None)
                first = False
    ax1.axvline(1.0, color="k", ls="--", label="tolerance")
    ax1.set_xscale("log")
    ax1.set_yticks(yy, names, fontsize=6)
    ax1.set_xlabel("error / tolerance")
    ax1.legend(fontsize=6)
    by_d = m.figure_data["by_d"]
    ds = sorted(by_d, key=int)
    x = [int(d) for d in ds]
    for key, label, style in (("fd", "finite differences: max error / tol.", "o-"),
                              ("fd_estimate", "FD error estimate / tol.", "s:"),
                              ("adjoint", "adjoint residual / tol.", "^-")):
        ax2.loglog(x, [max(by_d[d][key], 1e-300) for d in ds], style, ms=4, label=label)
    ctrl = [r["ratio"] for c in m.figure_data["controls"] for r in c["must_fail"].values()]
    ax2.axhline(min(ctrl), color="tab:red", ls=":", label="smallest control error / tol.")
    ax2.axhline(1.0, color="k", ls="--", label="tolerance")
    ax2.set_xlabel("max(d_x, d_y) of the instance (d for contractions)")
    ax2.set_ylabel("worst over problems and derivatives")
    ax2.legend(fontsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.x1_derivatives"))
