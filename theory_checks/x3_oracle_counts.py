"""X3: the oracle-call counters equal the per-iteration counts each algorithm's paper states,
exactly (docs/checks.rst X3; docs/design.rst "the oracle layer is the only place that counts
calls").

Every registered algorithm (``refbilevel.backends.implementations("algorithm")``) runs a
short run (T = 12 outer iterations and R = 2 replicas in quick mode; T = 40 and R ∈ {1, 3}
in full mode; every iteration recorded) from the comparison setup of
:mod:`refbilevel.backend_comparison` (the settings of its tests), on the NumPy reference and
on the Numba backend (and on the ``backend`` argument, if it is another one; a backend that
is unavailable or does not implement an algorithm is reported as skipped, with the reason).
The cumulative counts the trace records after every iteration (``Trace.counts``, kind by
kind; for BSGM the run totals ``BSGMTrace.counts`` and the cumulative Definition 15 sample
count ``BSGMTrace.samples``) are compared, with integer equality, with the counts the papers
state, as the library encodes them:

- the eight baselines: :data:`refbilevel.algorithms._baselines.PAPER_COUNTS` (per-iteration
  counts per kind, docs/baselines.rst §1-§8, section cited per entry), times the iteration,
  by :func:`~refbilevel.algorithms._baselines.paper_cumulative_counts`; the HIA HVPs of BSA
  and TTSA (Ghadimi-Wang's randomized truncation, p_k ~ U{0..N−1} products in iteration k)
  are the running sum of the realized p_k (``trace.extra["hia_p"]``, max over replicas),
  whose range 0 ≤ p_k < N is also checked; every oracle kind is compared (unstated kinds
  must be 0); sample counts are not part of those papers' tables and are not compared;
- FSLA, PZOBO and ALSET likewise (docs/baselines.rst §15-§17): PZOBO's table states
  gradients only, so its HVP and JVP counters must read 0 at every record (Hessian-free);
  ALSET's HVPs are its realized N' (randomized estimate) or N − 1 (fixed length);
- MRBO and SUSTAIN: :func:`~refbilevel.algorithms.mrbo.recursive_momentum_counts`
  (docs/baselines.rst §12, §14: per point ∇_y G, ∇_y F, ∇_x F, JVP 1 and Q HVPs — SUSTAIN: the
  realized p_t, whose range is checked as for BSA — with one point at t = 1 and two after);
  VRBO: :func:`~refbilevel.algorithms.vrbo.vrbo_counts` (§13: (m + 1) coupled pairs per outer
  iteration plus one full-batch estimate per refresh);
- UniBiO: :func:`~refbilevel.algorithms.unibio.unibio_cumulative_counts` (docs/unibio.rst §4.2
  "Oracle cost", §5.6 eq. (63): per UL iteration 1 ∇_x F, 1 F_u, Q generalized HVPs,
  1 JVP; Epoch-SGD budgets on the lower level), samples included;
- BO-REP: :func:`~refbilevel.algorithms.borep.borep_cumulative_counts` (docs/borep.rst §4: per
  iteration 1 ∇_x F, 1 ∇_y F, 1 HVP, 1 JVP, N ∇_y G every I iterations, Epoch-SGD
  T_1(2^{k†} − 1) ∇_y G), samples included;
- FdeHBO and FMBO: :func:`~refbilevel.algorithms.fdehbo.storm_total_counts` after t
  iterations (docs/fdehbo.rst §3 "Per-iteration oracle cost": FdeHBO 3k ∇_y G, 2k ∇_x G, k ∇_y F,
  k ∇_x F, FMBO k each of ∇_y G, HVP, JVP, ∇_y F, ∇_x F, with k = 1 at t = 0 and 2 after;
  5 samples per iteration);
- BSGM: one SID call per outer iteration s with (t_s, k_s, J_s) from
  :func:`~refbilevel.algorithms.bsgm.bsgm_schedule`, each costing
  :func:`~refbilevel.estimators.sid.sid_counts` (docs/sid_bsgm.rst §4.2: t + k + J copies of ζ,
  J of ξ; t Φ, k ∂₁Φᵀ, J ∂₂Φᵀ, J ∇E evaluations); Definition 15 (§11): the samples
  Σ (t_s + k_s + 2J_s). The deterministic schedule of the setup, plus the finite and
  increasing schedules in full mode;
- the SID estimator alone: ``est.counts`` = ``sid_counts(t, k, J)`` for a few (t, k, J).

Everything is integer accounting: exact, no tolerance, no false positives (the seed only
chooses the noise, and the HIA p_k that the expected HVP count reads back).

Negative control: the same comparison against a false expectation must fail — (a) SOBA's
trace against stocBiO's per-iteration table (docs/baselines.rst §2: n SGD steps and Q HVPs per
iteration instead of one each), (b) SOBA's own table off by one (∇_y G 2 per iteration),
(c) BSGM's counts against SID calls with J_s + 1 ξ samples.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from refbilevel.algorithms._baselines import PAPER_COUNTS, paper_cumulative_counts
from refbilevel.algorithms.bsgm import SCHEDULES, bsgm_schedule
from refbilevel.backend_comparison import default_spec
from refbilevel.backends import backend_status, implementation, implementations
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT
from refbilevel.estimators.sid import StepSchedule, sid_counts
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.oracles.counters import ORACLE_KINDS
from refbilevel.problems.contraction import golden_instance
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.runs import RunSpec, build_problem, execute
from refbilevel.solver_record import solver_record

CLAIM = ClaimInfo(
    id="X3",
    claim="oracle-call counters equal the per-iteration counts each algorithm's paper "
          "states (every algorithm, every kind, every iteration; exact)",
    source="docs/checks.rst X3; docs/baselines.rst §0.2, §1-§8, §12-§17; docs/unibio.rst §4.2, "
           "§5.6; "
        "docs/borep.rst §4; "
           "docs/fdehbo.rst §3; docs/sid_bsgm.rst §4.2, §11",
    evidence=(Evidence("exact", "integer accounting of run counters"),),
)

SID_CASES = ((7, 4, 3), (0, 5, 1), (5, 0, 2), (12, 12, 12))


def source(algorithm: str) -> str:
    return solver_record(algorithm).counts_reference or "no stated per-iteration counts"


def expected_counts(algorithm: str, trace: Any, spec: RunSpec) -> dict[str, np.ndarray]:
    """Cumulative counts at the trace's records, by kind, as the paper states them (the
    method's record, :attr:`~refbilevel.solver_record.SolverRecord.paper_counts`)."""
    record = solver_record(algorithm)
    if record.paper_counts is None:
        raise ValueError(f"no stated counts for algorithm {algorithm!r}")
    return record.paper_counts(trace, build_problem(spec)[0])


