"""Per-iteration time and peak memory of SOBA, stocBiO, AmIGO, FSLA, PZOBO, ALSET, MRBO, VRBO
and SUSTAIN, NumPy vs Numba, on the finite-sum quadratic of benchmark_bilevel
(docs/baselines.rst §10.2) with a FiniteSumOracle (batch 64, sampler "uniform") and each
algorithm's default step sizes (s = 0.1, r = 1), except where ``OPTIONS`` sets a smaller one
that is stable at d = 10^4 (the per-iteration work does not depend on it). stocBiO and AmIGO
run 10 inner / Neumann steps; FSLA the benchmark's s/√t schedules; PZOBO N = 10 steps, Q = 1
direction; ALSET one lower step and N = 10 randomized Neumann terms; MRBO Q = 10, SUSTAIN
N = 10, VRBO m = 10 inner steps, Q = 10 and a full-data refresh every 5 outer iterations
(docs/baselines.rst §12-§14).

    python benchmarks/bench_baselines.py [--dims 100 1000 10000] [--n 256] [--quick]
                                         [--algorithms soba pzobo ...]

Method (docs/design.rst: ratios measured in one run; compile time excluded but reported):
- one process, one replica; for every (d, algorithm, backend) a warm-up run of 1 iteration
  (Numba: loads the kernel from the on-disk cache or compiles it; its time is reported), then
  a timed run of T iterations and a timed run of 0 iterations, per-iteration time =
  (t_T − t_0) / T, the best of ``--repeat`` repetitions. The trace's closed-form metrics
  (∇φ and y* at the recorded points: a conjugate-gradient solve at d = 10^4 that costs more
  than many iterations) are switched off on the benchmark's problem instance (its ``_grad_phi``
  and ``_y_star`` return zeros; the class is unchanged, so the Numba kernels accept it);
- memory: the tracemalloc peak of one more, untimed run of T iterations above its start.
  For NumPy that is every array the run allocates (NumPy reports its buffers to
  tracemalloc). For Numba it is only what the Python wrapper allocates (start points,
  records, the trace); the kernel's own NRT buffers are invisible to tracemalloc — by
  construction about 8 (R, d) work arrays, three d-vectors and one (R, 64) index array per
  oracle call, freed at once. (A resident-set measure was tried and rejected: the allocator
  reuses freed pages across runs, so per-run RSS peaks read 0.) The process-wide peak RSS,
  dominated by the problem's data, is printed at the end;
- the problem: n_inner = n_outer = n (default 256; the benchmark's 1024 is slow to build at
  d = 10^4), d_inner = d_outer = d, reg = 0.1 at every d (n < d needs a ridge, and one value
  for all d keeps the instances comparable); its data (12 factor arrays of n × d float64) is
  built before any timing and is not part of the run's memory;
- every timed run must end with no diverged replica (checked), so both backends do the same
  work.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np

from refbilevel.backends import implementation
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic

ALGS = ("soba", "stocbio", "amigo", "fsla", "pzobo", "alset", "mrbo", "vrbo", "sustain")
#: options other than the implementation's defaults: PZOBO runs N = 10 lower-level steps per
#: path and iteration, and at d = 10^4 the instance has L_y = 21.8 (a batch of 64 of its 256
#: rank-one terms up to 4x that; s = 0.1 > 2/L_y: the paths blow up within the timed run) and
#: L_φ = 5.9e4 (the outer step must stay below 3.4e-5); α = 0.01 and β = 1e-5 are stable at
#: every d. The per-iteration work does not depend on them
#: MRBO, VRBO and SUSTAIN: their Neumann step s = 0.1 > 2/L_y diverges at d = 10^4 as well;
#: s = 0.01 for the y and Neumann steps (the x step s/r with r = 1) is stable at every d.
#: stocBiO and AmIGO (10 inner steps of s = 0.1) diverged within 10 iterations at d = 10^4,
#: and ALSET within 50, once the instance got random bases (L_y = 21.8 there); s = 0.01 is
#: stable for 50 iterations at every d (measured with the NumPy reference)
_STORM_STABLE = {"step_size": 0.01, "neumann_step": 0.01}
_STABLE = {"step_size": 0.01}
OPTIONS = {"pzobo": {"step_size": 0.01, "outer_ratio": 1e3}, "mrbo": _STORM_STABLE,
           "vrbo": _STORM_STABLE, "sustain": _STORM_STABLE, "stocbio": _STABLE,
           "amigo": _STABLE, "alset": _STABLE}
#: iterations per timed run, chosen so the whole script takes about 2 minutes on 2 cores
ITERATIONS = {100: 400, 1000: 100, 10000: 10}


def _run(run, P, T, seed=0, options=None):
    options = options or {}
    oracle = FiniteSumOracle(P, 64, np.random.default_rng(seed))
    t0 = time.perf_counter()
    tr = run(oracle, P.x0[None], P.y0[None], T=T, record_every=max(T, 1), **options)
    return time.perf_counter() - t0, tr


def _traced_peak_mb(run, P, T, name) -> float:
    """tracemalloc peak of one untimed run above its start (MB)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    _run(run, P, T, options=OPTIONS.get(name))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return (peak - base) / 2**20


