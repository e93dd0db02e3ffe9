"""UniBiO Section 6 synthetic run: time per seed, NumPy vs Numba vs a plain-Python scalar
loop, against the random-number floor, all measured in one run (issue: "refbilevel bench
algorithms"; docs/unibio.rst §7.1).

Run: python benchmarks/bench_unibio.py [--seeds 1000] [--python-seeds 3]

Setting: Example 3, T = 500, K = 100 (also at t = 0), I = 2, T_1 = 5, D_1 = 1, gamma_1 = 1,
beta = 0.9, eta by p (docs/unibio.rst §7.1); LL gradient noise std 1 (the released script), UL
oracle
noise std 0.01. Replicas = seeds along the leading axis (one Generator per backend run).

Floor: the least time to draw exactly the standard normals R seeds' runs consume, per seed:
the fastest of a bulk call, chunked calls and a compiled scalar loop (random_floor.py; one
bulk call of R·n numbers also pays page faults, which overstated the floor ~2x before).
Compile time is measured separately (first call) and excluded from the per-seed timings.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from random_floor import normal_floor  # benchmarks/ (first on sys.path when run)

from refbilevel.algorithms.unibio import run_unibio, tuned_params, unibio_oracle_counts
from refbilevel.algorithms.unibio_numba import run_unibio_numba
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.unibio_example3 import UniBiOExample3

NOISE = NoiseConfig(grad_y_g=1.0, grad_x_f=0.01, f_u=0.01, gen_hvp=0.01, jvp=0.01)


def python_scalar_unibio(p: int, rng: np.random.Generator) -> float:
    """The same run (same oracle calls, same noise) as a plain-Python scalar loop."""
    prm = tuned_params(p)
    tau = 2 * (p - 1) / p
    epochs = [(e.length, e.radius, e.step) for e in prm.epochs(False, p)]
    x, y, m = 1.0, 1.0, 0.0
    alpha = 1.0  # 1/C, C = 1 for Example 3
    normal = rng.standard_normal
    assert tau > 0

    def epoch_sgd(x, w):
        for length, rad, gam in epochs:
            c, acc = w, 0.0
            for _ in range(length):
                acc += w
                g = math.copysign(abs(w) ** (p - 1), w) - math.sin(x) + NOISE.grad_y_g * normal()
                w = min(max(w - gam * g, c - rad), c + rad)
            w = acc / length
        return w

    y = epoch_sgd(x, y)
    for t in range(prm.T):
        if t > 0 and t % prm.I == 0:
            y = epoch_sgd(x, y)
        gx = 0.0 + NOISE.grad_x_f * normal()
        u = math.copysign(abs(y) ** (p - 1), y)
        v = (math.cos(u) if abs(u) <= math.pi / 2 else 0.0) + NOISE.f_u * normal()
        s = v
        for _ in range(prm.Q):
            v = v - alpha * (v + NOISE.gen_hvp * normal())  # H = 1
            s += v
        g = gx - (-math.cos(x) * alpha * s + NOISE.jvp * normal())
        m = prm.beta * m + (1 - prm.beta) * g
        x = x - prm.eta * m / abs(m)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--python-seeds", type=int, default=3)
    ap.add_argument("--numpy-seeds", type=int, default=None,
                    help="replicas for the NumPy run (default: --seeds)")
    args = ap.parse_args()
    R = args.seeds
    Rn = args.numpy_seeds or R
    print(f"UniBiO Section 6 (Example 3, T=500, K=100, I=2); per-seed times; "
          f"numba/numpy R={R}/{Rn}, python loop {args.python_seeds} seeds")
    hdr = (f"{'p':>2} {'normals':>8} {'floor':>9} {'python':>9} {'numpy':>9} {'numba':>9} "
           f"{'py/numba':>9} {'np/numba':>9} {'numba/floor':>11} {'py/floor':>9} "
           f"{'floor by':>8} {'compile':>8}")
    print(hdr)
    for p in (2, 4, 6, 8):
        P = UniBiOExample3(p)
        prm = tuned_params(p)
        n_normals = unibio_oracle_counts(prm, p)
        n = sum(v for k, v in n_normals.items() if k != "samples")
        floor_s, floor_how = normal_floor(np.random.default_rng(0), n * R)
        floor = floor_s / R
        t0 = time.perf_counter()
        run_unibio_numba(GaussianOracle(P, NOISE, np.random.default_rng(1)), np.ones((1, 1)),
                         np.ones((1, 1)), prm)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_unibio_numba(GaussianOracle(P, NOISE, np.random.default_rng(2)), np.ones((R, 1)),
                         np.ones((R, 1)), prm, record_every=prm.T)
        t_numba = (time.perf_counter() - t0) / R
        t0 = time.perf_counter()
        run_unibio(GaussianOracle(P, NOISE, np.random.default_rng(2)), np.ones((Rn, 1)),
                   np.ones((Rn, 1)), prm, record_every=prm.T)
        t_numpy = (time.perf_counter() - t0) / Rn
        rng = np.random.default_rng(3)
        t0 = time.perf_counter()
        for _ in range(args.python_seeds):
            python_scalar_unibio(p, rng)
        t_py = (time.perf_counter() - t0) / args.python_seeds
        print(f"{p:>2} {n:>8} {floor * 1e6:>7.0f}us {t_py * 1e3:>7.1f}ms {t_numpy * 1e3:>7.2f}ms "
              f"{t_numba * 1e6:>7.0f}us {t_py / t_numba:>9.0f} {t_numpy / t_numba:>9.1f} "
              f"{t_numba / floor:>11.2f} {t_py / floor:>9.0f} {floor_how:>8} "
              f"{compile_s:>7.1f}s")
    print("py/floor bounds py/numba for any implementation that draws the same random numbers "
          "(the parity contract): no kernel can be faster than drawing them.")


if __name__ == "__main__":
    main()
