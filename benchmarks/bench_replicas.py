"""Replicas on every core: per seed-iteration time of the Numba baseline kernels on 1 and 2
threads, with the share of the time spent drawing random numbers (the Amdahl bound).

    python benchmarks/bench_replicas.py [--quick]     (part of: refbilevel bench algorithms)

Target (issue #14, item 6): SOBA, stocBiO, AmIGO and SABA on the finite-sum quadratic at
d = 100, R = 256 (FiniteSumOracle, batch 64, sampler "uniform") at least 1.7x faster per
seed-iteration on 2 threads than on 1. The other kernels are reported with their ratio.

Method (ratios from one run, one process):
- each kernel iteration draws all of its random numbers first, serially in the reference's
  order, then runs every replica's whole iteration (oracle rows and update) in one ``prange``
  region (docs: algorithms/_baselines_numba.py); ``numba.set_num_threads(k)`` selects 1 or 2
  threads in the same process;
- per algorithm: a warm-up run (compilation or cache load, timed and printed apart), then
  runs of T and of 0 iterations on 1 and on 2 threads, interleaved (the load of a shared
  machine moves within seconds); per seed-iteration = (best of T - best of 0) / (T R).
  The trace's closed-form metrics (∇φ, y* at the recorded points) are switched off on the
  instances, as in bench_baselines.py;
- drawing share: the time of one iteration's draws alone, by the kernel's own draw function
  (e.g. ``soba_numba.soba_draws``, default settings: 10 inner/Neumann/HIA steps), over the
  1-thread iteration time; with a serial share s, 2 threads give at most
  1 / (s + (1 - s) / 2) (Amdahl);
- the load average is printed: with more runnable processes than cores, a parallel region
  waits for its slowest thread and, with the OpenMP layer, idle workers spin and slow the
  serial parts too; on a shared machine only the ratios of an idle moment mean anything.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

# One BLAS thread: after each BLAS call in Python (problem set-up, the trace), OpenBLAS's
# worker threads busy-wait for about 0.1 s (its THREAD_TIMEOUT) and hold the core that
# Numba's second thread needs; a kernel run of a few tens of ms then measures that contention,
# not the kernel (measured here, SOBA d = 100, R = 256 after one 300x300 product: 2 threads
# 0.9-1.05x of 1 thread; with OPENBLAS_NUM_THREADS=1: 1.45-2.0x).
_ENV = {"NUMBA_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1"}
if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in _ENV.items()):
    sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                            env={**os.environ, **_ENV}, check=False).returncode)

import numba  # noqa: E402
import numpy as np  # noqa: E402

from refbilevel.backends import implementation  # noqa: E402
from refbilevel.oracles.finite_sum import FiniteSumOracle  # noqa: E402
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig  # noqa: E402
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic  # noqa: E402
from refbilevel.problems.quadratic import StronglyConvexQuadratic  # noqa: E402

TARGET = ("soba", "stocbio", "amigo", "saba")
OTHERS = ("bsa", "ttsa", "ma_soba", "f2sa")
STEPS = 10  # the default inner, Neumann and HIA steps of every baseline


def _draws(name: str):
    """One iteration's draws by the kernel's own draw function, with the default settings:
    f(rng, P, noise, R, d) (d = d_x = d_y)."""
    from refbilevel.algorithms import (
        bsa_numba,
        f2sa_numba,
        saba_numba,
        soba_numba,
        stocbio_numba,
        ttsa_numba,
    )
    n = STEPS

    def soba(rng, P, nz, R, d):
        # SOBA refills buffers it allocates once per run; allocating them here as well, as
        # the other kernels' draw functions allocate theirs, overstates the drawing slightly
        soba_numba.soba_draws(rng, P, nz, soba_numba.soba_draw_buffers(P, R, d, d))
    return {
        "soba": soba,
        "ma_soba": soba,
        "stocbio": lambda rng, P, nz, R, d: stocbio_numba.stocbio_draws(rng, P, nz, R, d, d,
                                                                         n, n),
        "amigo": lambda rng, P, nz, R, d: stocbio_numba.stocbio_draws(rng, P, nz, R, d, d, n, n),
        "saba": lambda rng, P, nz, R, d: saba_numba.saba_draws(rng, P, R),
        "bsa": lambda rng, P, nz, R, d: bsa_numba.bsa_draws(rng, P, nz, R, d, d, n, n, 1),
        "ttsa": lambda rng, P, nz, R, d: ttsa_numba.ttsa_draws(rng, P, nz, R, d, d, n, 1),
        "f2sa": lambda rng, P, nz, R, d: f2sa_numba.f2sa_draws(rng, P, nz, R, d, d, n, False),
    }[name]


def _times(run, make_oracle, x0, y0, T, repeat) -> tuple[dict[int, float], float]:
    """(seconds of T iterations on 1 and 2 threads, seconds of the warm-up run): the best of
    ``repeat`` runs of T minus the best of ``repeat`` runs of 0 iterations, the thread counts
    interleaved run by run so that both see the same machine load."""
    def once(T):
        o = make_oracle()
        t0 = time.perf_counter()
        run(o, x0.copy(), y0.copy(), T=T, record_every=max(T, 1))
        return time.perf_counter() - t0

    warm = once(1)  # compile or load from the cache
    best = {(k, n): float("inf") for k in (1, 2) for n in (0, T)}
    for _ in range(repeat):
        for k in (1, 2):
            numba.set_num_threads(k)
            for n in (0, T):
                best[k, n] = min(best[k, n], once(n))
    numba.set_num_threads(2)
    return {k: best[k, T] - best[k, 0] for k in (1, 2)}, warm


def _draw_seconds(name, make_oracle, R: int, d: int, repeat: int, T: int) -> float:
    """Seconds of one iteration's random draws alone (the kernel's draw function, compiled;
    best of ``repeat`` runs of T iterations' draws)."""
    from refbilevel.algorithms._baselines_numba import kernel_inputs

    o = make_oracle()
    k = kernel_inputs(o, name, R)
    draw = _draws(name)
    draw(o.rng, k.P, k.noise, R, d)  # compile or load
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(T):
            draw(o.rng, k.P, k.noise, R, d)
        best = min(best, (time.perf_counter() - t0) / T)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    args = ap.parse_args(argv)
    if numba.config.NUMBA_NUM_THREADS < 2:
        print("bench_replicas: needs NUMBA_NUM_THREADS >= 2", file=sys.stderr)
        return 2
    d, R, B = 100, 256, 64
    T, repeat = (10, 3) if args.quick else (40, 5)
    fsq = FiniteSumQuadratic(n_inner=1024, n_outer=1024, d_inner=d, d_outer=d, reg=0.1, seed=0)
    quad = StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.2, L=1.0, seed=0, structured=True)
    for P in (fsq, quad):  # the trace's closed-form metrics are not the kernels' time
        P._grad_phi = np.zeros_like
        P._y_star = np.zeros_like  # d_x = d_y here
    cases = [(name, "finite-sum", fsq, lambda: FiniteSumOracle(fsq, B, np.random.default_rng(0)))
             for name in TARGET + OTHERS]
    cases.append(("soba", "gaussian-householder", quad,
                  lambda: GaussianOracle(quad, NoiseConfig.uniform(0.1), np.random.default_rng(0))))
    print(f"d = {d}, R = {R}, batch {B}, T = {T}, best of {repeat}; ms per seed-iteration "
          f"on 1 and 2 Numba threads (numba.set_num_threads, one process); load average at "
          f"start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    head = (f"{'algorithm':<9} {'oracle':<21} {'1 thread':>9} {'2 threads':>9} {'ratio':>6} "
            f"{'drawing':>8} {'Amdahl':>7}  target 1.7x  (warm-up s)")
    print(head)
    print("-" * len(head))
    ok = True
    for name, kind, P, make in cases:
        run = implementation("algorithm", name, "numba")
        x0 = np.tile(getattr(P, "x0", np.zeros(P.d_x)), (R, 1))
        y0 = np.tile(getattr(P, "y0", np.zeros(P.d_y)), (R, 1))
        secs, warm = _times(run, make, x0, y0, T, repeat)
        times = {k: t / (T * R) for k, t in secs.items()}
        ratio = times[1] / times[2]
        share = min(_draw_seconds(name, make, R, d, repeat, T) / (times[1] * R), 1.0)
        bound = 1.0 / (share + (1.0 - share) / 2.0)
        target = ""
        if name in TARGET and kind == "finite-sum":
            met = ratio >= 1.7
            ok &= met
            target = "met" if met else "NOT met"
        print(f"{name:<9} {kind:<21} {1e3 * times[1]:9.4f} {1e3 * times[2]:9.4f} "
              f"{ratio:5.2f}x {100 * share:7.2f}% {bound:6.2f}x  {target:<11}  ({warm:.1f})",
              flush=True)
    print(f"threading layer {numba.threading_layer()}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores: a 2-thread speed-up needs 2 idle cores (one run on a shared "
          "machine: compare the ratios, not the absolute times)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
