"""F4: FdeHBO Proposition 3, the one-step bound on the linear-system iterate, as printed
(Yang, Xiao, Ji, NeurIPS 2023, Proposition 3; docs/fdehbo.rst §6, docs/checks.rst F4).

The proposition (Assumptions 1-2, for all t and *some* γ'_t, δ'_t > 0):

    E||v_{t+1} − v*_{t+1}||² ≤ (1+γ')(1+δ') F_printed E||v_t − v*_t||²
                               + (1+γ')(1+1/δ') λ_t² E||e^R_t||²
                               + (1+1/γ') B [α_t² E||h^f_t||² + β_t²(2E||e^g_t||² + 2E||∇_y g||²)],
    F_printed = 1 − 2λ_t (L_g + L_g³) μ_g/(μ_g + L_g) + λ_t² L_g²,
    B = 2L_fy²/μ_g² + 2C_fy² L_gyy²/μ_g⁴.

The factor is printed so in the paper (docs/fdehbo.rst §6 notes it is not dimensionally
consistent); the textbook factor for a gradient step on the μ_g-strongly convex, L_g-smooth
quadratic R is F_textbook = 1 − 2λμ_g L_g/(μ_g + L_g) + λ²L_g² (co-coercivity; it bounds
||(I − λH)e||²/||e||² for every λ > 0 and every H with spectrum in [μ_g, L_g]).

**Pre-registered counterexample (issue 13 item 3).** F_printed < 0 for admissible steps:
at μ_g = L_g = 20 and λ = 3e-4 it is −1.406. That λ lies within any step cap of the form
c/L_g (c ≥ 0.006) or c/L_g² (c ≥ 0.12); Proposition 3 states no condition on λ_t, Theorem 1's
c_λ, w are NOT RECOVERED, and Proposition 2's 96 L_g⁴λ² term suggests a cap near
1/(√48 L_g²) = 3.6e-4 (the claims ledger's audit note). The witness makes every other term of
the right side exactly zero, so the right side is negative for *every* γ', δ' > 0 while the
left side is positive:

- d_x = 1, d_y = 2, g = ½ yᵀHy − yᵀKx with H = 20 I, K = (0, 1)ᵀ (so μ_g = L_g = 20,
  ∇²_yy g constant: L_gyy = 0);
- f = bᵀy + a x with b = (20, 20), a = −KᵀH^{-1}b = −1: ∇f is constant, hence bounded and
  Lipschitz as Assumption 1 requires, and ∇Φ ≡ 0 (Φ is constant);
- deterministic oracles, x_0 = 0, y_0 = y*(0) = 0, v_0 = v* + e_1 = (2, 1) with
  v* = H^{-1}b = (1, 1); r_v = 10 ≥ ||v*||;
- then ∇_y g(x_0, y_0) = 0 (y stays), h^f_0 = a + Kᵀv_0 = 0 (x stays, since Kᵀe_1 = 0),
  e^R_0 = 0 and e^g_0 = 0; all numbers are dyadic, so these zeros are exact in float64
  (the check asserts they are exactly 0.0, and a power-of-two finite-difference δ keeps
  FdeHBO's H̃ exact too).

One iteration of the project's FMBO and FdeHBO (``refbilevel.solve``, mode "paper" with the
schedule given; their common loop is :func:`refbilevel.algorithms.fdehbo.storm_bilevel`),
λ_0 = 3e-4, gives ||v_1 − v*||² = (1 − λμ_g)² = 0.98804 > 0 > sup_{γ',δ'>0} RHS =
F_printed·||v_0 − v*||² = −1.406: the printed statement is false at this instance, for step
caps of the form c/L_g or c/L_g². Evidence: **exact** (deterministic, no sampling; the
comparison has a margin of 2.4 against rounding of order 1e-16).

Positive control (must hold): the textbook factor. On a grid of quadratics
H = diag(μ, L) (μ ∈ {0.5, 1, 20}, L ∈ {1, 3, 20, 100}, μ ≤ L), steps λ ∈ (0, 2/L], error
directions e_1, e_2 and 4 seeded random ones, one FMBO step from v* + e must satisfy
||v_1 − v*||² ≤ F_textbook ||e||² (1 + 1e-12 rounding allowance). Negative control (must
fail): 0.99 (1 − λμ)², 1% below the true contraction along e_1, must be violated at the
witness, so the harness can detect a factor that is too small.

Informative (reported, not pass/fail): the ledger's second instance μ_g = 1, L_g = 3,
λ = 0.1 (F_printed = −0.41, but possibly outside a c/L_g² cap), and μ_g = 0.5, L_g = 1,
λ = 0.1, where F_printed = 0.877 > 0 is below the true contraction 0.9025 but, being
positive, is rescued by large γ', δ' (so no counterexample there).

Figure: left, the three factors against λ at μ_g = L_g = 20 (printed, textbook, and the
measured ||v_1 − v*||²/||v_0 − v*||²), the witness marked, the caps 1/L_g² and 1/(√48 L_g²)
as vertical lines; right, the measured one-step ratio against the textbook factor over the
positive-control grid (every point must lie on or below the diagonal).
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms.fdehbo import StormSchedule
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.problems.constants import Constants
from refbilevel.problems.custom import ClosedFormProblem
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.solver import solve
from refbilevel.solver_record import solver_record

CLAIM = ClaimInfo(
    id="F4",
    claim="FdeHBO Prop. 3, one-step bound on ||v_t - v*_t||^2: printed factor refuted "
          "(pre-registered counterexample); the textbook factor holds",
    source="Yang, Xiao, Ji (NeurIPS 2023) Proposition 3; docs/fdehbo.rst §6",
    evidence=(Evidence("exact", note="closed-form one-step errors; rounding allowance 1e-12"),),
    counterexample_to="FdeHBO Proposition 3 as printed (contraction factor 1 - 2λ(L_g+L_g^3)"
                      "μ_g/(μ_g+L_g) + λ^2 L_g^2), for step caps of the form c/L_g or c/L_g^2",
)

#: the witness of the claims ledger's audit note (ranked item 5)
WITNESS = {"mu_g": 20.0, "L_g": 20.0, "lam": 3e-4}
#: power of two: y ± δv stays dyadic, so FdeHBO's central difference is exact on the witness
FD_DELTA = 2.0 ** -10
#: the one-step error is ~10 float64 operations; 1e-12 is a generous rounding allowance
ROUNDING = 1e-12
CONTROL_SHRINK = 0.99
R_V = 10.0


def printed_factor(lam, mu, L):
    """The factor of Proposition 3 as printed."""
    return 1.0 - 2.0 * lam * (L + L**3) * mu / (mu + L) + lam**2 * L**2


def textbook_factor(lam, mu, L):
    """1 − 2λμL/(μ+L) + λ²L², the co-coercivity bound for a gradient step."""
    return 1.0 - 2.0 * lam * mu * L / (mu + L) + lam**2 * L**2


def quadratic_instance(mu: float, L: float) -> ClosedFormProblem:
    """g = ½yᵀ diag(mu, L) y − yᵀK x with K = (0, 1)ᵀ, f = bᵀy + a x with b = (mu, L) (so
    v* = H^{-1}b = (1, 1)) and a = −KᵀH^{-1}b = −1 (so ∇Φ ≡ 0, ∇f constant): the witness
    family of the module docstring."""
    h = np.array([mu, L])
    b = h.copy()
    k = np.array([0.0, 1.0])  # K as a vector (d_x = 1)
    a = -float(k @ (b / h))

    def lin_x(x, y):
        return a + 0.0 * x + 0.0 * y[..., :1]

    return ClosedFormProblem(
        d_x=1, d_y=2,
        f=lambda x, y: y @ b + a * x[..., 0],
        g=lambda x, y: 0.5 * np.sum(h * y * y, -1) - (y @ k) * x[..., 0],
        grad_x_f=lin_x,
        grad_y_f=lambda x, y: b + 0.0 * y + 0.0 * x[..., :1],
        grad_x_g=lambda x, y: -(y @ k)[..., None] + 0.0 * x,
        grad_y_g=lambda x, y: h * y - k * x,
        hvp_yy_g=lambda x, y, v: h * v + 0.0 * y,
        jvp_xy_g=lambda x, y, v: -(v @ k)[..., None] + 0.0 * x,
        jvp_yx_g=lambda x, y, w: -k * w + 0.0 * y,
        y_star=lambda x: (k / h) * x,
        grad_phi=lambda x: 0.0 * x,
        constants=Constants(mu=mu, p=2.0, L_y=L, l_g1=1.0, l_g2=0.0, L_H=0.0, l_f1=0.0,
                            l_f2=0.0, C_f=float(np.linalg.norm(b))),
    )


def one_step(mu: float, L: float, lam: float, errors: np.ndarray, variant: str) -> dict:
    """One iteration of FMBO/FdeHBO from x_0 = 0, y_0 = y*(0), v_0 = v* + e (rows of
    ``errors``), deterministic oracles; returns the quantities of Proposition 3 at t = 0."""
    P = quadratic_instance(mu, L)
    v_star = np.ones(2)
    v0 = v_star + errors
    R = errors.shape[0]
    sch = StormSchedule(w=1.0, c_beta=1.0 / L, c_lambda=lam, c_eta_f=1.0, c_eta_R=1.0,
                        c_eta_g=1.0)  # w = 1: λ_0 = c_λ, α_0 = 1, β_0 = 1/L
    oracle = GaussianOracle(P, 0.0, named_stream(0, "F4/exact"))  # std 0: draws nothing
    x0, y0 = np.zeros((R, 1)), np.zeros((R, 2))
    # δ to the method that takes a finite-difference step (FdeHBO; FMBO's products are
    # exact). "paper" with every schedule field given: the witness (∇φ ≡ 0) states no
    # Lipschitz constant of ∇φ, which only the computed modes need
    fd = {"delta": FD_DELTA} if "delta" in solver_record(variant).options else {}
    tr = solve(P, variant, mode="paper", oracle=oracle, x0=x0, y0=y0, T=1, r_v=R_V, v0=v0,
               diagnostics=True, **sch.as_dict(), **fd)
    x1, y1 = tr.x[-1], tr.extra["y_final"]
    v1 = tr.extra["v_final"]
    v_star1 = P.solve_hessian_yy(x1, y1, P.grad_y_f(x1, y1))
    return {"lhs": np.sum((v1 - v_star1) ** 2, -1), "e0_sq": np.sum(errors**2, -1),
            "err_R": tr.extra["err_R"][0], "err_g": tr.extra["err_g"][0],
            "x_moved": np.abs(x1 - x0).max(), "y_moved": np.abs(y1 - y0).max(),
            "grad_y_g0": np.abs(P.grad_y_g(x0, y0)).max(), "v_star_moved":
            np.abs(v_star1 - v_star).max()}


def witness(variant: str) -> dict:
    mu, L, lam = WITNESS["mu_g"], WITNESS["L_g"], WITNESS["lam"]
    r = one_step(mu, L, lam, np.array([[1.0, 0.0]]), variant)
    F = printed_factor(lam, mu, L)
    exact_zeros = {"e^R_0": float(r["err_R"][0]), "e^g_0": float(r["err_g"][0]),
                   "x_1 - x_0": float(r["x_moved"]), "y_1 - y_0": float(r["y_moved"]),
                   "grad_y g(x_0, y_0)": float(r["grad_y_g0"]),
                   "v*_1 - v*_0": float(r["v_star_moved"])}
    lhs, e0 = float(r["lhs"][0]), float(r["e0_sq"][0])
    # every term but the first is exactly 0 (asserted), so sup over γ', δ' > 0 of the right
    # side is its γ', δ' → 0 limit F·||e_0||² when F < 0 (and +∞ when F > 0)
    all_zero = all(v == 0.0 for v in exact_zeros.values())
    sup_rhs = F * e0 if F < 0 else math.inf
    return {"variant": variant, **WITNESS, "lam_times_L_g": lam * L,
            "lam_times_L_g_sq": lam * L * L, "cap_sqrt48": 1.0 / (math.sqrt(48) * L * L),
            "printed_factor": F, "textbook_factor": textbook_factor(lam, mu, L),
            "true_contraction": (1 - lam * mu) ** 2, "lhs": lhs, "e0_sq": e0,
            "sup_rhs_over_gamma_delta": sup_rhs, "other_terms_exactly_zero": all_zero,
            "exact_zeros": exact_zeros,
            "refuted": bool(all_zero and lhs > sup_rhs),
            "control_factor": CONTROL_SHRINK * (1 - lam * mu) ** 2,
            "control_violated": bool(lhs > CONTROL_SHRINK * (1 - lam * mu) ** 2 * e0
                                     * (1 + ROUNDING))}


def textbook_grid(seed: int, mode: str) -> list[dict]:
    """The positive control: one FMBO step against the textbook factor over (μ, L, λ, e)."""
    rng = named_stream(seed, "F4/directions")
    rand = rng.standard_normal((4 if mode == "quick" else 16, 2))
    dirs = np.vstack([np.eye(2), rand / np.linalg.norm(rand, axis=1, keepdims=True)])
    n_lam = 12 if mode == "quick" else 60
    rows = []
    for mu in (0.5, 1.0, 20.0):
        for L in (1.0, 3.0, 20.0, 100.0):
            if L < mu:
                continue
            for lam in np.linspace(2.0 / L / n_lam, 2.0 / L, n_lam):
                r = one_step(mu, L, float(lam), dirs, "fmbo")
                ratio = r["lhs"] / r["e0_sq"]
                tb = textbook_factor(lam, mu, L)
                rows.append({"mu": mu, "L": L, "lam": float(lam), "textbook": float(tb),
                             "printed": float(printed_factor(lam, mu, L)),
                             "max_ratio": float(ratio.max()),
                             "holds": bool(np.all(ratio <= tb * (1 + ROUNDING)))})
    return rows


def informative_cases() -> list[dict]:
    out = []
    for mu, L, lam in ((1.0, 3.0, 0.1), (0.5, 1.0, 0.1), (1.0, 1.0, 0.1)):
        r = one_step(mu, L, lam, np.array([[1.0, 0.0]]), "fmbo")
        F = printed_factor(lam, mu, L)
        out.append({"mu_g": mu, "L_g": L, "lam": lam, "printed_factor": F,
                    "textbook_factor": textbook_factor(lam, mu, L),
                    "measured_ratio": float(r["lhs"][0] / r["e0_sq"][0]),
                    "counterexample_for_every_gamma_delta": bool(F < 0)})
    return out


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    wit = [witness(v) for v in track(("fmbo", "fdehbo"), "F4 witness steps")]
    grid = textbook_grid(seed, mode)
    textbook_holds = all(r["holds"] for r in grid) and all(
        w["lhs"] <= w["textbook_factor"] * w["e0_sq"] * (1 + ROUNDING) for w in wit)
    refuted = all(w["refuted"] for w in wit)
    control_violated = all(w["control_violated"] for w in wit)
    # Pre-registered counterexample (issue 13 item 3; ClaimInfo.counterexample_to): "claim
    # held" = the textbook factor (positive control) holds; "control rejected" = the
    # 1%-too-small factor is violated; the refuted printed factor is the verdict's witness.
    outcome = "counterexample" if refuted and textbook_holds else ""
    w0 = wit[0]
    lam_curve = np.geomspace(1e-5, 2.0 / w0["L_g"], 80)
    return Measurement(
        passed=textbook_holds,
        control_rejected=control_violated,
        counterexample={"instance": WITNESS, "witness": wit} if refuted else None,
        measured={
            "outcome": outcome,
            "evidence": "exact",
            "witness": wit,
            "statement_refuted": "Proposition 3 as printed, for step caps of the form c/L_g "
                                 "(c >= 0.006) or c/L_g^2 (c >= 0.12)" if refuted else "",
            "textbook_grid_cases": len(grid),
            "textbook_grid_max_ratio_over_factor": max(r["max_ratio"] / r["textbook"]
                                                       for r in grid),
            "informative": informative_cases(),
            "uncertainty": {"all values": EXACT + "; the rounding allowance is 1e-12 relative"},
        },
        bound={"printed_factor": "1 - 2λ(L_g+L_g^3)μ_g/(μ_g+L_g) + λ^2 L_g^2",
               "textbook_factor": "1 - 2λμ_g L_g/(μ_g+L_g) + λ^2 L_g^2",
               "rounding_allowance": ROUNDING},
        control={"description": "pre-registered counterexample: the printed factor must be "
                                "refuted at the witness (μ_g = L_g = 20, λ = 3e-4); and the "
                                f"factor {CONTROL_SHRINK}(1-λμ)^2 (1% below the true "
                                "contraction) must be violated there",
                 "printed_refuted": refuted, "shrunk_factor_violated": control_violated},
        notes=["Proposition 3 holds 'for some γ', δ' > 0': a positive printed factor is always "
               "rescued by large γ', δ', so only a negative one (with every other term exactly "
               "zero) refutes the statement for every γ', δ'",
               "at μ_g = L_g = 1 (the F2 instance, H = I) the printed factor equals (1-λ)^2 "
               "exactly, so F2 could not reveal this"],
        figure_data={"grid": grid, "witness": w0, "lam_curve": lam_curve},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    fd = m.figure_data
    w = fd["witness"]
    lam = fd["lam_curve"]
    mu, L = w["mu_g"], w["L_g"]
    ax1.semilogx(lam, printed_factor(lam, mu, L), label="printed factor (Prop. 3)")
    ax1.semilogx(lam, textbook_factor(lam, mu, L), label="textbook factor")
    ax1.semilogx(lam, (1 - lam * mu) ** 2, "k:", label="true contraction (1-λμ)²")
    ax1.plot([w["lam"]], [w["lhs"] / w["e0_sq"]], "go", label="measured one FMBO step")
    ax1.plot([w["lam"]], [w["printed_factor"]], "rx", ms=9,
             label=f"witness: printed = {w['printed_factor']:.3f}")
    ax1.axvline(1 / L**2, color="gray", ls="--", lw=0.8, label="1/L_g²")
    ax1.axvline(w["cap_sqrt48"], color="gray", ls=":", lw=0.8, label="1/(√48 L_g²)")
    ax1.axhline(0, color="k", lw=0.5)
    ax1.set_ylim(-3, 1.2)
    ax1.set_xlabel("λ (μ_g = L_g = 20)")
    ax1.set_ylabel("one-step factor")
    ax1.legend(fontsize=6)
    g = fd["grid"]
    tb = np.array([r["textbook"] for r in g])
    mr = np.array([r["max_ratio"] for r in g])
    ax2.plot(tb, mr, ".", ms=4)
    lim = [0.0, float(max(tb.max(), mr.max()))]
    ax2.plot(lim, lim, "k--", lw=0.8, label="measured = textbook")
    ax2.set_xlabel("textbook factor")
    ax2.set_ylabel("max over directions of ||v_1-v*||²/||v_0-v*||²")
    ax2.set_title(f"positive control: {len(g)} (μ, L, λ) cases", fontsize=8)
    ax2.legend(fontsize=7)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.f4_fdehbo_ls_iterate"))
