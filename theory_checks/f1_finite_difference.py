"""F1: finite-difference HVP/JVP error (FdeHBO Lemma 5, DERIVED version; docs/fdehbo.rst §2,
docs/checks.rst F1).

    ||H̃(x, y, v, δ) - ∇²_yy g v|| <= (L_gyy/2) δ ||v||²,   ||J̃ - ∇²_xy g v|| <= (L_gxy/2) δ ||v||²,

independent of the dimension; exactly zero (up to rounding) when ∇g is quadratic in y; O(δ²)
when g has a Lipschitz third derivative.

Measured (exact oracles, so the error is the finite-difference error itself):
- bound: g = (1/3)Σ|y_i|³ - <sin x, y> (the separable LLUC family at p = 3; ∇²_yy g =
  diag(2|y_i|) is L = 2 Lipschitz in the spectral norm, in every dimension), random y
  (including coordinates near 0), v and δ in [1e-4, 1], d in {1, 10, 1000}: the ratio
  error / ((L/2) δ ||v||²) is at most 1 (plus a rounding allowance) in every d;
- sharpness (docs/fdehbo.rst §2): at y = 0 with v along a coordinate axis the error equals
  (L/2) δ ||v||² exactly, in every dimension (ratio 1);
- JVP analogue on the test problem :class:`CubicCross` below (∇²_xy g = diag(L|y_i|), L-
  Lipschitz in y): the same bound, sharp at y = 0;
- exactness: quadratic g (StronglyConvexQuadratic, d in {1, 10, 1000}) and every JVP of
  the library's problems (∇_x g is linear in y there): error <= rounding allowance
  64 eps (||∇g(y + δv)|| + ||∇g(y - δv)||) / (2δ) + 64 eps ||exact||;
- O(δ²): on g = (1/p)Σ|y_i|^p - <sin x, y> with p = 4 (∇g cubic: error = δ² ||v^{∘3}||
  exactly) and p = 5.5 (non-polynomial, y bounded away from 0), the slope of log error vs
  log δ over δ in [1e-3, 1e-1] is 2 ± 0.1, in every d;
- same sample (docs/fdehbo.rst §2, §10.3 item 5): with noise std 1 the estimator's two calls share
  one sample, so its error equals the noise-free error to rounding; evaluating the two calls
  on independent samples instead gives an error of order std/δ.

Uncertainty: the exact-oracle parts are exact arithmetic at seeded random points (no
sampling error; the random points are a search, and for the bound the verdict adds a 99.9%
Clopper-Pearson interval for the violation probability under the point distribution). The
same-sample part uses one noisy draw: with additive N(0, σ²) noise, the independent-sample
error is exactly σ/(√2 δ)·χ_d distributed, so the verdict gives that law's central 99.9%
interval and the probability that the control would not be rejected.

Negative controls (all must be violated): the constant L/4 instead of L/2 at the sharp
points (HVP and JVP, every d), and the independent-sample variant's error below the bound.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends.numba_problems import supports as numba_supports
from refbilevel.backends.registry import implementation
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, EXACT_AT_PROBES, LEVEL, binomial_ci, brief
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="F1",
    claim="||H̃ - ∇²_yy g v||, ||J̃ - ∇²_xy g v|| <= (L/2) δ ||v||²; exact for quadratic g; "
          "O(δ²) for smooth g; dimension-free",
    source="FdeHBO Lemma 5 (DERIVED version), eqs. (9), (11); docs/fdehbo.rst §2",
    evidence=(Evidence("exact", note="exact arithmetic at seeded points; the same-sample "
                                     "part equals the noise-free error to rounding"),),
)

EPS = np.finfo(float).eps
SLOPE_TOL = 0.1
RATIO_ROUNDING = 1e-9
L_CUBIC = 2.0  # Lipschitz constant of diag(2|y_i|)


class CubicCross(BilevelProblem):
    """A test problem for the JVP bound (DERIVED here): d_x = d_y = d,

        g(x, y) = ½||y||² + (L/2) Σ_i x_i y_i|y_i|,     f(x, y) = 0,

    so ∇_x g = (L/2) y∘|y| and ∇²_xy g = diag(L |y_i|), which is L-Lipschitz in y; the central
    difference of ∇_x g along e_i at y = 0 has error exactly (L/2) δ. For ||x||_∞ < 1/L, g is
    strongly convex in y and y*(x) = 0. Only the JVP part of F1 uses it (its ∇²_yy g = I +
    diag(L x_i sign(y_i)) is not Lipschitz in y).
    """

    name = "f1-cubic-cross"

    def __init__(self, d: int, L: float = 2.0):
        self.d_x = self.d_y = d
        self.p = 2.0
        self.L = L
        self.constants = Constants(mu=None, p=2.0, extra={"L_gxy": L})

    def _f(self, x, y):
        return np.zeros(np.broadcast_shapes(x.shape, y.shape)[:-1])

    def _g(self, x, y):
        return 0.5 * np.sum(y * y, -1) + 0.5 * self.L * np.sum(x * y * np.abs(y), -1)

    def _grad_x_f(self, x, y):
        return np.zeros(np.broadcast_shapes(x.shape, y.shape))

    _grad_y_f = _grad_x_f

    def _grad_x_g(self, x, y):
        return np.broadcast_to(0.5 * self.L * y * np.abs(y),
                               np.broadcast_shapes(x.shape, y.shape)).copy()

    def _grad_y_g(self, x, y):
        return y + self.L * x * np.abs(y)

    def _hvp_yy_g(self, x, y, v):
        return v + self.L * x * np.sign(y) * v

    def _jvp_xy_g(self, x, y, v):
        return np.broadcast_to(self.L * np.abs(y) * v,
                               np.broadcast_shapes(x.shape, y.shape, v.shape)).copy()

    _jvp_yx_g = _jvp_xy_g

    def _y_star(self, x):
        return np.zeros_like(x)


def _fd(name: str, backend: str, problem):
    """The backend's implementation, or numpy where the backend has no kernels for the
    problem (CubicCross is a test-only class)."""
    if backend == "numba" and not numba_supports(problem):
        backend = "numpy"
    return implementation("estimator", name, backend), backend


def _value(est):
    v = est.value
    return np.asarray(v.get() if hasattr(v, "get") else v)


def fd_error(problem, backend, kind, x, y, v, delta):
    """(error norms, exact-product norms, rounding allowance) of the exact-oracle FD product."""
    name = "fd_hvp" if kind == "hvp" else "fd_jvp"
    fn, _ = _fd(name, backend, problem)
    oracle = GaussianOracle(problem, 0.0, np.random.default_rng(0))
    approx = _value(fn(oracle, x, y, v, delta))
    if kind == "hvp":
        exact = problem.hvp_yy_g(x, y, v)
        gp, gm = problem.grad_y_g(x, y + delta * v), problem.grad_y_g(x, y - delta * v)
    else:
        exact = problem.jvp_xy_g(x, y, v)
        gp, gm = problem.grad_x_g(x, y + delta * v), problem.grad_x_g(x, y - delta * v)
    err = np.linalg.norm(approx - exact, axis=-1)
    allowance = 64 * EPS * ((np.linalg.norm(gp, axis=-1) + np.linalg.norm(gm, axis=-1))
                            / (2 * delta) + np.linalg.norm(exact, axis=-1))
    return err, allowance


def _bound_part(problem, L, kind, backend, rng, n, d) -> np.ndarray:
    """Random points: ratios error / ((L/2) δ ||v||²) (rounding allowance removed)."""
    x = rng.uniform(-0.4, 0.4, (n, problem.d_x))  # CubicCross needs ||x||_inf < 1/L
    y = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-4, 0, (n, 1))
    v = rng.standard_normal((n, d))
    delta = 10.0 ** rng.uniform(-4, 0, n)
    ratios = []
    for i in range(n):  # δ varies per point
        err, allow = fd_error(problem, backend, kind, x[i], y[i], v[i], delta[i])
        bound = 0.5 * L * delta[i] * np.sum(v[i] ** 2)
        ratios.append(float(max(err - allow, 0.0) / bound))
    return np.array(ratios)


def _sharp_part(problem, L, kind, backend, d, deltas):
    """At y = 0, v = 2 e_1: ratio error / ((L/2) δ ||v||²) for each δ (1 expected)."""
    x = np.zeros(problem.d_x)
    y = np.zeros(d)
    v = np.zeros(d)
    v[0] = 2.0
    out = []
    for delta in deltas:
        err, _ = fd_error(problem, backend, kind, x, y, v, delta)
        out.append(float(err / (0.5 * L * delta * 4.0)))
    return np.array(out)


def _slope(problem, backend, d, rng):
    deltas = np.logspace(-3, -1, 9)
    x = rng.uniform(-1, 1, d)
    y = np.sign(rng.standard_normal(d)) * rng.uniform(0.5, 1.5, d)  # away from the kink
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)
    errs = np.array([fd_error(problem, backend, "hvp", x, y, v, dl)[0] for dl in deltas])
    slope, _ = np.polyfit(np.log(deltas), np.log(errs), 1)
    return float(slope), deltas, errs


def _same_sample(backend, d, rng, seed: int):
    """Noisy oracle, same sample vs two independent samples, against the exact-oracle FD."""
    from scipy.special import gammainc, gammaincinv

    P = SeparableUniformlyConvex(d=d, p=4.0)
    x, y, v = rng.uniform(-1, 1, d), rng.uniform(-1, 1, d), rng.standard_normal(d)
    delta, std = 1e-3, 1.0
    fn, _ = _fd("fd_hvp", backend, P)
    exact_fd = _value(fn(GaussianOracle(P, 0.0, np.random.default_rng(0)), x, y, v, delta))
    noisy = GaussianOracle(P, NoiseConfig(grad_y_g=std), named_stream(seed, "F1/same-sample"))
    same = _value(fn(noisy, x, y, v, delta))
    # control: the two gradient calls on independent samples (what eq. (9) forbids)
    gp = noisy.grad_y_g(x, y + delta * v)
    gm = noisy.grad_y_g(x, y - delta * v)
    indep = (gp - gm) / (2 * delta)
    bound = 0.5 * 6.0 * 2.0 * delta * np.sum(v**2)  # L_loc of 3y² on |y| <= 1 + δ|v|, generous
    # indep - exact_fd = σ(ξ₊ - ξ₋)/(2δ) ~ N(0, s² I_d), s = σ/(√2 δ): its norm is s·χ_d
    s = std / (np.sqrt(2.0) * delta)
    a = 1.0 - LEVEL
    law = [float(s * np.sqrt(2.0 * gammaincinv(d / 2.0, q))) for q in (a / 2, 1 - a / 2)]
    return {"same_sample_vs_noise_free": float(np.linalg.norm(same - exact_fd)),
            "independent_vs_noise_free": float(np.linalg.norm(indep - exact_fd)),
            "independent_error_law": f"σ/(√2 δ)·χ_d = {s:.4g}·χ_{d}",
            "independent_error_interval_999": law,
            "probability_control_not_rejected": float(gammainc(d / 2.0,
                                                               (bound / s) ** 2 / 2.0)),
            "local_bound": float(bound)}


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    rng = named_stream(seed, "F1/points")
    dims = (1, 10, 1000)
    n = 40 if mode == "quick" else 400
    deltas_sharp = np.logspace(-4, 0, 9)
    bound_rows, sharp_rows, exact_rows, slope_rows, curves = [], [], [], [], {}
    for d in track(dims, "F1 dimensions", note=lambda d: f"d={d}"):
        cubic = SeparableUniformlyConvex(d=d, p=3.0)
        cross = CubicCross(d, L=L_CUBIC)
        for label, P, kind in (("HVP, (1/3)Σ|y|³", cubic, "hvp"),
                               ("JVP, CubicCross", cross, "jvp")):
            ratios = _bound_part(P, L_CUBIC, kind, backend, rng, n, d)
            bound_rows.append({"case": label, "d": d, "max_ratio": float(ratios.max()),
                               "violation_frequency": brief(binomial_ci(
                                   int(np.sum(ratios > 1 + RATIO_ROUNDING)), n, LEVEL))})
            r = _sharp_part(P, L_CUBIC, kind, backend, d, deltas_sharp)
            sharp_rows.append({"case": label, "d": d, "min_ratio": float(r.min()),
                               "max_ratio": float(r.max())})
            if d == 10:
                curves[label] = (deltas_sharp, r * 0.5 * L_CUBIC * deltas_sharp * 4.0)
        quad = StronglyConvexQuadratic(d_x=d, d_y=d, seed=2, structured=d >= 1000)
        exact_cases = [("HVP, quadratic g", quad, "hvp"), ("JVP, quadratic g", quad, "jvp")]
        if d == 10:
            exact_cases += [("JVP, separable p=4", SeparableUniformlyConvex(d, 4.0),
                             "jvp"),
                            ("JVP, non-separable p=4", NonSeparableUniformlyConvex(d, p=4.0),
                             "jvp")]
        if d == 1:
            exact_cases.append(("JVP, Example 3 p=4", UniBiOExample3(4), "jvp"))
        for label, P, kind in exact_cases:
            worst = 0.0
            for delta in (1e-4, 1e-2, 1.0):
                x = rng.uniform(-1, 1, (8, P.d_x))
                y, v = rng.uniform(-1, 1, (8, P.d_y)), rng.standard_normal((8, P.d_y))
                err, allow = fd_error(P, backend, kind, x, y, v, delta)
                worst = max(worst, float((err / allow).max()))
            exact_rows.append({"case": label, "d": d, "max_error_over_rounding": worst})
        for p in (4.0, 5.5):
            s, dl, errs = _slope(SeparableUniformlyConvex(d=d, p=p), backend, d, rng)
            slope_rows.append({"p": p, "d": d, "slope": s})
            if d == 10:
                curves[f"HVP, (1/p)Σ|y|^p, p={p:g}"] = (dl, errs)
    same = _same_sample(backend, 10, rng, seed)
    bound_ok = all(r["max_ratio"] <= 1 + RATIO_ROUNDING for r in bound_rows)
    sharp_ok = all(abs(r["min_ratio"] - 1) <= 1e-6 and abs(r["max_ratio"] - 1) <= 1e-6
                   for r in sharp_rows)
    exact_ok = all(r["max_error_over_rounding"] <= 1.0 for r in exact_rows)
    slope_ok = all(abs(r["slope"] - 2.0) <= SLOPE_TOL for r in slope_rows)
    same_ok = same["same_sample_vs_noise_free"] <= 1e-8
    ctrl_const = all(r["max_ratio"] > 1.0 for r in sharp_rows)  # ratio 1 vs L/2 means 2 vs L/4
    ctrl_indep = same["independent_vs_noise_free"] > same["local_bound"]
    return Measurement(
        passed=bound_ok and sharp_ok and exact_ok and slope_ok and same_ok,
        control_rejected=ctrl_const and ctrl_indep,
        measured={"bound": bound_rows, "sharpness": sharp_rows, "exactness": exact_rows,
                  "slopes": slope_rows, "same_sample": same,
                  "checks": {"bound": bound_ok, "sharp": sharp_ok, "exact": exact_ok,
                             "slope": slope_ok, "same_sample": same_ok},
                  "uncertainty": {
                      "bound max_ratio": EXACT_AT_PROBES,
                      "bound violation_frequency": f"{LEVEL:.1%} Clopper-Pearson exact "
                                                   "binomial interval of the probability "
                                                   "that a random point violates the bound",
                      "sharpness, exactness, slopes": EXACT + " (exact oracles at fixed or "
                                                              "seeded points)",
                      "same_sample_vs_noise_free": EXACT + " (the shared sample cancels; "
                                                           "rounding only)",
                      "independent_vs_noise_free": "one random draw; its exact law is "
                                                   "independent_error_law (additive Gaussian "
                                                   "noise), with the central "
                                                   f"{LEVEL:.1%} interval "
                                                   "independent_error_interval_999"}},
        bound={"formula": "(L/2) δ ||v||², L = 2", "ratio_max": 1.0,
               "ratio_rounding": RATIO_ROUNDING, "slope": f"2 ± {SLOPE_TOL}",
               "exactness": "error <= 64 eps (||∇g(y+δv)|| + ||∇g(y-δv)||)/(2δ) "
                            "+ 64 eps ||exact||", "dimensions": list(dims)},
        control={"description": "constant L/4 at the sharp points y = 0, v ∥ e_1 (HVP and "
                                "JVP, every d) must be violated; the two-independent-samples "
                                "variant must exceed the bound",
                 "ratio_to_L_over_4_bound": [2 * r["min_ratio"] for r in sharp_rows],
                 "constant_L/4_violated": ctrl_const,
                 "independent_samples_violate_bound": ctrl_indep},
        notes=[f"backend {backend!r}; CubicCross (JVP bound) runs on numpy (test-only class)",
               "every library problem has ∇_x g linear in y, so its JVP is exact"],
        figure_data={"curves": curves, "bound_rows": bound_rows, "sharp_rows": sharp_rows},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    dl = np.logspace(-4, 0, 50)
    ax1.loglog(dl, 0.5 * L_CUBIC * dl * 4.0, "k-", lw=1, label="bound (L/2)δ||v||², ||v||=2")
    ax1.loglog(dl, 0.25 * L_CUBIC * dl * 4.0, "r:", lw=1, label="control (L/4)δ||v||²")
    for label, (deltas, errs) in m.figure_data["curves"].items():
        ax1.loglog(deltas, np.maximum(errs, 1e-300), "o-", ms=3, lw=0.8, label=label)
    ax1.set_xlabel("δ")
    ax1.set_ylabel("finite-difference error (d = 10)")
    ax1.legend(fontsize=6)
    rows = m.figure_data["bound_rows"]
    labels = [f"{r['case']}, d={r['d']}" for r in rows]
    ax2.barh(labels, [r["max_ratio"] for r in rows], label="random points")
    ax2.barh(labels, [s["max_ratio"] for s in m.figure_data["sharp_rows"]], height=0.3,
             color="tab:orange", label="sharp point y = 0")
    ax2.axvline(1.0, color="k", ls="--", label="bound")
    ax2.axvline(0.5, color="r", ls=":", label="L/4 control (ratio > 0.5 violates it)")
    ax2.set_xlabel("max error / ((L/2)δ||v||²)")
    ax2.tick_params(axis="y", labelsize=6)
    ax2.legend(fontsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.f1_finite_difference"))
