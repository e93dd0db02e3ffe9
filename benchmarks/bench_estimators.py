"""Time per hypergradient estimate, NumPy reference vs Numba kernels, from ONE run.

    python benchmarks/bench_estimators.py [--quick] [--min-time 0.2] [--repeats 3]

For each estimator (Neumann fixed/randomized, linear-system SGD, CG, finite-difference
hypergradient and HVP) at d in {10, 100, 1000} (d_x = d_y = d) and R in {1, 1000} replicas
per call, on StronglyConvexQuadratic with Householder factors (O(d) products, so d = 1000
stays cheap) and Gaussian noise std 0.1. Each cell reports the median over ``repeats`` of the
mean time per call over a loop of at least ``min_time`` seconds, for both backends, and the
ratio NumPy / Numba (> 1: Numba faster). Both backends run in this process on the same
machine, one after the other, so the ratios are comparable.

Compile time is excluded from the cells and reported separately: the first call of each
Numba kernel variant (serial for small batches, parallel for large ones, see
refbilevel/backends/numba_problems.py:jit_pair) minus a steady-state call, together with
whether it was served from Numba's on-disk cache (then it is a load time, not a compile
time). For true compile times run with an empty cache:
``NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/bench_estimators.py``. The first kernel's
figure includes compiling (or loading) the shared problem primitives.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from refbilevel.estimators import finite_difference as fd
from refbilevel.estimators import finite_difference_numba as fdn
from refbilevel.estimators import linear_system as ls
from refbilevel.estimators import linear_system_numba as lsn
from refbilevel.estimators import neumann as nm
from refbilevel.estimators import neumann_numba as nmn
from refbilevel.estimators._common import parallel_worth_it
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.quadratic import StronglyConvexQuadratic

Q = 10  # Neumann terms / SGD steps / CG iterations


def estimators():
    """name -> (numpy callable, numba callable, numba kernel pair); callables take
    (oracle, problem, x, y, v)."""
    return {
        "neumann fixed Q=10": (
            lambda o, P, x, y, v: nm.neumann_hypergradient(o, x, y, Q),
            lambda o, P, x, y, v: nmn.neumann_hypergradient_numba(o, x, y, Q),
            (nmn.neumann_kernel, nmn.neumann_kernel_parallel)),
        "neumann randomized Q=10": (
            lambda o, P, x, y, v: nm.neumann_hypergradient(o, x, y, Q, truncation="randomized"),
            lambda o, P, x, y, v: nmn.neumann_hypergradient_numba(o, x, y, Q,
                                                                  truncation="randomized"),
            (nmn.neumann_kernel, nmn.neumann_kernel_parallel)),
        "LS-SGD 10 steps": (
            lambda o, P, x, y, v: ls.linear_system_sgd(o, x, y, Q, 0.5),
            lambda o, P, x, y, v: lsn.linear_system_sgd_numba(o, x, y, Q, 0.5),
            (lsn.ls_sgd_kernel, lsn.ls_sgd_kernel_parallel)),
        "CG 10 iterations": (
            lambda o, P, x, y, v: ls.linear_system_cg(P, x, y, Q),
            lambda o, P, x, y, v: lsn.linear_system_cg_numba(P, x, y, Q),
            (lsn.ls_cg_kernel, lsn.ls_cg_kernel_parallel)),
        "FD hypergradient": (
            lambda o, P, x, y, v: fd.fd_hypergradient(o, x, y, v, 1e-3),
            lambda o, P, x, y, v: fdn.fd_hypergradient_numba(o, x, y, v, 1e-3),
            (fdn.fd_kernel, fdn.fd_kernel_parallel)),
        "FD HVP": (
            lambda o, P, x, y, v: fd.fd_hvp(o, x, y, v, 1e-3),
            lambda o, P, x, y, v: fdn.fd_hvp_numba(o, x, y, v, 1e-3),
            (fdn.fd_kernel, fdn.fd_kernel_parallel)),
    }


def per_call(fn, min_time: float, repeats: int) -> float:
    """Median over ``repeats`` of the mean time of a loop lasting >= min_time."""
    fn()  # warm (allocations, caches)
    out = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        out.append(el / n)
    return float(np.median(out))


def _cache_hits(dispatcher) -> int:
    return sum(dispatcher.stats.cache_hits.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d in {10, 100}, fewer repeats")
    ap.add_argument("--min-time", type=float, default=0.1, help="seconds per timing loop")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    dims = (10, 100) if args.quick else (10, 100, 1000)
    reps = (1, 1000)
    repeats = 1 if args.quick else args.repeats
    t_start = time.perf_counter()
    problems = {d: StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.1, L=1.0, seed=0, structured=True)
                for d in dims}
    ests = estimators()
    compile_rows = []
    rows = []
    for name, (f_np, f_nb, (k_serial, k_parallel)) in ests.items():
        for d in dims:
            P = problems[d]
            for R in reps:
                rng = np.random.default_rng(0)
                x = rng.standard_normal((R, d))
                y = P.y_star(x) + 0.1 * rng.standard_normal((R, d))
                v = rng.standard_normal((R, d))
                o = GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(1))
                kernel = k_parallel if parallel_worth_it(R, d) else k_serial
                if not kernel.signatures:  # first use of this kernel variant: time it
                    t0 = time.perf_counter()
                    f_nb(o, P, x, y, v)
                    first = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    f_nb(o, P, x, y, v)
                    steady = time.perf_counter() - t0
                    variant = "parallel" if kernel is k_parallel else "serial"
                    compile_rows.append((name, variant, first - steady,
                                         "cache load" if _cache_hits(kernel) else "compile"))
                t_np = per_call(lambda f=f_np, o=o, P=P, x=x, y=y, v=v: f(o, P, x, y, v),
                                args.min_time, repeats)
                t_nb = per_call(lambda f=f_nb, o=o, P=P, x=x, y=y, v=v: f(o, P, x, y, v),
                                args.min_time, repeats)
                rows.append((name, d, R, t_np, t_nb))
    print(f"# refbilevel estimator benchmark ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, numba threads: {_numba_threads()})")
    print("# problem: StronglyConvexQuadratic (Householder factors), noise std 0.1; "
          "time per estimate (all R replicas)\n")
    print("| estimator | d | R | NumPy | Numba | NumPy/Numba |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, d, R, t_np, t_nb in rows:
        print(f"| {name} | {d} | {R} | {_fmt(t_np)} | {_fmt(t_nb)} | {t_np / t_nb:.1f}x |")
    print("\n| Numba kernel (first call) | variant | first call - steady call | source |")
    print("|---|---|---:|---|")
    for name, variant, dt, src in compile_rows:
        print(f"| {name} | {variant} | {dt:.2f} s | {src} |")
    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s")
    return 0


def _fmt(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.1f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _numba_threads() -> int:
    import numba

    return numba.get_num_threads()


if __name__ == "__main__":
    raise SystemExit(main())