def bsgm_expected(trace: Any, spec: RunSpec, extra_xi: int = 0) -> tuple[dict, np.ndarray]:
    """(run totals by kind, cumulative samples) of a BSGM run: Σ_s sid_counts(t_s, k_s, J_s)
    and [0, Σ_{s'<s+1} (t + k + 2J)] (Definition 15). ``extra_xi`` > 0 is the NEGATIVE
    CONTROL (J_s + extra_xi ξ per call)."""
    problem = build_problem(spec)[0]
    q = float(problem.constants.extra["q"])
    T = int(trace.params["T"])
    tot: dict[str, int] = {}
    samples = [0]
    for s in range(T):
        c = sid_counts(*bsgm_schedule(trace.params["schedule"], s, T, q))
        c["xi"] += extra_xi
        for k, v in c.items():
            tot[k] = tot.get(k, 0) + v
        samples.append(samples[-1] + c["zeta"] + c["xi"])
    return tot, np.array(samples)


def compare_counts(got: dict, want: dict, kinds) -> dict:
    """Kind-by-kind integer comparison (a kind absent on one side is 0 there); the first
    mismatching record of each kind."""
    mismatches = []
    for k in kinds:
        g, w = got.get(k), want.get(k)
        g = np.zeros_like(np.asarray(w)) if g is None else np.asarray(g)
        w = np.zeros_like(g) if w is None else np.asarray(w)
        g, w = np.atleast_1d(g), np.atleast_1d(w)
        if g.shape != w.shape:
            mismatches.append({"kind": k, "reason": f"records {g.shape} vs expected {w.shape}"})
            continue
        bad = np.flatnonzero(g != w)
        if bad.size:
            r = int(bad[0])
            mismatches.append({"kind": k, "first_record": r, "got": int(g[r]),
                               "want": int(w[r]), "records_off": int(bad.size)})
    return {"kinds": list(kinds), "mismatches": mismatches, "ok": not mismatches}


