"""S1: SID's MSE matches the exact moment recursion (Grazzi, Pontil, Salzo 2023, SID Alg. 1;
docs/sid_bsgm.rst §14.1, docs/checks.rst S1).

Measured: Monte Carlo estimates of E||ĝ − ∇f(λ)||² from R independent SID replicas, each
compared with the exact value of the moment recursion (:mod:`refbilevel.sid_moments`):

- the golden instance of §14.1 at (t, k, J) = (10, 10, 10) (and, in full mode, (5, 5, 5)
  and (10, 20, 5)), η_i = 3/(3+i);
- random linear contractions (||A|| = 0.8 by construction, correlated ξ components).

A comparison passes when |MC − exact| ≤ 4 SE, SE = sd(||ĝ − ∇f||²)/√R. Under the normal
approximation P(|Z| > 4) = 6.3e-5 per comparison; with at most 12 comparisons the
family-wise false-positive rate is ≤ 7.6e-4 ≤ 1e-3 (docs/checks.rst). Seeds are fixed.

Negative control: SID whose LS reuses each sample for two consecutive steps (and, in full
mode, whose LS reuses the LL samples), :func:`refbilevel.estimators.sid.sid_control_reuse`.
Its MSE (≈ 5.97 / 5.94 against 5.416, docs/sid_bsgm.rst §14.1) must be rejected: |MC − exact| > 4
SE.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends import implementation
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT, z_level
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import golden_instance
from refbilevel.progress import bar
from refbilevel.randomness import named_stream
from refbilevel.sid_moments import (
    StepSchedule,
    exact_solution,
    random_linear_contraction,
    sid_moments,
)

CLAIM = ClaimInfo(
    id="S1",
    claim="Monte Carlo MSE of SID = exact moment recursion (within 4 standard errors)",
    source="Grazzi, Pontil, Salzo 2023, Alg. 1 (SID); docs/sid_bsgm.rst §4.2, §14.1",
    evidence=(Evidence("statistical",
                       "Monte Carlo MSE within 4 SE of the exact recursion", fpr=7.6e-4),),
)

Z_CRIT = 4.0  # P(|Z| > 4) = 6.3e-5 per comparison
GOLDEN_STEPS = StepSchedule.decreasing(3.0, 3.0)  # η_i = 3/(3+i), docs/sid_bsgm.rst §14.1


def mc_mse(backend: str, problem, lam, t: int, k: int, J: int, *, steps, R: int,
           rng: np.random.Generator, control: str | None = None, chunk: int = 100_000):
    """(MC MSE, SE, MC mean error (n,), its SE (n,)) from R replicas, in chunks of ``chunk``
    replicas to bound memory."""
    grad_f = exact_solution(problem, lam).grad_f
    oracle = ContractionOracle(problem, rng)
    if control is None:
        est = implementation("estimator", "sid", backend)
        kw = {}
    else:
        est = implementation("estimator", "sid_control_reuse", backend)
        kw = {"reuse": control}
    sq, err = [], []
    done = 0
    while done < R:
        r = min(chunk, R - done)
        g = est(oracle, lam, t, k, J, steps=steps, replicas=r, **kw).value
        e = g - grad_f
        err.append(e)
        sq.append(np.sum(e * e, axis=1))
        done += r
    sq = np.concatenate(sq)
    err = np.concatenate(err)
    return (float(sq.mean()), float(sq.std(ddof=1) / np.sqrt(R)), err.mean(axis=0),
            err.std(axis=0, ddof=1) / np.sqrt(R))


def _cases(mode: str, seed: int):
    g = golden_instance()
    golden_tkj = [(10, 10, 10)] if mode == "quick" else [(10, 10, 10), (5, 5, 5), (10, 20, 5)]
    cases = [(f"golden {tkj}", g.problem, g.lam, tkj, GOLDEN_STEPS) for tkj in golden_tkj]
    n_random = 2 if mode == "quick" else 6
    rng = named_stream(seed, "S1/instances")
    for i in range(n_random):
        d = int(rng.integers(1, 6))
        n = int(rng.integers(1, 4))
        prob = random_linear_contraction(d, n, rng)
        lam = rng.standard_normal(n)
        tkj = tuple(int(x) for x in rng.integers(1, 12, size=3))
        # β = γ = 4: η_0 = 1; on these instances c = 1 − 0.64 = 0.36 so Theorem S's βc/2 > 1
        # does not hold, which S1 does not need (the recursion is exact for any steps)
        cases.append((f"random #{i} d={d} n={n} {tkj}", prob, lam, tkj,
                      StepSchedule.decreasing(4.0, 4.0)))
    return cases


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    R_golden = 100_000 if mode == "quick" else 400_000
    R_random = 20_000 if mode == "quick" else 100_000
    rows = []
    cases = _cases(mode, seed)
    reuses = ("pairs",) if mode == "quick" else ("pairs", "ll")
    progress = bar(len(cases) + len(reuses), "S1 Monte Carlo")
    for label, prob, lam, (t, k, J), steps in cases:
        R = R_golden if label.startswith("golden") else R_random
        exact = sid_moments(prob, lam, t, k, J, steps=steps)
        m, se, _, _ = mc_mse(backend, prob, lam, t, k, J, steps=steps, R=R,
                             rng=named_stream(seed, f"S1/{label}"))
        z = (m - exact.mse) / se
        rows.append({"case": label, "R": R, "exact_mse": exact.mse, "mc_mse": m, "se": se,
                     "ci_4se": [m - Z_CRIT * se, m + Z_CRIT * se], "z": z,
                     "ok": abs(z) <= Z_CRIT})
        progress.update(1, label)
    g = golden_instance()
    exact = sid_moments(g.problem, g.lam, 10, 10, 10, steps=GOLDEN_STEPS)
    controls = []
    for reuse in reuses:
        m, se, _, _ = mc_mse(backend, g.problem, g.lam, 10, 10, 10, steps=GOLDEN_STEPS,
                             R=R_golden, rng=named_stream(seed, f"S1/control/{reuse}"),
                             control=reuse)
        z = (m - exact.mse) / se
        controls.append({"variant": f"LS reuses samples ({reuse})", "R": R_golden,
                         "exact_mse_of_SID": exact.mse, "mc_mse": m, "se": se,
                         "ci_4se": [m - Z_CRIT * se, m + Z_CRIT * se], "z": z,
                         "rejected": abs(z) > Z_CRIT})
        progress.update(1, f"control ({reuse})")
    return Measurement(
        passed=all(r["ok"] for r in rows),
        control_rejected=all(c["rejected"] for c in controls),
        measured={"cases": rows, "uncertainty": {
            "mc_mse": f"ci_4se = mc_mse ± {Z_CRIT:g} SE, SE = sd/√R over the R independent "
                      "replicas (normal approximation), two-sided level "
                      f"{z_level(Z_CRIT):.4%}: the check's own decision level",
            "exact_mse": EXACT + " (moment recursion; the seed only draws the random "
                                 "instances)"}},
        bound={"max_abs_z": Z_CRIT, "false_positive_rate_per_comparison": 6.3e-5,
               "comparisons": len(rows) + len(controls)},
        control={"description": "SID with an LS that reuses samples (each for two steps; "
                                "full mode also: the LL samples) must be rejected at 4 SE",
                 "variants": controls},
        notes=[f"backend {backend}; golden η_i = 3/(3+i); random instances η_i = 4/(4+i)"],
        figure_data={"rows": rows, "controls": controls},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    rows, ctrl = m.figure_data["rows"], m.figure_data["controls"]
    labels = [r["case"] for r in rows] + [c["variant"] for c in ctrl]
    z = [r["z"] for r in rows] + [c["z"] for c in ctrl]
    colors = ["tab:blue"] * len(rows) + ["tab:red"] * len(ctrl)
    ax1.barh(labels, z, color=colors)
    for s in (-Z_CRIT, Z_CRIT):
        ax1.axvline(s, color="k", ls="--", lw=1)
    ax1.set_xlabel("(MC MSE − exact MSE) / SE   (claim: blue within ±4; control: red outside)")
    ax1.tick_params(axis="y", labelsize=6)
    x = np.arange(len(rows))
    ax2.errorbar(x, [r["mc_mse"] for r in rows], yerr=[Z_CRIT * r["se"] for r in rows],
                 fmt="o", label="MC ± 4 SE")
    ax2.plot(x, [r["exact_mse"] for r in rows], "k_", ms=14, label="exact recursion")
    for c in ctrl:
        ax2.errorbar([0], [c["mc_mse"]], yerr=[Z_CRIT * c["se"]], fmt="s", color="tab:red",
                     label=f"control: {c['variant']}")
    ax2.set_xticks(x, [r["case"] for r in rows], rotation=30, ha="right", fontsize=6)
    ax2.set_yscale("log")
    ax2.set_ylabel("E||ĝ − ∇f||²")
    ax2.legend(fontsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.s1_sid_mse"))
