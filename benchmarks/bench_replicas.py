"""Replicas on every core: per seed-iteration time of the Numba baseline kernels on 1 and 2
threads, with the share of the time spent drawing random numbers (the Amdahl bound).

    python benchmarks/bench_replicas.py [--quick]     (part of: refbilevel bench algorithms)

Target (issue #14, item 6): SOBA, stocBiO, AmIGO and SABA on the finite-sum quadratic at
d = 100, R = 256 (FiniteSumOracle, batch 64, sampler "uniform") at least 1.7x faster per
seed-iteration on 2 threads than on 1. The other kernels are reported with their ratio.

Method (ratios from one run; the machine is shared, so compare the ratios):
- the kernels draw every oracle call's random numbers first, serially in the reference's
  order, then run the R replica rows with ``prange`` (docs: algorithms/_baselines_numba.py);
  ``numba.set_num_threads(k)`` selects 1 or 2 threads in the same process;
- per algorithm: a warm-up run (cache load), then runs of T and of 0 iterations on 1 and on 2
  threads, interleaved (the load of a shared machine moves within seconds), 7 rounds; per
  seed-iteration = (best of T - best of 0) / (T R).
  The trace's closed-form metrics (∇φ, y* at the recorded points) are switched off on the
  instances, as in bench_baselines.py;
- drawing share: the time of the same draws alone (the iteration's minibatch index draws,
  ``rng.integers(0, n, (R, B))``, or normal blocks for a GaussianOracle, timed in NumPy) over
  the 1-thread iteration time; with a serial share s, 2 threads give at most
  1 / (s + (1 - s) / 2) (Amdahl);
- the load average is printed: with more runnable processes than cores, a parallel region
  waits for its slowest thread and, with the OpenMP layer, idle workers spin and slow the
  serial parts too (measured on the shared development machine at load ~10 on 2 cores:
  the same serial row loop took 3.5 ms with 1 thread set and 23 ms after set_num_threads(2)).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

if __name__ == "__main__" and os.environ.get("NUMBA_NUM_THREADS") not in (None, "2"):
    sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                            env={**os.environ, "NUMBA_NUM_THREADS": "2"},
                            check=False).returncode)

import numba  # noqa: E402
import numpy as np  # noqa: E402

from refbilevel.backends import implementation  # noqa: E402
from refbilevel.oracles.finite_sum import FiniteSumOracle  # noqa: E402
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig  # noqa: E402
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic  # noqa: E402
from refbilevel.problems.quadratic import StronglyConvexQuadratic  # noqa: E402

TARGET = ("soba", "stocbio", "amigo", "saba")
OTHERS = ("bsa", "ttsa", "ma_soba", "f2sa")
#: minibatches (finite sum) or oracle calls (Gaussian) per iteration with default settings
DRAWS = {"soba": 2, "saba": 2, "ma_soba": 2, "stocbio": 10 + 10 + 2, "amigo": 10 + 10 + 2,
         "f2sa": 3 * 10 + 3, "bsa": None, "ttsa": None}  # BSA/TTSA: random HIA lengths


def _times(run, make_oracle, x0, y0, T, repeat) -> dict[int, float]:
    """Seconds of T iterations on 1 and 2 threads: the best of ``repeat`` runs of T minus the
    best of ``repeat`` runs of 0 iterations, the thread counts interleaved run by run so that
    both see the same machine load."""
    def once(T):
        o = make_oracle()
        t0 = time.perf_counter()
        run(o, x0.copy(), y0.copy(), T=T, record_every=max(T, 1))
        return time.perf_counter() - t0

    once(1)  # compile or load from the cache
    best = {(k, n): float("inf") for k in (1, 2) for n in (0, T)}
    for _ in range(repeat):
        for k in (1, 2):
            numba.set_num_threads(k)
            for n in (0, T):
                best[k, n] = min(best[k, n], once(n))
    numba.set_num_threads(2)
    return {k: best[k, T] - best[k, 0] for k in (1, 2)}


def _draw_seconds(make_oracle, R: int, per_iteration: int, B: int, repeat=3) -> float:
    """Seconds of one iteration's random draws alone (NumPy, the same counts)."""
    o = make_oracle()
    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(per_iteration):
            if isinstance(o, FiniteSumOracle):
                rng.integers(0, o.problem.n_inner, (R, B))
            else:
                rng.standard_normal((R, o.problem.d_y))
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args(argv)
    if numba.config.NUMBA_NUM_THREADS < 2:
        print("bench_replicas: needs NUMBA_NUM_THREADS >= 2", file=sys.stderr)
        return 2
    d, R, B = 100, 256, 64
    T, repeat = (5, 3) if args.quick else (10, 7)
    fsq = FiniteSumQuadratic(n_inner=1024, n_outer=1024, d_inner=d, d_outer=d, reg=0.1, seed=0)
    quad = StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.2, L=1.0, seed=0, structured=True)
    for P in (fsq, quad):  # the trace's closed-form metrics are not the kernels' time
        P._grad_phi = np.zeros_like
        P._y_star = np.zeros_like  # d_x = d_y here
    cases = [(name, "finite-sum", fsq, lambda: FiniteSumOracle(fsq, B, np.random.default_rng(0)))
             for name in TARGET + OTHERS]
    cases.append(("soba", "gaussian-householder", quad,
                  lambda: GaussianOracle(quad, NoiseConfig.uniform(0.1), np.random.default_rng(0))))
    print(f"d = {d}, R = {R}, batch {B}, T = {T}; per seed-iteration, 1 and 2 Numba threads")
    ok = True
    for name, kind, P, make in cases:
        run = implementation("algorithm", name, "numba")
        x0 = np.tile(getattr(P, "x0", np.zeros(P.d_x)), (R, 1))
        y0 = np.tile(getattr(P, "y0", np.zeros(P.d_y)), (R, 1))
        times = {k: t / (T * R) for k, t in _times(run, make, x0, y0, T, repeat).items()}
        ratio = times[1] / times[2]
        n_draws = DRAWS[name] if kind == "finite-sum" else 5
        line = (f"{name:<8} {kind:<21} 1 thread {1e6 * times[1]:8.2f} µs  2 threads "
                f"{1e6 * times[2]:8.2f} µs  speed-up {ratio:4.2f}x")
        if n_draws is not None:
            share = min(_draw_seconds(make, R, n_draws, B) / (times[1] * R), 1.0)
            bound = 1.0 / (share + (1.0 - share) / 2.0)
            line += f"  drawing {100 * share:4.1f}% (Amdahl bound {bound:4.2f}x)"
        if name in TARGET and kind == "finite-sum":
            met = ratio >= 1.7
            ok &= met
            line += "  target >= 1.7x: " + ("met" if met else "NOT met")
        print(line, flush=True)
    print(f"threading layer {numba.threading_layer()}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores: a 2-thread speed-up needs 2 idle cores (one run on a shared "
          "machine: compare the ratios, not the absolute times)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
