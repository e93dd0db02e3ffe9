"""X4: the backends agree — NumPy ↔ Numba to ≤ 1e-12 relative in float64 on the same seed
(bit-for-bit where the summation order is the same), with the same oracle counts, the same
divergence records and the same random numbers consumed; NumPy ↔ CuPy within tolerance on
host-generated noise (docs/checks.rst X4; docs/design.rst §Backends).

Measured:

- every registered algorithm implemented on both NumPy and Numba
  (``refbilevel.backends.implementations("algorithm")``): the run of
  :func:`refbilevel.backend_comparison.compare` (the ``refbilevel compare-backends`` table)
  from the comparison setup of each algorithm's tests (:func:`~refbilevel.backend_comparison.
  setup`), T = 200 outer iterations and R = 2 replicas in quick mode, T = 1000 and R = 4 in
  full mode (UniBiO: T capped at 500 UL steps, ~1e5 oracle calls per replica), same seed:
  max |x_numba − x_numpy| / max |x_numpy| over every record, replica and coordinate (λ for
  BSGM), identical divergence records and identical cumulative counts;
- every registered estimator implemented on both
  (:func:`~refbilevel.backend_comparison.estimator_cases`: the Neumann variants, the
  linear-system SGD variants, CG, the four finite-difference estimators on four problems,
  the registered ``uniformly-convex-bump`` among them (max relative difference 3.5e-15 on
  2026-12-04) — six in full mode, with unbatched inputs too — and SID with its two reuse
  variants on two contraction instances), by
  :func:`~refbilevel.backend_comparison.compare_estimator`: the value (and the linear-system
  iterate z) to ≤ 1e-12 relative, the same counts, and the
  same Generator state after the call;
- CuPy: when :func:`refbilevel.backends.backend_status` says the backend is usable, the
  estimators with a CuPy implementation on host-generated noise, to ≤ 1e-10 relative (the
  tolerance of tests/test_estimators.py: device reductions and cuBLAS change the summation
  order), same counts and Generator state; otherwise reported as skipped with its reason.
  The statistical agreement on device-generated noise is not part of this check
  (tests/test_estimators.py::test_device_noise_mode_is_unbiased and test_sid.py cover the
  device-noise code path).

Tolerance: 1e-12 relative is the library's float64 parity contract (docs/design.rst): the kernels
perform the same operations on the same random numbers, and differ only by the order of
floating-point sums (loops vs BLAS), which moves results by a few ulps per operation; the
measured differences (seed 0) are ≤ 1e-15 for most algorithms and estimators, 3e-14 for the
finite-difference estimators (rounding amplified by 1/δ) and 2.3e-13 for FdeHBO after 1000
iterations (the same, accumulated). Deterministic given the seed: no statistical decision,
no false positives.

Negative control: the same comparison where the Numba side is given something else must
break the 1e-12 contract — (a) SOBA and BSGM runs on Numba with a *different seed* (the
same algorithm, other random numbers), (b) the same runs with the start x0 (λ0) moved by
1e-9 (a discrepancy far below any statistical resolution, but 1e3 times the contract), and
(c) a Neumann and a SID estimate on Numba with a different seed.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from refbilevel.backend_comparison import (
    PARITY_RTOL,
    compare,
    compare_estimator,
    default_spec,
    estimator_cases,
    max_relative_difference,
    positions,
)
from refbilevel.backends import backend_status, implementations
from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT
from refbilevel.progress import track
from refbilevel.runs import execute

CLAIM = ClaimInfo(
    id="X4",
    claim="backends agree: NumPy ↔ Numba ≤ 1e-12 relative on the same seed, same counts and "
          "draws; NumPy ↔ CuPy on host noise",
    source="docs/checks.rst X4; docs/design.rst §Backends",
    evidence=(Evidence("exact", "same seed on every backend; deterministic given the seed"),),
)

CUPY_RTOL = 1e-10
CONTROL_ALGORITHMS = ("soba", "bsgm")
CONTROL_X0_SHIFT = 1e-9


def _estimator_backends() -> dict[str, tuple[str, ...]]:
    return implementations("estimator")


def algorithm_rows(T: int, R: int, seed: int) -> tuple[list[dict], list[dict]]:
    impls = implementations("algorithm")
    rows, skipped = [], []
    for alg in track(list(impls), "X4 algorithms NumPy vs Numba", note=lambda a: a):
        if "numba" not in impls[alg]:
            skipped.append({"algorithm": alg, "reason": "no Numba implementation"})
            continue
        for r in compare(alg, ("numpy", "numba"), T=T, replicas=R, seed=seed):
            rows.append({**asdict(r), "ok": r.ok, "T": min(T, 500) if alg == "unibio" else T,
                         "R": R})
    return rows, skipped


def estimator_rows(cases, backends: tuple[str, str], seed: int, rtol: float, label: str):
    impls = _estimator_backends()
    rows, skipped = [], []
    for case in track(cases, label, note=lambda c: c.estimator):
        if backends[1] not in impls.get(case.estimator, ()):
            skipped.append({"estimator": case.estimator, "case": case.label,
                            "reason": f"no {backends[1]} implementation"})
            continue
        for r in compare_estimator(case, backends, seed=seed, rtol=rtol):
            rows.append({**asdict(r), "ok": r.ok})
    return rows, skipped


def controls(T: int, R: int, seed: int, cases) -> list[dict]:
    out = []
    for alg in CONTROL_ALGORITHMS:
        spec = default_spec(alg, T=T, replicas=R, seed=seed)
        ref = positions(execute(spec, "numpy"))
        for what, other in (("different seed", replace(spec, seed=seed + 1)),
                            (f"x0 + {CONTROL_X0_SHIFT:g}",
                             replace(spec, x0=float(spec.x0) + CONTROL_X0_SHIFT))):
            diff = max_relative_difference(ref, positions(execute(other, "numba")))
            out.append({"kind": "algorithm", "name": alg, "perturbation": what,
                        "max_rel_diff": diff, "rejected": not diff <= PARITY_RTOL})
    picks = [next(c for c in cases if c.estimator == e) for e in ("neumann", "sid")]
    for case in picks:
        r = compare_estimator(case, ("numpy", "numba"), seeds=(seed, seed + 1))[0]
        out.append({"kind": "estimator", "name": f"{case.estimator}: {case.label}",
                    "perturbation": "different seed", "max_rel_diff": r.max_rel_diff,
                    "same_stream": r.same_stream, "rejected": not r.ok})
    return out


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    T, R = (200, 2) if mode == "quick" else (1000, 4)
    alg_rows, alg_skipped = algorithm_rows(T, R, seed)
    cases = estimator_cases(seed, full=mode == "full")
    est_rows, est_skipped = estimator_rows(cases, ("numpy", "numba"), seed, PARITY_RTOL,
                                           "X4 estimators NumPy vs Numba")
    cupy_ok, cupy_why = backend_status("cupy")
    if cupy_ok:
        cupy_rows, cupy_skipped = estimator_rows(cases, ("numpy", "cupy"), seed, CUPY_RTOL,
                                                 "X4 estimators NumPy vs CuPy")
        cupy = {"status": "run", "reason": cupy_why, "rows": cupy_rows,
                "skipped": cupy_skipped + [{"algorithms": "all", "reason": "no algorithm "
                                            "has a CuPy implementation"}]}
    else:
        cupy_rows = []
        cupy = {"status": "skipped", "reason": cupy_why}
    ctrl = controls(T, R, seed, cases)
    passed = (bool(alg_rows) and bool(est_rows) and all(r["ok"] for r in alg_rows)
              and all(r["ok"] for r in est_rows) and all(r["ok"] for r in cupy_rows))
    worst = {"algorithms": max(r["max_rel_dx"] for r in alg_rows),
             "estimators": max(r["max_rel_diff"] for r in est_rows)}
    return Measurement(
        passed=bool(passed),
        control_rejected=all(c["rejected"] for c in ctrl),
        measured={"algorithms": alg_rows, "estimators": est_rows, "cupy": cupy,
                  "worst_relative_difference": worst,
                  "skipped": {"algorithms": alg_skipped, "estimators": est_skipped},
                  "uncertainty": {"algorithms, estimators, cupy": EXACT + " (same seed on "
                                  "both backends; the differences are rounding, "
                                  "deterministic given the seed)"}},
        bound={"numpy_vs_numba_max_relative_difference": PARITY_RTOL,
               "numpy_vs_cupy_host_noise_max_relative_difference": CUPY_RTOL,
               "counts, divergence records, Generator state": "identical",
               "algorithms": f"T = {T}, R = {R} (UniBiO T <= 500)"},
        control={"description": "Numba given other random numbers (another seed) or a start "
                                f"moved by {CONTROL_X0_SHIFT:g}: the 1e-12 contract must break",
                 "rows": ctrl},
        notes=[f"CuPy: {cupy['status']} ({cupy_why})",
               f"the backend argument ({backend!r}) does not select anything here: the check "
               "always compares NumPy (reference) with Numba, and with CuPy where usable"],
        figure_data={"alg_rows": alg_rows, "est_rows": est_rows, "cupy_rows": cupy_rows,
                     "controls": ctrl},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    floor = 1e-18
    alg = m.figure_data["alg_rows"]
    ax1.barh([r["algorithm"] for r in alg], [max(r["max_rel_dx"], floor) for r in alg],
             label="NumPy vs Numba, same seed")
    ctrl = [c for c in m.figure_data["controls"] if c["kind"] == "algorithm"]
    for c, mk in zip(ctrl, ("x", "+", "1", "2"), strict=False):
        ax1.scatter([max(c["max_rel_diff"], floor)], [c["name"]], color="tab:red", marker=mk,
                    zorder=3, label=f"control: {c['name']}, {c['perturbation']}")
    ax1.axvline(PARITY_RTOL, color="k", ls="--", label="contract 1e-12")
    ax1.set_xscale("log")
    ax1.set_xlabel("max relative difference of the iterates")
    ax1.tick_params(axis="y", labelsize=7)
    ax1.legend(fontsize=5)
    est = m.figure_data["est_rows"]
    names = sorted({r["estimator"] for r in est})
    worst = [max(max(r["max_rel_diff"], floor) for r in est if r["estimator"] == n)
             for n in names]
    ax2.barh(names, worst, label="NumPy vs Numba (worst case)")
    cu = m.figure_data["cupy_rows"]
    if cu:
        cn = sorted({r["estimator"] for r in cu})
        ax2.scatter([max(max(r["max_rel_diff"], floor) for r in cu if r["estimator"] == n)
                     for n in cn], cn, color="tab:green", marker="o", zorder=3,
                    label="NumPy vs CuPy, host noise")
        ax2.axvline(CUPY_RTOL, color="tab:green", ls=":", label="CuPy tolerance 1e-10")
    for c in (c for c in m.figure_data["controls"] if c["kind"] == "estimator"):
        ax2.scatter([max(c["max_rel_diff"], floor)], [c["name"].split(":")[0]],
                    color="tab:red", marker="x", zorder=3, label="control: other seed")
    ax2.axvline(PARITY_RTOL, color="k", ls="--")
    ax2.set_xscale("log")
    ax2.set_xlabel("max relative difference of the estimates")
    ax2.tick_params(axis="y", labelsize=7)
    ax2.legend(fontsize=5)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.x4_backend_parity"))