def measure(P, name: str, backend: str, T: int, repeat: int) -> dict:
    run = implementation("algorithm", name, backend)
    opts = OPTIONS.get(name)
    t_first, _ = _run(run, P, 1, options=opts)  # Numba: cache load or compilation
    best = np.inf
    for _ in range(repeat):
        t_zero, _ = _run(run, P, 0, options=opts)
        t_T, tr = _run(run, P, T, options=opts)
        best = min(best, (t_T - t_zero) / T)
        if tr.diverged.any():
            raise RuntimeError(f"{name} [{backend}] diverged at d = {P.d_x}; timings would "
                               "not be comparable")
    return {"per_iter_ms": 1e3 * best, "first_call_s": t_first,
            "peak_mb": _traced_peak_mb(run, P, T, name)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a tenth of the iterations")
    ap.add_argument("--algorithms", nargs="+", default=list(ALGS), choices=ALGS)
    args = ap.parse_args(argv)
    rows = []
    for d in args.dims:
        t0 = time.perf_counter()
        P = FiniteSumQuadratic(n_inner=args.n, n_outer=args.n, d_inner=d, d_outer=d, reg=0.1,
                               seed=0)
        build = time.perf_counter() - t0
        # metrics off for timing (see the module docstring); iterates are unaffected
        P._grad_phi = np.zeros_like
        P._y_star = np.zeros_like  # d_inner = d_outer here
        T = ITERATIONS.get(d, max(10, int(4e4 / d)))
        if args.quick:
            T = max(2, T // 10)
        print(f"# d = {d}: problem built in {build:.1f} s; T = {T} iterations per timed run",
              file=sys.stderr, flush=True)
        for name in args.algorithms:
            res = {b: measure(P, name, b, T, args.repeat) for b in ("numpy", "numba")}
            rows.append((d, name, T, res))
            print(f"#   {name}: numpy {res['numpy']['per_iter_ms']:.3f} ms, numba "
                  f"{res['numba']['per_iter_ms']:.3f} ms", file=sys.stderr, flush=True)
    print(f"FiniteSumQuadratic(n_inner = n_outer = {args.n}, reg = 0.1), FiniteSumOracle "
          "(batch 64, uniform), 1 replica, default steps or OPTIONS'; per-iteration time = best of "
          f"{args.repeat}; memory = tracemalloc peak of one run (MB; Numba: wrapper only)")
    print()
    print("| d | algorithm | T | NumPy ms/it | Numba ms/it | NumPy / Numba | NumPy MB | "
          "Numba MB | Numba first call s |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for d, name, T, res in rows:
        a, b = res["numpy"], res["numba"]
        print(f"| {d} | {name} | {T} | {a['per_iter_ms']:.3f} | {b['per_iter_ms']:.3f} | "
              f"{a['per_iter_ms'] / b['per_iter_ms']:.1f} | {a['peak_mb']:.2f} | "
              f"{b['peak_mb']:.2f} | {b['first_call_s']:.2f} |")
    print()
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