def run_specs(algorithm: str, mode: str, seed: int) -> list[tuple[str, RunSpec]]:
    T = 12 if mode == "quick" else 40
    Rs = (2,) if mode == "quick" else (1, 3)
    out = []
    for R in Rs:
        spec = replace(default_spec(algorithm, T=T, replicas=R, seed=seed), record_every=1)
        out.append((f"T={spec.T}, R={R}", spec))
        # BSGM's other SID schedules (a schedule option naming one of them)
        if mode == "full" and spec.options.get("schedule") in SCHEDULES:
            for sched in ("finite", "increasing"):
                s2 = replace(spec, T=20, options={**spec.options, "schedule": sched})
                out.append((f"T=20, R={R}, schedule={sched}", s2))
    return out


def check_run(algorithm: str, spec: RunSpec, backend: str) -> tuple[dict, Any]:
    trace = execute(spec, backend)
    row: dict[str, Any] = {"algorithm": algorithm, "backend": backend,
                           "source": source(algorithm)}
    want = expected_counts(algorithm, trace, spec)
    kinds = [k for k in trace.counts if k in ORACLE_KINDS or k in want]
    c = compare_counts(trace.counts, want, kinds)
    row.update(records=len(trace.iterations), kinds=kinds, mismatches=c["mismatches"],
               ok=c["ok"], final={k: int(np.asarray(trace.counts[k])[-1]) for k in kinds})
    if "schedule" in trace.params and isinstance(trace.params["schedule"], str):
        row["schedule"] = trace.params["schedule"]
    if "hia_p" in trace.extra:
        p = np.asarray(trace.extra["hia_p"])
        N = int(trace.params["n_hia_steps"])
        row["hia_p_in_range"] = bool(np.all((p >= 0) & (p < N)))
        row["ok"] = row["ok"] and row["hia_p_in_range"]
    return row, trace


