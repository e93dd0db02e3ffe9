"""B2: BO-REP converges from a start where fixed-step bilevel methods overflow (Hao, Gong,
Liu, ICLR 2024, §1/§3 motivation; docs/borep.rst §8 "Algorithms on P1", docs/checks.rst B2).

Setting (docs/borep.rst §8): P1 (cosh + pseudo-Huber, reference instance), Gaussian oracle noise
σ = 0.1 on every oracle, x_0 = 9·1 (||∇Φ(x_0)|| = 9.1e3), y_0 = 0, 3000 outer iterations,
upper-level step 0.02 for everyone. BO-REP uses the §8 tuned parameters
(:func:`refbilevel.algorithms.borep.borep_params`).

Claim measured: BO-REP does not diverge and its average ||∇Φ(x_t)|| over the last third of
the run (t ∈ [2000, 3000)) is ≤ ε = 2 on every replica, while every fixed-step comparator
overflows (all replicas non-finite, recorded by the divergence record of the trace). The
full-run average (1/T)Σ_t||∇Φ(x_t)|| of Theorem 3.2 is reported too: it is dominated by
the ≈ 1100 iterations BO-REP needs to walk from x_0 to x* at speed η = 0.02 while
||∇Φ|| ~ 1e3-1e4, so it would fall below ε only after ~1e6/ε iterations; the tail average is
the reachable form of the claim. (§8 reports ||∇Φ|| ≈ 0.4 as "indicative"; our floor at
fixed η is ≈ 1, from the periodic lower level tracking a y*(x_t) that moves with the
η-sized oscillation of x_t.)

Comparators: the registered baselines SOBA, MA-SOBA, stocBiO and AmIGO
(:mod:`refbilevel.algorithms`) in their tuned modes with constant steps (UL step 0.02, LL
step 0.1), when available; always also :func:`fixed_step_sgd`, a plain SOBA-like
fixed-step stochastic hypergradient method written here (so the check does not depend on
the baselines' development state). A baseline that is not registered or raises is reported
as unavailable, with the reason.

Uncertainty (docs/checks.rst asks for intervals): every number here depends on the seed. The
verdict gives, per algorithm, the per-replica tail averages with a 99.9% Student-t interval
of their mean, 99.9% Student-t intervals of the final and full-run means, and 99.9%
Clopper-Pearson intervals for the probability that a replica diverges and (BO-REP) that its
tail average exceeds ε. With R = 4 (quick) these binomial intervals are wide (0 of 4:
[0, 0.85]; 4 of 4: [0.15, 1]): quick mode shows the effect, full mode (R = 32) narrows them.
The pass/fail rule is the one above (every replica), unchanged.

Negative control: BO-REP *without normalization* (line 6 replaced by x ← x − η m, i.e.
momentum SGD) must overflow from the same start: the normalization is what the claim rests
on.
"""

from __future__ import annotations

import warnings

import numpy as np

from refbilevel.algorithms.trace import Trace, TraceRecorder
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import LEVEL, binomial_ci, brief, mean_ci
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.solver import solve

CLAIM = ClaimInfo(
    id="B2",
    claim="BO-REP converges from x0 = 9*1 on P1 where fixed-step SOBA-type methods overflow",
    source="Hao, Gong, Liu (ICLR 2024) §3; docs/borep.rst §8 (checks), docs/checks.rst B2",
    evidence=(Evidence("statistical",
                       "BO-REP tail average <= eps and overflow of the comparators",
                       note="pass rule on every one of R replicas at the fixed seed; no "
                            "false-positive rate is derived"),),
)

EPS = 2.0
X0 = 9.0
SIGMA = 0.1
UL_STEP = 0.02
LL_STEP = 0.1
BASELINES = ("soba", "ma_soba", "stocbio", "amigo")
# constant-step tuned settings: UL step 0.02, LL (and z / Neumann) step 0.1
BASELINE_KW = {
    "soba": {"step_size": LL_STEP, "outer_ratio": LL_STEP / UL_STEP, "exponents": (0.0, 0.0)},
    "ma_soba": {"step_y": LL_STEP, "step_z": LL_STEP, "step_x": UL_STEP, "theta": 0.1},
    "stocbio": {"step_size": LL_STEP, "outer_ratio": LL_STEP / UL_STEP},
    "amigo": {"step_size": LL_STEP, "outer_ratio": LL_STEP / UL_STEP},
}


