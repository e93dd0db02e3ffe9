"""SID at t = k = J = 100 on the golden instance: time per estimate, NumPy reference vs
Numba kernel, against the random-number floor, all measured in one run (docs/sid_bsgm.rst
§4.2, §14.1; acceptance: Numba ≥ 50x faster than NumPy at R = 1, no slower at R = 1000,
within 2x of the floor).

Run: python benchmarks/bench_sid.py [--repeats 7]

Setting: golden instance of docs/sid_bsgm.rst §14.1 (d = 3, n = 2, s_Z = s_Y = 0.1, s_ε = 0.5,
Σ_ξ = I), η_i = 3/(3+i), w_0 = 0. R replicas along the leading axis, one Generator.

Floor: the least time to draw exactly the standard normals one SID call consumes (t·18 for
the LL, J·5 for ξ, k·9 for the LS, J·6 for ∂₂Φ: 3800 per replica) from the same Generator:
the fastest of a bulk call, chunked calls and a compiled scalar loop (random_floor.py).
Compile time (first call; a cache load when Numba's on-disk cache is warm) is
measured separately and excluded from the per-estimate timings. Timings are the minimum
over ``--repeats`` repetitions of a loop sized to run ≈ 0.1 s or more, the three timings
interleaved within each repetition.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from random_floor import floor_methods  # benchmarks/ (first on sys.path when run)

from refbilevel.estimators.sid import sid, sid_normals_per_replica
from refbilevel.estimators.sid_numba import sid_numba
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import golden_instance
from refbilevel.sid_moments import StepSchedule

T = K = J = 100
STEPS = StepSchedule.decreasing(3.0, 3.0)


def per_call(fns: dict, repeats: int, min_time: float = 0.1) -> dict:
    """Seconds per call of each function: the minimum over ``repeats`` of the mean of a
    timed loop. The functions are interleaved within each repetition, so that load changes
    on a shared machine affect them alike (the ratios are what this script reports)."""
    loops = {}
    for name, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        loops[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-9)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / loops[name])
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)

    g = golden_instance()
    rng = np.random.default_rng(20261123)
    oracle = ContractionOracle(g.problem, rng)
    lam = g.lam
    per_replica = sid_normals_per_replica(oracle, T, K, J)

    t0 = time.perf_counter()
    sid_numba(oracle, lam, 2, 2, 1, steps=STEPS)
    compile_s = time.perf_counter() - t0

    rows = []
    for R in (1, 1000):
        floors = {f"floor {k}": f for k, f in floor_methods(rng, per_replica * R).items()}
        t = per_call({
            "numpy": lambda R=R: sid(oracle, lam, T, K, J, steps=STEPS, replicas=R),
            "numba": lambda R=R: sid_numba(oracle, lam, T, K, J, steps=STEPS, replicas=R),
            **floors,
        }, args.repeats)
        how = min(floors, key=t.__getitem__)
        rows.append((R, t["numpy"], t["numba"], t[how], how.split()[1]))

    print(f"SID on the golden instance (docs/sid_bsgm.rst §14.1), t = k = J = {T}, eta_i = "
        "3/(3+i); "
          f"{per_replica} standard normals per replica")
    print(f"Numba first call (compile or cache load), excluded below: {compile_s:.2f} s\n")
    print("| R | NumPy (ms) | Numba (ms) | floor (ms) | floor by | NumPy/Numba | Numba/floor |")
    print("|---|---|---|---|---|---|---|")
    for R, t_np, t_nb, t_fl, how in rows:
        print(f"| {R} | {1e3 * t_np:.3f} | {1e3 * t_nb:.3f} | {1e3 * t_fl:.3f} | {how} | "
              f"{t_np / t_nb:.1f}x | {t_nb / t_fl:.2f}x |")
    print("\nfloor = the fastest way to draw the same count of standard normals "
          "(benchmarks/random_floor.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