def sid_rows(backends: list[str], seed: int) -> list[dict]:
    g = golden_instance()
    rows = []
    for b in backends:
        try:
            est = implementation("estimator", "sid", b)
        except Exception as exc:  # unavailable or not implemented: reported, not run
            rows.append({"estimator": "sid", "backend": b, "skipped": str(exc)})
            continue
        for t, k, J in SID_CASES:
            o = ContractionOracle(g.problem, named_stream(seed, f"X3/sid/{b}/{t},{k},{J}"))
            got = est(o, g.lam, t, k, J, steps=StepSchedule.decreasing(3.0, 3.0),
                      replicas=3).counts.as_dict()
            want = sid_counts(t, k, J)
            rows.append({"estimator": "sid", "backend": b, "tkJ": [t, k, J], "got": got,
                         "want": want, "ok": got == want and o.counts.as_dict() == want})
    return rows


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    backends = ["numpy", "numba"] + ([backend] if backend not in ("numpy", "numba") else [])
    impls = implementations("algorithm")
    rows, skipped, traces = [], [], {}
    cases = [(a, label, spec) for a in impls for label, spec in run_specs(a, mode, seed)]
    for alg, label, spec in track(cases, "X3 algorithm runs", note=lambda c: c[0]):
        for b in backends:
            ok_b, why = backend_status(b)
            if not ok_b or b not in impls[alg]:
                skipped.append({"algorithm": alg, "backend": b,
                                "reason": why if not ok_b else f"{alg} has no {b} "
                                "implementation (available on: " + ", ".join(impls[alg]) + ")"})
                continue
            row, trace = check_run(alg, spec, b)
            row["run"] = label
            rows.append(row)
            traces.setdefault((alg, b), (trace, spec))
    sid = sid_rows(backends, seed)

    # negative controls, on the NumPy runs
    soba, soba_spec = traces[("soba", "numpy")]
    stoc, _ = traces[("stocbio", "numpy")]
    its = soba.iterations
    kinds = [k for k in soba.counts if k in ORACLE_KINDS]
    ctrl_a = compare_counts(soba.counts, paper_cumulative_counts("stocbio", stoc.params, its),
                            kinds)
    off = paper_cumulative_counts("soba", soba.params, its)
    off["grad_y_g"] = off["grad_y_g"] + its  # 1 + 1 ∇_y G per iteration
    ctrl_b = compare_counts(soba.counts, off, kinds)
    bs, bs_spec = traces[("bsgm", "numpy")]
    tot_c, samples_c = bsgm_expected(bs, bs_spec, extra_xi=1)
    ctrl_c = compare_counts({**{k: v[-1] for k, v in bs.counts.items()},
                             "samples": bs.counts["samples"]},
                            {**tot_c, "samples": samples_c}, sorted(tot_c) + ["samples"])
    controls = {"soba_vs_stocbio_table": ctrl_a, "soba_off_by_one_grad_y_g": ctrl_b,
                "bsgm_J_plus_1_xi": ctrl_c}
    control_rejected = all(not c["ok"] for c in controls.values())

    covered = {r["algorithm"] for r in rows if r["backend"] == "numpy" and r["ok"]}
    passed = (all(r["ok"] for r in rows) and all(r.get("ok", True) for r in sid)
              and covered == set(impls))
    return Measurement(
        passed=bool(passed),
        control_rejected=bool(control_rejected),
        measured={"runs": rows, "sid_estimator": sid, "skipped": skipped,
                  "algorithms": sorted(impls), "backends": backends,
                  "uncertainty": {"runs, sid_estimator": EXACT + " (integer accounting; "
                                  "the seed only chooses the noise and the HIA p_k)"}},
        bound={"rule": "trace counts == stated counts, every kind, every record (integers)",
               "per_iteration_tables": {a: PAPER_COUNTS[a]["per_iteration"]
                                        for a in PAPER_COUNTS},
               "randomized_hvp": [a for a in PAPER_COUNTS if PAPER_COUNTS[a]["randomized_hvp"]],
               "sources": {a: source(a) for a in implementations("algorithm")}},
        control={"description": "the same comparison against false expectations must "
                                "mismatch: (a) SOBA's trace vs stocBiO's table, (b) SOBA's "
                                "table with ∇_y G off by one, (c) BSGM vs SID calls with J+1 ξ",
                 **controls},
        notes=[f"backends compared: {', '.join(backends)}; skipped: {len(skipped)} "
               "(algorithm, backend) pairs, with reasons under measured.skipped",
               "the baselines' papers state call counts, not sample counts: their 'samples' "
               "counter (shared minibatches on a FiniteSumOracle) is not compared here "
               "(tests/test_baselines.py::test_x3_finite_sum_samples covers it)"],
        figure_data={"rows": rows, "controls": controls},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    rows = m.figure_data["rows"]
    labels = sorted({r["algorithm"] for r in rows})
    backends = sorted({r["backend"] for r in rows})
    grid = np.full((len(labels), len(backends)), np.nan)
    for r in rows:
        i, j = labels.index(r["algorithm"]), backends.index(r["backend"])
        n_bad = len(r["mismatches"])
        grid[i, j] = n_bad if np.isnan(grid[i, j]) else grid[i, j] + n_bad
    ax1.imshow(np.where(np.isnan(grid), -1, grid), cmap="RdYlGn_r", vmin=0, vmax=3,
               aspect="auto")
    for i in range(len(labels)):
        for j in range(len(backends)):
            txt = "n/a" if np.isnan(grid[i, j]) else ("exact" if grid[i, j] == 0
                                                       else f"{int(grid[i, j])} kinds off")
            ax1.text(j, i, txt, ha="center", va="center", fontsize=6)
    ax1.set_xticks(range(len(backends)), backends)
    ax1.set_yticks(range(len(labels)), labels, fontsize=7)
    ax1.set_title("mismatching kinds (trace counts vs stated counts)", fontsize=8)
    ctrl = m.figure_data["controls"]
    ax2.barh(list(ctrl), [len(c["mismatches"]) for c in ctrl.values()], color="tab:red")
    ax2.set_xlabel("mismatching kinds (must be > 0)", fontsize=7)
    ax2.set_title("negative controls", fontsize=8)
    ax2.tick_params(axis="y", labelsize=6)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.x3_oracle_counts"))
