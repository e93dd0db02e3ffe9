"""Cost per oracle call of the Numba kernels, per problem family, kernel and dimension, against
the random-number floor (O(d) families) and NumPy's BLAS on one thread (dense families).

    python benchmarks/bench_oracles.py [--quick]      (or: refbilevel bench oracles)

Targets (issue #14, item 5): an O(d) family (UniBiO Example 3, separable, Householder-
structured quadratic, BO-REP's P1/P2 at their sizes) costs at most 3x the floor per call; a
family with dense d x d matrices at most 2x the same matrix-vector products done by BLAS.

Method (docs/design.rst: ratios from one run; the machine is shared, so absolute times move
between runs, the ratios of one run are what counts):
- one Numba thread and one BLAS thread (OPENBLAS_NUM_THREADS=1 etc. are set, re-executing the
  script if it was started without them): per-core costs;
- kernels: ``neumann`` (the Neumann estimator, fixed truncation, Q = 10: ∇_x F, ∇_y F, 10 HVPs,
  JVP per replica), ``soba`` (SOBA on a GaussianOracle: ∇_y G, HVP, JVP, ∇_y F, ∇_x F per
  iteration), ``borep`` for P1/P2. All noise stds are 0.1, so every call draws its normals;
- per kernel, family and d: R replicas, a warm-up call (cache load), then the best of 3 timed
  calls (the algorithm traces' closed-form metrics are switched off on the instances, as in
  bench_baselines.py); ns/call = time / (R x oracle calls); ns/normal = time / normals drawn;
- floor: the fastest way to draw the same count of normals (random_floor.normal_floor);
  ``x floor`` = kernel time / floor time;
- BLAS (dense families): the kernel's d x d matrix-vector products (``GEMV``: per primitive,
  ``CALLS``: per kernel run) timed as NumPy gemv calls one vector at a time (``M @ v``; the
  loop's Python overhead, timed on 1 x 1 matrices, subtracted), and the ratio kernel
  arithmetic / BLAS, where kernel arithmetic = kernel time - floor time (the normals are
  drawn either way). Batched GEMM (all replicas at once) is faster still, but it is not the
  products the kernels do: each replica's vector depends on its own previous call.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

_SINGLE = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NUMBA_NUM_THREADS": "1"}

if __name__ == "__main__" and any(os.environ.get(k) != v for k, v in _SINGLE.items()):
    # BLAS reads its thread count at import: run again with one thread everywhere
    sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
                            env={**os.environ, **_SINGLE}, check=False).returncode)

import numpy as np  # noqa: E402
from random_floor import normal_floor  # noqa: E402

from refbilevel.algorithms.borep import borep_params  # noqa: E402
from refbilevel.backends import implementation  # noqa: E402
from refbilevel.backends.numba_problems import family_of  # noqa: E402
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig  # noqa: E402
from refbilevel.problems.quadratic import StronglyConvexQuadratic  # noqa: E402
from refbilevel.problems.relaxed_smooth import RelaxedSmoothP1, RelaxedSmoothP2  # noqa: E402
from refbilevel.problems.unibio_example3 import UniBiOExample3  # noqa: E402
from refbilevel.problems.uniformly_convex import (  # noqa: E402
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)

STD = 0.1
Q = 10
T_SOBA = 20


def _problems(quick: bool):
    """(problem, dense?) per (family, d)."""
    small = (10, 100) if quick else (10, 100, 1000)
    dense = (30, 100) if quick else (30, 100, 300)
    out = [(UniBiOExample3(4), False)]
    out += [(SeparableUniformlyConvex(d=d, p=4.0), False) for d in small]
    out += [(StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.2, L=1.0, seed=0, structured=True),
             False) for d in small]
    out += [(RelaxedSmoothP1(d_x=5, d_y=8), False), (RelaxedSmoothP2(d_x=4, d_y=6), False)]
    out += [(StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.2, L=1.0, seed=0, structured=False),
             True) for d in dense]
    out += [(NonSeparableUniformlyConvex(d_y=d, p=4.0, seed=1), True) for d in dense]
    out += [(RelaxedSmoothP1(d_x=d, d_y=d), True) for d in dense[1:]]
    return out


def _start(P, R, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (R, P.d_x))
    y = rng.uniform(0.2, 1.0, (R, P.d_y)) * rng.choice([-1, 1], (R, P.d_y))
    return x, y


def _kernels(P):
    """name -> (run(oracle, x, y), oracle calls per replica, normals per replica)."""
    dx, dy = P.d_x, P.d_y
    neumann = implementation("estimator", "neumann", "numba")
    soba = implementation("algorithm", "soba", "numba")
    out = {
        "neumann": (lambda o, x, y: neumann(o, x, y, Q, alpha=0.1), Q + 3,
                    2 * dx + (Q + 1) * dy),
    }
    T = T_SOBA
    out["soba"] = (lambda o, x, y: soba(o, x, y, T=T, record_every=T), 5 * T,
                   T * (3 * dy + 2 * dx))
    if isinstance(P, (RelaxedSmoothP1, RelaxedSmoothP2)):
        borep = implementation("algorithm", "borep", "numba")
        p = borep_params(P, mode="tuned", T=T)
        calls = borep_calls(p)
        out["borep"] = (lambda o, x, y: borep(o, x, y, params=p), calls[0], calls[1](dx, dy))
    return out


def borep_calls(p):
    """(oracle calls, normals(dx, dy)) per replica of one BO-REP run with params p."""
    ll = p.epoch_T1 * (2**p.epoch_k - 1) + (max(p.T - 1, 0) // p.I) * p.N
    return 4 * p.T + ll, lambda dx, dy: ll * dy + p.T * (2 * dx + 2 * dy)


#: matrix-vector products (d x d) per primitive call, per dense family
GEMV = {
    "quadratic-dense": {"grad_x_f": 0, "grad_y_f": 2, "grad_y_g": 4, "hvp": 2, "jvp": 2},
    "nonseparable-uniformly-convex": {"grad_x_f": 0, "grad_y_f": 0, "grad_y_g": 2, "hvp": 1,
                                      "jvp": 1},
    "relaxed-smooth-p1": {"grad_x_f": 0, "grad_y_f": 0, "grad_y_g": 2, "hvp": 1, "jvp": 1},
}
#: primitive calls per replica of one kernel run
CALLS = {"neumann": {"grad_x_f": 1, "grad_y_f": 1, "hvp": Q, "jvp": 1},
         "soba": {"grad_y_g": T_SOBA, "hvp": T_SOBA, "jvp": T_SOBA, "grad_y_f": T_SOBA,
                  "grad_x_f": T_SOBA}}


def _gemv_seconds(d: int, R: int, repeat=3) -> float:
    """Seconds of one d x d matrix-vector product by NumPy (gemv), from a loop over R vectors,
    minus the same loop's Python overhead (timed on a 1 x 1 matrix)."""
    rng = np.random.default_rng(0)
    M = rng.standard_normal((d, d))
    V = rng.standard_normal((R, d))

    def loop(M, V):
        t0 = time.perf_counter()
        for r in range(V.shape[0]):
            M @ V[r]
        return time.perf_counter() - t0

    best = min(loop(M, V) for _ in range(repeat))
    over = min(loop(np.ones((1, 1)), np.ones((R, 1))) for _ in range(repeat))
    return max(best - over, 0.0) / R


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller dimensions")
    ap.add_argument("--replicas", type=int, default=32)
    args = ap.parse_args(argv)
    R = args.replicas
    rows = []
    for P, dense in _problems(args.quick):
        fam = family_of(P).name
        # the algorithm traces' closed-form metrics (∇φ, y* at the recorded points: a Newton
        # or linear solve per replica) are not the kernels' time: switched off on the instance
        P._grad_phi = np.zeros_like
        P._y_star = lambda x, P=P: np.zeros(np.shape(x)[:-1] + (P.d_y,))
        gemv = _gemv_seconds(P.d_y, R) if dense else None
        for kname, (run, calls, normals) in _kernels(P).items():
            x, y = _start(P, R)

            def once(run=run, x=x, y=y, P=P):
                o = GaussianOracle(P, NoiseConfig.uniform(STD), np.random.default_rng(1))
                t0 = time.perf_counter()
                run(o, x.copy(), y.copy())
                return time.perf_counter() - t0

            once()  # compile or load from the cache
            t = min(once() for _ in range(3))
            n_normals = R * normals
            floor, how = normal_floor(np.random.default_rng(2), n_normals)
            per_call = t / (R * calls)
            row = {"family": fam, "d": P.d_y, "kernel": kname, "ns/call": 1e9 * per_call,
                   "ns/normal": 1e9 * t / n_normals, "floor ns/call": 1e9 * floor / (R * calls),
                   "x floor": t / floor, "floor by": how}
            if gemv is not None and kname in CALLS:
                n_gemv = sum(GEMV[fam][k] * n for k, n in CALLS[kname].items())
                blas = n_gemv * gemv / calls  # per oracle call
                arith = max(t - floor, 0.0) / (R * calls)  # the normals are drawn either way
                row["BLAS ns/call"] = 1e9 * blas
                row["x BLAS"] = arith / blas if blas > 0 else float("nan")
            rows.append(row)
            print(_fmt(row), flush=True)
    _verdict(rows)
    return 0