def fixed_step_sgd(oracle: GaussianOracle, x0, y0, *, T: int, step_x: float = UL_STEP,
                   step_y: float = LL_STEP, step_z: float = LL_STEP,
                   record_every: int = 1) -> Trace:
    """Plain fixed-step stochastic hypergradient method (SOBA-like, +z convention of
    docs/borep.rst §3): y ← y − s_y ∇_y G, z ← z − s_z(∇²_yy G z − ∇_y F),
    x ← x − s_x(∇_x F − ∇²_xy G z), all at the current point, constant steps."""
    P = oracle.problem
    x = np.array(np.atleast_2d(x0), dtype=float)
    R = x.shape[0]
    y = np.array(np.broadcast_to(np.atleast_2d(y0), (R, P.d_y)), dtype=float)
    z = np.zeros((R, P.d_y))
    rec = TraceRecorder(P, R, record_every)
    with np.errstate(over="ignore", invalid="ignore"):
        rec.record(0, x, y, oracle.counts, force=True)
        for t in range(T):
            gy = oracle.grad_y_g(x, y)
            hz = oracle.hvp_yy_g(x, y, z)
            jz = oracle.jvp_xy_g(x, y, z)
            fy = oracle.grad_y_f(x, y)
            fx = oracle.grad_x_f(x, y)
            xn, yn, zn = x - step_x * (fx - jz), y - step_y * gy, z - step_z * (hz - fy)
            act = rec.check_finite(t, xn, yn, zn)[:, None]
            x, y, z = np.where(act, xn, x), np.where(act, yn, y), np.where(act, zn, z)
            rec.record(t + 1, x, y, oracle.counts, force=(t + 1 == T))
    return rec.finish("fixed_step_sgd", "numpy", {"step_x": step_x, "step_y": step_y,
                                                   "step_z": step_z}, None)


def _summary(tr: Trace, T: int) -> dict:
    g = tr.grad_phi_norm
    tail = g[-(T // 3):] if g.shape[0] > T // 3 else g
    first = tr.diverged_at[tr.diverged]
    R, diverged = int(tr.diverged_at.size), int(tr.diverged.sum())
    out = {"R": R, "diverged": diverged,
           "first_divergence": int(first.min()) if first.size else None,
           "tail_avg_grad_norm": float(np.nanmax(np.nanmean(tail, axis=0)))
           if not np.all(np.isnan(tail)) else float("nan"),
           "final_grad_norm": float(np.nanmean(g[-1])) if not np.all(np.isnan(g[-1]))
           else float("nan"),
           "full_avg_grad_norm": float(np.nanmean(tr.avg_grad_phi_norm[-1]))
           if not np.all(np.isnan(tr.avg_grad_phi_norm[-1])) else float("nan"),
           "divergence_probability": brief(binomial_ci(diverged, R, LEVEL))}
    if tr.diverged.all():
        return out
    with np.errstate(invalid="ignore"):
        per_rep = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan
                            for c in tail.T])  # tail average of each replica
    out["tail_avg_per_replica"] = per_rep.tolist()
    out["tail_avg_mean_ci999"] = brief(mean_ci(per_rep, LEVEL))
    out["tail_avg_above_eps_probability"] = brief(binomial_ci(
        int(np.sum(~(per_rep <= EPS))), R, LEVEL))  # a diverged replica counts as above
    out["final_grad_norm_ci999"] = brief(mean_ci(g[-1], LEVEL))
    out["full_avg_grad_norm_ci999"] = brief(mean_ci(tr.avg_grad_phi_norm[-1], LEVEL))
    return out


