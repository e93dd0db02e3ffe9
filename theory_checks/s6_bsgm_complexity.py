"""S6: BSGM's near-optimal complexities, Theorem 17 (deterministic, log schedule, Õ(ε^{-1}))
and Theorem 16(i) (stochastic, increasing schedule, Õ(ε^{-2})), with the smoothness lemmas
they rest on (Grazzi, Pontil, Salzo, JMLR 2023, Theorems 16, 17, Lemma 3, Lemmas 20, 21;
docs/sid_bsgm.rst §5, §7, §11, docs/checks.rst S6).

(a) Theorem 17' (docs/sid_bsgm.rst §11, DERIVED constants). The §14.1 golden instance
*without noise*, Λ = [−1, 1]² (constraint inactive at the optimum) and Λ = [0, 1]² (active),
λ_0 = (0.9, 0.9), α = 1/L_f, η ≡ 1, J_s = 1, t_s = k_s = ⌈log(s+1)/log(1/q)⌉ (the §5 table's
reading), T_max = 3·10⁴ (quick) or 3·10⁵ (full), on SID's Numba kernel. Three exact tests
(deterministic: no sampling; the rounding allowance is 1e-9 relative):
  - per step, ||Δ_s|| = ||ĝ_s − ∇f(λ_s)|| ≤ C_det(λ_s) q^{t_s} ≤ C_det(λ_s)/(s+1), with
    C_det(λ) = c_w D_w(λ) + L_Φ L_E(λ)/(1 − q) (S3's constant at λ_s);
  - the average (1/T)Σ_{s<T}||G_α(λ_s)||² ≤ (8L_fΔ_f + 10 C_det²π²/6)/T at every T ≤ T_max,
    C_det the largest C_det(λ_s) on the path, Δ_f = f(λ_0) − min_Λ f;
  - the samples N(ε) = Σ_{s<T_ε}(t_s + k_s + 2) at the first T_ε with average ≤ ε, over the
    ladder ε ∈ {0.3, 0.1, 0.03, 0.01} (full: down to 1e-3), have a fitted log-log exponent
    against 1/ε of at most 1.3 (Õ(ε^{-1}): the exponent 1 plus the schedule's log factor;
    the ledger's probe measured 1.20). This is the budget at which ε is first reached, not
    the schedule's own cost, so it is not circular.
Control (certain to fail): t_s = k_s = 1 (J_s = 1) leaves a bias. ĝ is then an affine map of
λ, so BSGM converges to the fixed point λ̃ of λ ↦ P_Λ(λ − αĝ(λ)), computed exactly, where
||G_α(λ̃)||² > 0 is a floor. The control is rejected when that floor exceeds the smallest ε of
the ladder (so the average can never reach it) and the run indeed does not reach it.

(b) Theorem 16'(i). The noisy golden instance on Λ = [−1, 1]², t_s = k_s = J_s = s + 1,
η_i = 3/(3+i) (Theorem S steps, restarted per call), R paths. The schedule does not depend on
T, so one run to T_max gives the average at every T; N(T) = 2T(T+1) (Definition 15). Fitted
exponent of N against 1/ε(T), ε(T) = mean over paths of (1/T)Σ||G||², over 5 log-spaced T in
[T_max/16, T_max]: the upper end of its 99.9% percentile-bootstrap interval (over paths) must
be ≤ 2.6 (Õ(ε^{-2}); the DERIVED count is ε^{-2}log²). Statistical, false-positive rate ≤ 1e-3
per the bootstrap's level. Control: the constant schedule t = k = J = 1 has a variance and
bias floor: the lower end of its 99.9% Student-t interval of the average at T_max must exceed
the upper end of the increasing schedule's (the increasing schedule gets below a level the
constant one cannot).

(c) The lemmas (exact at seeded probes; golden instance and 3 random linear contractions
with q ∈ {0.5, 0.8, 0.95}, plus the worst-case direction of each bound):
  - Lemma 3(i)-(ii): ||w'(λ)|| = ||(I−A)^{-1}B|| ≤ L_Φ/(1 − q), hence w(·) is
    L_Φ/(1−q)-Lipschitz (random pairs);
  - Lemma 3(iii): ||∇f(λ) − ∇f(λ')|| ≤ L_f^{Lemma 3}||λ − λ'|| (the DERIVED constant);
  - Lemma 20: ||v(w, λ) − v(w(λ), λ)|| ≤ L_v||w − w(λ)||, L_v = μ₁/(1−q) (ν₁ = 0 here);
  - Lemma 21 in its local form ||v(w, λ)|| ≤ ||∇₁E(w, λ)||/(1 − q) (the global L_E of A(iv)
    does not exist for an affine ∇₁E, so the lemma's sup form is vacuous here: partial).
Control: each bound with its 1/(1 − q) factor removed (the "no contraction amplification"
variant) must be violated at some probe.

(d) Theorem 6' (Variance II; docs/sid_bsgm.rst §9, DERIVED through Theorem 4'(i)), exact:
    Var(E[ĝ|w_t]) ≤ E||E[ĝ|w_t] − ∇f||² ≤ 2c_w²ρ_t + 2L_Φ² E||v̄_k − v(w_t, λ)||²,
c_w = μ₂ + L_Φ L_v (ν₂ = 0), ρ_t = E||w_t − w(λ)||², v̄_k = E[v_k|w_t]. For a linear
contraction E[ĝ|w_t] = ∇₂E(w_t) + Bᵀ S_k ∇₁E(w_t) is affine in w_t (S_k from the LS mean
recursion), so every term is a closed form of the LL error's exact mean and second moment
(:func:`refbilevel.sid_moments.ll_error_moments`); E[ĝ] − ∇f computed this way must equal
:func:`refbilevel.sid_moments.sid_moments`' exact bias (cross-check, 1e-9 relative). Grid
t, k ∈ {0, 1, 2, 5, 10, 30, 100}, steps 3/(3+i) and η ≡ 1, the golden instance and the three
random instances of (c). Control: the bound without its LL term (2L_Φ²E||v̄_k − v(w_t)||²
alone) must be violated somewhere (at k large, where v̄_k ≈ v(w_t), the LL error remains).

Figure: left, the deterministic averages against T for both Λ with the Theorem 17' bound and
the control's average and floor; middle, N(ε) against 1/ε (log schedule) with its fitted
exponent; right, the stochastic increasing-schedule average with its 99.9% band and the
constant-schedule control.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms.bsgm import Box, constrained_minimum
from refbilevel.backends.registry import implementation
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, LEVEL, brief, mean_ci, pointwise_mean_band
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import LinearContraction, golden_instance
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.sid_moments import (
    StepSchedule,
    ll_error_moments,
    random_linear_contraction,
    sid_moments,
    step_sequence,
)
from refbilevel.solver import solve

CLAIM = ClaimInfo(
    id="S6",
    claim="BSGM: deterministic log schedule needs O~(eps^-1) samples (Thm 17); increasing "
          "schedule O~(eps^-2) (Thm 16(i)); Lemmas 3, 20, 21; Theorem 6",
    source="Grazzi, Pontil, Salzo (JMLR 2023) Thms 6, 16(i), 17, Lemmas 3, 20, 21; "
           "docs/sid_bsgm.rst §5, §7, §9, §11",
    evidence=(Evidence("exact", "(a) deterministic log schedule, (c) lemmas at probes, "
                                "(d) Theorem 6 from exact moments"),
              Evidence("statistical", "(b) 99.9% bootstrap exponent interval", fpr=1e-3)),
)

LAM0 = (0.9, 0.9)
CONSTRAINTS = {"[-1,1]^2": Box(-1.0, 1.0), "[0,1]^2": Box(0.0, 1.0)}
ROUNDING = 1e-9  # deterministic runs: float64 rounding of O(t_s) operations per step
EXP_MAX_DET = 1.3  # Õ(ε^{-1}): exponent 1 plus the log factor over the ladder
EXP_MAX_STOCH = 2.6  # Õ(ε^{-2}): exponent 2 plus the log² factor over [T_max/16, T_max]
L_E_STEPS = 200  # LL path length over which L_E(λ) is taken (≥ every t_s used)


def noiseless(problem: LinearContraction) -> LinearContraction:
    """The same linear contraction without oracle noise (Theorem 17's deterministic case)."""
    return LinearContraction(problem.A, problem.B, problem.c, problem.P, problem.Q,
                             problem.S, problem.p, problem.s)


def det_constant(problem: LinearContraction, lams: np.ndarray, w0=None) -> np.ndarray:
    """C_det(λ) = c_w D_w(λ) + L_Φ L_E(λ)/(1−q) for each row of ``lams`` (S3's constant,
    docs/sid_bsgm.rst §8-§9, §11), L_E(λ) the largest ||∇₁E(w_i, λ)|| over the first
    L_E_STEPS deterministic LL iterates from w_0 (vectorized
    :func:`refbilevel.sid_moments.deterministic_constant`)."""
    ex = problem.constants.extra
    q, L_Phi = ex["q"], ex["L_Phi"]
    c_w = ex["mu_2"] + L_Phi * ex["mu_1"] / (1.0 - q)
    w = np.zeros((lams.shape[0], problem.d)) if w0 is None else np.tile(w0, (lams.shape[0], 1))
    D_w = np.linalg.norm(problem.w_star(lams) - w, axis=-1)
    b = lams @ problem.B.T + problem.c
    L_E = np.zeros(lams.shape[0])
    for _ in range(L_E_STEPS + 1):
        L_E = np.maximum(L_E, np.linalg.norm(w @ problem.P + lams @ problem.Q.T + problem.p,
                                             axis=-1))
        w = w @ problem.A.T + b
    return c_w * D_w + L_Phi * L_E / (1.0 - q)


def run_bsgm(oracle: ContractionOracle, T: int, *, R: int, **options):
    """BSGM from λ_0 = LAM0 on the Numba backend (the SID kernel) with α = 1/L_f (the "paper"
    mode's, Corollary 13'); its Trace records every outer step (λ as x, and in ``extra``
    ||G_α(λ_s)||², ||Δ_s||², f(λ_s) and the schedule's (t_s, k_s, J_s))."""
    return solve(oracle.problem, "bsgm", backend="numba", mode="paper", oracle=oracle,
                 x0=np.array(LAM0), replicas=R, T=T, **options)


def box_minimum(problem: LinearContraction, box: Box) -> float:
    """min_Λ f exactly (f is a convex quadratic here; projected GD to 1e-13)."""
    return constrained_minimum(problem, box, LAM0)[1]


def control_floor(problem: LinearContraction, box: Box, alpha: float) -> dict:
    """The exact limit of BSGM with t = k = J = 1, η = 1: ĝ(λ) = Mλ + m is affine (computed
    from SID at n + 1 points), and λ̃ = P_Λ(λ̃ − α(Mλ̃ + m)) is found by iterating the exact
    map to a fixed point; returns λ̃ and the floor ||G_α(λ̃)||²."""
    # the SID estimator itself, not BSGM (so not through solve): the control's affine map
    # ĝ(λ) is one SID call at t = k = J = 1 evaluated at n + 1 points
    sid = implementation("estimator", "sid", "numpy")
    o = ContractionOracle(problem, named_stream(0, "S6/control-map"))  # noiseless: no draws
    n = problem.n
    pts = np.vstack([np.zeros(n), np.eye(n)])
    vals = sid(o, pts, 1, 1, 1, steps=1.0, replicas=n + 1).value
    m = vals[0]
    M = (vals[1:] - m).T  # column j: ĝ(e_j) − ĝ(0)
    lam = box.project(np.asarray(LAM0, dtype=float))
    for _ in range(200000):
        new = box.project(lam - alpha * (M @ lam + m))
        if np.linalg.norm(new - lam) <= 1e-15:
            lam = new
            break
        lam = new
    G = (lam - box.project(lam - alpha * problem.grad_f(lam))) / alpha
    return {"lam_tilde": lam.tolist(), "floor": float(G @ G),
            "fixed_point_residual": float(np.linalg.norm(
                box.project(lam - alpha * (M @ lam + m)) - lam))}


def deterministic_part(label: str, box: Box, T_max: int, ladder: list[float]) -> dict:
    P = noiseless(golden_instance().problem)
    ex = P.constants.extra
    L, q = ex["L_f"], ex["q"]
    tr = run_bsgm(ContractionOracle(P, named_stream(0, "S6/det")), T_max, R=1,
                  schedule="deterministic", constraint=box, steps=1.0)
    lams = tr.x[:-1, 0]
    tks = np.array([t for t, _, _ in tr.extra["schedule_tkJ"]])
    s = np.arange(T_max)
    C_s = det_constant(P, lams)
    delta = np.sqrt(tr.extra["delta_sq"][:, 0])
    step_ok = bool(np.all(delta <= C_s * q**tks * (1 + ROUNDING) + 1e-300))
    log_ok = bool(np.all(q**tks <= 1.0 / (s + 1) * (1 + ROUNDING)))
    avg = np.cumsum(tr.extra["grad_map_sq"][:-1, 0]) / (s + 1)
    f_star = box_minimum(P, box)
    C = float(C_s.max())
    bound = (8 * L * (tr.extra["f"][0, 0] - f_star) + 10 * C**2 * math.pi**2 / 6) / (s + 1)
    avg_ok = bool(np.all(avg <= bound * (1 + ROUNDING)))
    samples = tr.counts["samples"]  # cumulative, samples[T] after T outer iterations
    reach = []
    for eps in ladder:
        hit = np.nonzero(avg <= eps)[0]
        T_eps = int(hit[0]) + 1 if hit.size else None
        reach.append({"eps": eps, "T": T_eps,
                      "samples": int(samples[T_eps]) if T_eps is not None else None})
    reached = [r for r in reach if r["T"] is not None]
    expo = (float(np.polyfit(np.log([1 / r["eps"] for r in reached]),
                             np.log([r["samples"] for r in reached]), 1)[0])
            if len(reached) >= 3 else float("nan"))
    ctrl_run = run_bsgm(ContractionOracle(P, named_stream(0, "S6/det-control")), T_max, R=1,
                        schedule=lambda _s: (1, 1, 1), constraint=box, steps=1.0)
    ctrl_avg = np.cumsum(ctrl_run.extra["grad_map_sq"][:-1, 0]) / (s + 1)
    floor = control_floor(P, box, float(tr.params["alpha"]))
    return {"constraint": label, "T_max": T_max, "q": q, "L_f": L, "f_star": f_star,
            "C_det_max_on_path": C, "max_delta_over_step_bound":
            float(np.max(delta / (C_s * q**tks))), "per_step_bound_holds": step_ok,
            "schedule_q_power_le_1_over_s1": log_ok,
            "max_avg_over_bound": float(np.max(avg / bound)), "average_bound_holds": avg_ok,
            "average_at_T_max": float(avg[-1]), "T_times_average_at_T_max":
            float(avg[-1] * T_max), "reach": reach, "all_reached": len(reached) == len(ladder),
            "exponent": expo, "samples_at_T_max": int(samples[-1]),
            "control": {"average_at_T_max": float(ctrl_avg[-1]), **floor,
                        "reached_smallest_eps": bool(np.any(ctrl_avg <= min(ladder)))},
            "_avg": avg, "_bound": bound, "_ctrl_avg": ctrl_avg}


def stochastic_part(T_max: int, R: int, seed: int) -> dict:
    P = golden_instance().problem
    box = CONSTRAINTS["[-1,1]^2"]
    out = {}
    for name, sched in (("increasing", "increasing"), ("constant", lambda _s: (1, 1, 1))):
        tr = run_bsgm(ContractionOracle(P, named_stream(seed, f"S6/stoch/{name}")), T_max,
                      R=R, schedule=sched, constraint=box)
        avg = (np.cumsum(tr.extra["grad_map_sq"][:-1], axis=0)
               / np.arange(1, T_max + 1)[:, None])
        out[name] = {"avg": avg, "samples": tr.counts["samples"]}
    Ts = np.unique(np.geomspace(T_max / 16, T_max, 5).astype(int))
    N = out["increasing"]["samples"][Ts].astype(float)
    per_T = out["increasing"]["avg"][Ts - 1]  # (5, R)

    def exponent(cols):
        return float(np.polyfit(np.log(1.0 / per_T[:, cols].mean(axis=1)), np.log(N), 1)[0])

    rng = named_stream(seed, "S6/bootstrap")
    boot = [exponent(rng.integers(0, R, R)) for _ in range(2000)]
    ci = [float(np.quantile(boot, (1 - LEVEL) / 2)), float(np.quantile(boot, (1 + LEVEL) / 2))]
    inc_end = mean_ci(out["increasing"]["avg"][-1], LEVEL, what="paths")
    con_end = mean_ci(out["constant"]["avg"][-1], LEVEL, what="paths")
    return {"T_max": T_max, "paths": R, "T": Ts.tolist(), "samples": N.astype(int).tolist(),
            "mean_avg": per_T.mean(axis=1).tolist(), "exponent": exponent(slice(None)),
            "exponent_ci999_bootstrap": ci,
            "increasing_avg_at_T_max": brief(inc_end), "constant_avg_at_T_max": brief(con_end),
            "control_floor_separated": bool(con_end["ci"][0] > inc_end["ci"][1]),
            "_inc": out["increasing"]["avg"], "_con": out["constant"]["avg"]}


def lemma_probes(seed: int, n_probe: int) -> list[dict]:
    rng = named_stream(seed, "S6/lemmas")
    instances = [("golden", golden_instance().problem)]
    for q in (0.5, 0.8, 0.95):
        instances.append((f"random q={q}", random_linear_contraction(
            4, 3, named_stream(seed, f"S6/instance/{q}"), q=q)))
    rows = []
    for name, P in instances:
        ex = P.constants.extra
        q, L_Phi, mu1 = ex["q"], ex["L_Phi"], ex["mu_1"]
        inv = np.linalg.inv(np.eye(P.d) - P.A)
        W = inv @ P.B
        lam1, lam2 = rng.standard_normal((2, n_probe, P.n))
        dl = np.linalg.norm(lam1 - lam2, axis=-1)
        lip_w = np.linalg.norm(P.w_star(lam1) - P.w_star(lam2), axis=-1) / dl
        lip_f = np.linalg.norm(P.grad_f(lam1) - P.grad_f(lam2), axis=-1) / dl
        # Lemma 20: random w plus the worst direction of (I − Aᵀ)^{-1}P
        lam = rng.standard_normal((n_probe, P.n))
        dw = rng.standard_normal((n_probe, P.d))
        M20 = np.linalg.inv(np.eye(P.d) - P.A.T) @ P.P
        top = np.linalg.svd(M20)[2][0]
        dw = np.vstack([dw, top[None, :]])
        lam = np.vstack([lam, lam[:1]])
        w = P.w_star(lam) + dw
        r20 = (np.linalg.norm(P.solve_ls(w, lam) - P.v_star(lam), axis=-1)
               / np.linalg.norm(dw, axis=-1))
        # Lemma 21 (local): ||v(w, λ)|| / ||∇₁E(w, λ)||, random w plus the worst direction
        # of (I − Aᵀ)^{-1} (a w whose ∇₁E points along its top right singular vector)
        g1 = P.grad_E(w, lam)[0]
        r21 = np.linalg.norm(P.solve_ls(w, lam), axis=-1) / np.linalg.norm(g1, axis=-1)
        inv_T = np.linalg.inv(np.eye(P.d) - P.A.T)
        top21 = np.linalg.svd(inv_T)[2][0]
        w21 = np.linalg.solve(P.P, top21 - lam[0] @ P.Q.T - P.p)  # ∇₁E(w21, λ_0) = top21
        r21_worst = float(np.linalg.norm(P.solve_ls(w21, lam[0])))
        r21 = np.append(r21, r21_worst)
        bounds = {"lemma3_i": (float(np.linalg.norm(W, 2)), L_Phi / (1 - q), L_Phi),
                  "lemma3_ii": (float(max(lip_w.max(), np.linalg.norm(W, 2))),
                                L_Phi / (1 - q), L_Phi),
                  "lemma3_iii": (float(lip_f.max()), ex["L_f_lemma3"],
                                 ex["L_f_lemma3"] * (1 - q) ** 2),
                  "lemma20": (float(r20.max()), ex["L_v"], mu1),
                  "lemma21_local": (float(r21.max()), 1.0 / (1 - q), 1.0)}
        for lemma, (worst, bnd, ctrl) in bounds.items():
            rows.append({"instance": name, "q": q, "lemma": lemma, "worst_ratio": worst,
                         "bound": bnd, "holds": bool(worst <= bnd * (1 + ROUNDING)),
                         "control_bound": ctrl, "control_violated": bool(worst > ctrl)})
    return rows


def theorem6(problem: LinearContraction, lam: np.ndarray, t: int, k: int, steps) -> dict:
    """The terms of Theorem 6' at (t, k) (module docstring (d)), exact."""
    A, B, P, Q = problem.A, problem.B, problem.P, problem.Q
    d = problem.d
    ex = problem.constants.extra
    m, C = ll_error_moments(problem, lam, t, steps=steps)
    S = np.zeros((d, d))
    for h in step_sequence(steps, k):  # LS mean recursion from v_0 = 0: v̄_k = S_k ∇₁E(w_t)
        S = ((1.0 - h) * np.eye(d) + h * A.T) @ S + h * np.eye(d)
    w_star = problem.w_star(lam)
    g1_star = problem.grad_E(w_star, lam)[0]
    Dk = S - np.linalg.inv(np.eye(d) - A.T)  # v̄_k − v(w_t) = Dk ∇₁E(w_t)
    G = Q.T + B.T @ S @ P  # E[ĝ|w_t] − ∇f = G e_t + r
    r = B.T @ Dk @ g1_star
    cov = C - np.outer(m, m)
    var = float(np.trace(G @ cov @ G.T))
    second = float(np.trace(G @ C @ G.T) + 2.0 * r @ G @ m + r @ r)
    a, M = Dk @ g1_star, Dk @ P
    ev = float(np.trace(M @ C @ M.T) + 2.0 * a @ M @ m + a @ a)
    c_w = ex["mu_2"] + ex["L_Phi"] * ex["L_v"]
    rho = float(np.trace(C))
    rhs = 2.0 * c_w**2 * rho + 2.0 * ex["L_Phi"] ** 2 * ev
    bias = G @ m + r
    ref = sid_moments(problem, lam, t, k, 1, steps=steps).mean_error
    return {"var": var, "second": second, "rhs": rhs,
            "rhs_without_ll_term": 2.0 * ex["L_Phi"] ** 2 * ev,
            "bias_mismatch": float(np.linalg.norm(bias - ref)
                                   / max(1.0, float(np.linalg.norm(ref))))}


def theorem6_grid(seed: int) -> list[dict]:
    rows = []
    grid = (0, 1, 2, 5, 10, 30, 100)
    g = golden_instance()
    instances = [("golden", g.problem, g.lam)]
    for q in (0.5, 0.8, 0.95):
        P = random_linear_contraction(4, 3, named_stream(seed, f"S6/instance/{q}"), q=q)
        instances.append((f"random q={q}", P, np.full(P.n, 0.3)))
    for name, P, lam in instances:
        for label, steps in (("3/(3+i)", StepSchedule.decreasing(3.0, 3.0)), ("1", 1.0)):
            res = [theorem6(P, lam, t, k, steps) for t in grid for k in grid]
            rows.append({
                "instance": name, "steps": label, "cases": len(res),
                "var_le_second": all(x["var"] <= x["second"] * (1 + ROUNDING) + 1e-300
                                     for x in res),
                "second_le_rhs": all(x["second"] <= x["rhs"] * (1 + ROUNDING) for x in res),
                "max_second_over_rhs": max(x["second"] / x["rhs"] for x in res),
                "max_bias_mismatch": max(x["bias_mismatch"] for x in res),
                "control_violated": any(x["second"] > x["rhs_without_ll_term"] for x in res)})
    return rows


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    quick = mode == "quick"
    T_det = 30000 if quick else 300000
    ladder = [0.3, 0.1, 0.03, 0.01] if quick else [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]
    det = [deterministic_part(label, box, T_det, ladder)
           for label, box in track(list(CONSTRAINTS.items()), "S6 deterministic (Thm 17)",
                                   note=lambda c: c[0])]
    stoch = stochastic_part(400 if quick else 1600, 16 if quick else 64, seed)
    lemmas = lemma_probes(seed, 200 if quick else 5000)
    det_ok = all(d["per_step_bound_holds"] and d["schedule_q_power_le_1_over_s1"]
                 and d["average_bound_holds"] and d["all_reached"]
                 and d["exponent"] <= EXP_MAX_DET for d in det)
    stoch_ok = stoch["exponent_ci999_bootstrap"][1] <= EXP_MAX_STOCH
    lemmas_ok = all(r["holds"] for r in lemmas)
    thm6 = theorem6_grid(seed)
    thm6_ok = all(r["var_le_second"] and r["second_le_rhs"] and r["max_bias_mismatch"] < 1e-9
                  for r in thm6)
    # the control discriminates where the constraint is inactive; on [0,1]^2 its biased
    # fixed point is the corner λ̃ = 0, whose floor is below the ladder (reported only)
    det_ctrl = all(d["control"]["floor"] > min(ladder)
                   and not d["control"]["reached_smallest_eps"]
                   for d in det if d["constraint"] == "[-1,1]^2")
    lemma_ctrl = {lem: any(r["control_violated"] for r in lemmas if r["lemma"] == lem)
                  for lem in sorted({r["lemma"] for r in lemmas})}
    thm6_ctrl = any(r["control_violated"] for r in thm6)
    rejected = (det_ctrl and stoch["control_floor_separated"] and all(lemma_ctrl.values())
                and thm6_ctrl)

    def public(d):
        return {k: v for k, v in d.items() if not k.startswith("_")}

    return Measurement(
        passed=det_ok and stoch_ok and lemmas_ok and thm6_ok,
        control_rejected=rejected,
        measured={
            "evidence": "exact (parts a and c); statistical (part b: 99.9% bootstrap, "
                        "false-positive rate <= 1e-3)",
            "theorem17_deterministic": [public(d) for d in det],
            "theorem16i_increasing": public(stoch),
            "lemmas": lemmas,
            "theorem6_variance_II": thm6,
            "uncertainty": {
                "theorem17_deterministic": EXACT + "; rounding allowance 1e-9 relative",
                "theorem16i exponent_ci999_bootstrap": f"{LEVEL:.1%} percentile bootstrap "
                    "over paths (2000 resamples, Generator named_stream(seed, "
                    "'S6/bootstrap'))",
                "increasing/constant_avg_at_T_max": f"{LEVEL:.1%} Student-t interval over the "
                                                    "independent paths",
                "theorem6_variance_II": EXACT + " (moment recursions; rounding allowance 1e-9)",
                "lemmas": "exact at each probe (closed forms); the worst-case directions are "
                          "included, so the worst ratios are attained values"}},
        bound={"theorem17": "||Δ_s|| <= C_det q^{t_s} <= C_det/(s+1); (1/T)Σ||G||² <= "
                            "(8L_fΔ_f + 10C_det²π²/6)/T; exponent of N(ε) <= "
                            f"{EXP_MAX_DET}",
               "theorem16i": f"upper end of the exponent's 99.9% interval <= {EXP_MAX_STOCH}",
               "lemmas": "lemma 3(i)-(ii) L_Φ/(1-q); 3(iii) L_f (Lemma 3 DERIVED); "
                         "20 μ₁/(1-q); 21 (local) 1/(1-q)"},
        control={"description": "(a) t = k = 1: the exact floor ||G(λ̃)||² must exceed the "
                                "smallest ε and the run must not reach it (on [-1,1]^2); "
                                "(b) constant t = k = J = 1 must stay above the increasing "
                                "schedule at T_max (separated 99.9% intervals); (c) every "
                                "lemma's bound without its 1/(1-q) factor must be violated "
                                "at some probe; (d) Theorem 6's bound without its LL term must "
                                "be violated somewhere",
                 "deterministic": [{"constraint": d["constraint"], **d["control"]}
                                   for d in det],
                 "stochastic_separated": stoch["control_floor_separated"],
                 "lemma_controls_violated": lemma_ctrl,
                 "theorem6_without_ll_term_violated": thm6_ctrl},
        notes=["f is convex on the golden instance, so any convergent method has an O(1/T) "
               "average; the control's floor, not the slope, is what discriminates (ledger "
               "ranked item 8 caveat)",
               "Lemma 21 is checked in its local form: A(iv)'s global L_E does not exist for "
               "an affine ∇₁E"],
        figure_data={"det": det, "stoch": stoch, "ladder": ladder},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2, ax3 = fig.subplots(1, 3)
    fd = m.figure_data
    for d in fd["det"]:
        t = np.arange(1, d["T_max"] + 1)
        (ln,) = ax1.loglog(t, d["_avg"], label=f"log schedule {d['constraint']}")
        ax1.loglog(t, d["_bound"], "--", color=ln.get_color(), lw=0.8,
                   label="Thm 17' bound" if d is fd["det"][0] else None)
        ax1.loglog(t, d["_ctrl_avg"], ":", color=ln.get_color(),
                   label="control t = k = 1" if d is fd["det"][0] else None)
        ax1.axhline(d["control"]["floor"], color=ln.get_color(), lw=0.5)
    for eps in fd["ladder"]:
        ax1.axhline(eps, color="gray", lw=0.3)
    ax1.set_xlabel("T")
    ax1.set_ylabel("(1/T) Σ ||G_α(λ_s)||² (deterministic)")
    ax1.legend(fontsize=6)
    for d in fd["det"]:
        r = [x for x in d["reach"] if x["T"] is not None]
        ax2.loglog([1 / x["eps"] for x in r], [x["samples"] for x in r], "o-",
                   label=f"{d['constraint']}: exponent {d['exponent']:.2f}")
    e = np.array(fd["ladder"])
    first = [x for x in fd["det"][0]["reach"] if x["T"] is not None][0]
    ax2.loglog(1 / e, first["samples"] * (first["eps"] / e), "k--", lw=0.8, label="ε^-1")
    ax2.set_xlabel("1/ε")
    ax2.set_ylabel("samples N(ε) to first reach ε")
    ax2.legend(fontsize=6)
    s = fd["stoch"]
    t = np.arange(1, s["T_max"] + 1)
    for key, lab in (("_inc", "increasing t = k = J = s+1"), ("_con", "constant 1 (control)")):
        mean, lo, hi = pointwise_mean_band(s[key], LEVEL, axis=1)
        (ln,) = ax3.loglog(t, mean, label=lab)
        ax3.fill_between(t, np.maximum(lo, 1e-3 * mean), hi, color=ln.get_color(), alpha=0.2)
    ax3.set_xlabel("T")
    ax3.set_ylabel("mean (1/T) Σ ||G||² (99.9% band)")
    ax3.set_title(f"Thm 16(i): exponent {s['exponent']:.2f} "
                  f"[{s['exponent_ci999_bootstrap'][0]:.2f}, "
                  f"{s['exponent_ci999_bootstrap'][1]:.2f}]", fontsize=8)
    ax3.legend(fontsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.s6_bsgm_complexity"))