def _fmt(row) -> str:
    s = (f"{row['family']:<30} d={row['d']:<5} {row['kernel']:<8} "
         f"{row['ns/call']:9.0f} ns/call {row['ns/normal']:7.1f} ns/normal "
         f"floor {row['floor ns/call']:8.0f} ns/call ({row['floor by']})  "
         f"{row['x floor']:5.2f}x floor")
    if "x BLAS" in row:
        s += f"  BLAS {row['BLAS ns/call']:9.0f} ns/call  {row['x BLAS']:5.2f}x BLAS"
    return s


def _verdict(rows) -> None:
    od = [r for r in rows if "x BLAS" not in r]
    dense = [r for r in rows if "x BLAS" in r]
    worst_od = max(od, key=lambda r: r["x floor"])
    print(f"\nO(d) families: worst {worst_od['x floor']:.2f}x the floor "
          f"({worst_od['family']}, d={worst_od['d']}, {worst_od['kernel']}); target <= 3x: "
          f"{'met' if worst_od['x floor'] <= 3 else 'NOT met'}")
    if dense:
        worst = max(dense, key=lambda r: r["x BLAS"])
        print(f"dense families: worst {worst['x BLAS']:.2f}x one-thread BLAS "
              f"({worst['family']}, d={worst['d']}, {worst['kernel']}); target <= 2x: "
              f"{'met' if worst['x BLAS'] <= 2 else 'NOT met'}")
    print("(one run on a shared machine: compare the ratios, not the absolute times)")


if __name__ == "__main__":
    sys.exit(main())