def run_all(R: int = 4, T: int = 3000, seed: int = 0, baselines=BASELINES,
            record_every: int = 1) -> dict:
    """BO-REP, the comparators and the un-normalized control from x_0 = 9·1 on P1."""
    P = RelaxedSmoothP1()
    x0, y0 = np.full((R, P.d_x), X0), np.zeros((R, P.d_y))

    def oracle(name):
        return GaussianOracle(P, NoiseConfig.uniform(SIGMA), named_stream(seed, f"B2/{name}"))

    def run(method, stream, **options):
        # "paper": the §8 values of BO-REP and the baselines' tuned (constant-step) mode, which
        # runs without the comparators' Lipschitz-∇φ assumption (P1's relaxed-smooth upper
        # level has none: running them outside it is the claim)
        return lambda: solve(P, method, mode="paper", oracle=oracle(stream), x0=x0, y0=y0,
                             T=T, record_every=record_every, **options)

    # (key in the result, curve label, run); the streams are named as before this list
    jobs = [("borep", "BO-REP", run("borep", "borep")),
            ("control_unnormalized", "control: BO-REP without normalization",
             run("borep", "control", normalize=False)),
            ("fixed_step_sgd", "fixed-step SGD",
             lambda: fixed_step_sgd(oracle("fixed"), x0, y0, T=T,
                                    record_every=record_every))]
    jobs += [(name, name, run(name, name, **BASELINE_KW[name])) for name in baselines]
    out: dict = {"curves": {}}
    comps, unavailable = {}, {}
    for key, label, job in track(jobs, "B2 runs", note=lambda j: j[1]):
        try:
            tr = job()
        except Exception as exc:  # a baseline under development: report, do not fail B2
            if key not in baselines:
                raise
            unavailable[key] = f"{type(exc).__name__}: {exc}"
            continue
        summary = _summary(tr, T // record_every)
        if key in ("borep", "control_unnormalized"):
            out[key] = summary
        else:
            comps[key] = summary
        out["curves"][label] = tr
    out["comparators"] = comps
    out["unavailable"] = unavailable
    return out


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    R = 4 if mode == "quick" else 32
    res = run_all(R=R, T=3000, seed=seed, record_every=1 if mode == "quick" else 5)
    bo = res["borep"]
    passed = (bo["diverged"] == 0 and bo["tail_avg_grad_norm"] <= EPS
              and all(c["diverged"] == c["R"] for c in res["comparators"].values()))
    ctrl = res["control_unnormalized"]
    notes = ["tail average = mean of ||∇Φ(x_t)|| over the last third of the run, max over "
             "replicas; full_avg is Theorem 3.2's (1/T)Σ_t (dominated by the approach phase)"]
    if res["unavailable"]:
        notes.append("baselines unavailable (skipped, the fixed-step SGD comparator stands "
                     f"in): {res['unavailable']}")
    return Measurement(
        passed=bool(passed), control_rejected=ctrl["diverged"] == ctrl["R"],
        measured={"borep": bo, "comparators": res["comparators"],
                  "unavailable_baselines": res["unavailable"],
                  "grad_phi_norm_x0": float(np.linalg.norm(RelaxedSmoothP1().grad_phi(
                      np.full(5, X0)))), "replicas": R, "T": 3000,
                  "uncertainty": {
                      "grad_phi_norm_x0, T, replicas": "exact (deterministic, no sampling)",
                      "tail_avg_mean_ci999, final_grad_norm_ci999, full_avg_grad_norm_ci999":
                          f"{LEVEL:.1%} Student-t interval of the mean over the R independent "
                          "replicas (mean ± t_(R-1) SE; non-finite replicas left out and "
                          "counted)",
                      "divergence_probability, tail_avg_above_eps_probability":
                          f"{LEVEL:.1%} Clopper-Pearson exact binomial interval over the R "
                          "independent replicas",
                      "tail_avg_grad_norm, final_grad_norm, full_avg_grad_norm":
                          "point values (max resp. mean over replicas) as in the decision "
                          "rule; their intervals are the *_ci999 entries"}},
        bound={"eps": EPS, "comparators": "every replica overflows (non-finite iterate)"},
        control={"description": "BO-REP without normalization (x ← x − η m) must overflow",
                 **ctrl},
        notes=notes,
        figure_data={"curves": res["curves"]},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    # decreasing sizes: coinciding curves (same start, same first steps) nest visibly
    styles = iter(zip("osD^vP*X", (10, 8.5, 7, 5.5, 4.5, 3.5, 3, 3), strict=True))
    for name, tr in m.figure_data["curves"].items():
        with warnings.catch_warnings():  # all-NaN rows once every replica has overflowed
            warnings.simplefilter("ignore", RuntimeWarning)
            g = np.nanmean(tr.grad_phi_norm, axis=1)
        it = tr.iterations
        if name == "BO-REP":
            (line,) = ax1.semilogy(it, g, label=name)
            # the claim is about every replica: show their whole range
            ax1.fill_between(it, np.nanmin(tr.grad_phi_norm, axis=1),
                             np.nanmax(tr.grad_phi_norm, axis=1), color=line.get_color(),
                             alpha=0.25, lw=0, label=f"range over {tr.diverged_at.size} "
                                                     "replicas")
            continue
        # the comparators overflow within a few steps: markers make 1-2 point curves
        # visible, and each legend entry says where its curve ends
        first = int(tr.diverged_at[tr.diverged].min()) if tr.diverged.any() else None
        end = f"overflow at t = {first}" if first is not None else "no overflow"
        marker, size = next(styles)
        (line,) = ax2.semilogy(it, g, marker=marker, ms=size, lw=1.2, label=f"{name} ({end})")
        if first is not None:
            ax2.axvline(first, ls=":", lw=1.0, color=line.get_color())
    ax1.axhline(m.bound["eps"], color="k", ls="--", label=f"ε = {m.bound['eps']}")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("mean ||∇Φ(x_t)|| over replicas")
    ax1.set_title("BO-REP from x0 = 9·1", fontsize=8)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("iteration (dotted, same colour: first overflow)")
    ax2.set_ylabel("mean ||∇Φ(x_t)|| over replicas")
    ax2.set_title("fixed-step comparators and the control (coinciding curves nest)",
                  fontsize=8)
    ax2.set_xlim(-0.5, 12)
    ax2.legend(fontsize=8, loc="center right")

if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.b2_borep_vs_baselines"))
