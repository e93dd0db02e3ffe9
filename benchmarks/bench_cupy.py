"""CuPy estimators on a GPU against the NumPy reference and the Numba kernels, from ONE run.

    python benchmarks/bench_cupy.py [--quick] [--min-time 0.2] [--no-numba]

For each estimator with a CuPy implementation (Neumann randomized, linear-system SGD, CG,
finite-difference hypergradient) on :class:`~refbilevel.problems.quadratic.
StronglyConvexQuadratic` (dense factors, so every oracle call is a batched matrix product, and
Householder factors, O(d) per call) at d in {100, 1000} and R in {1e3, 1e4} replicas, it prints
the time per estimate on NumPy, Numba and CuPy (``noise="device"``: the normals are drawn on the
GPU, the configuration a GPU user runs) and the ratios. Before timing, every cell checks that
CuPy with ``noise="host"`` reproduces the NumPy reference to 1e-10 relative (the X4 contract),
so a fast but wrong kernel cannot enter the table. GPU times are taken after a device
synchronize, so they include the kernels' execution, not only their launch.

Without CuPy or a GPU the script says why and exits 0 (nothing to measure).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from refbilevel.backends import backend_status, implementation
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.quadratic import StronglyConvexQuadratic

Q = 10  # Neumann terms / SGD steps / CG iterations
PARITY_RTOL = 1e-10  # host-noise CuPy vs NumPy: same numbers, float64 rounding only


def cases():
    """name -> (registered estimator name, call(f, oracle, problem, x, y, v, backend))."""
    def neumann(f, o, P, x, y, v, **kw):
        return f(o, x, y, Q, truncation="randomized", **kw)

    def ls_sgd(f, o, P, x, y, v, **kw):
        return f(o, x, y, Q, 0.5, **kw)

    def cg(f, o, P, x, y, v, **kw):
        return f(P, x, y, Q)

    def fd(f, o, P, x, y, v, **kw):
        return f(o, x, y, v, 1e-3, **kw)

    return {"neumann randomized Q=10": ("neumann", neumann, True),
            "LS-SGD 10 steps": ("linear_system_sgd", ls_sgd, True),
            "CG 10 iterations": ("linear_system_cg", cg, False),
            "FD hypergradient": ("fd_hypergradient", fd, True)}


def timed(fn, min_time: float, sync) -> float:
    fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        sync()
        n += 1
        if time.perf_counter() - t0 >= min_time:
            return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="d = 100 only")
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--no-numba", action="store_true", help="skip the Numba column")
    args = ap.parse_args(argv)
    ok, why = backend_status("cupy")
    if not ok:
        print(f"bench_cupy: nothing to measure: {why}")
        return 0
    import cupy

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    print(f"# CuPy {cupy.__version__} on {props['name'].decode()}; numpy {np.__version__}")

    def sync():
        dev.synchronize()

    def nosync():
        pass

    dims = (100,) if args.quick else (100, 1000)
    reps = (1000, 10000)
    # rows are printed as they are measured, so a run stopped early still reports them
    print("\n| estimator | factors | d | R | NumPy | Numba | CuPy (device noise) | "
          "NumPy/CuPy | Numba/CuPy | host-noise parity |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for label, (name, call, noisy) in cases().items():
        for structured in (False, True):
            for d in dims:
                P = StronglyConvexQuadratic(d_x=d, d_y=d, mu=0.1, L=1.0, seed=0,
                                            structured=structured)
                for R in reps:
                    rng = np.random.default_rng(0)
                    x = rng.standard_normal((R, d))
                    y = P.y_star(x) + 0.1 * rng.standard_normal((R, d))
                    v = rng.standard_normal((R, d))

                    def oracle(seed=1, P=P):
                        return GaussianOracle(P, NoiseConfig.uniform(0.1),
                                              np.random.default_rng(seed))

                    f_np = implementation("estimator", name, "numpy")
                    f_cp = implementation("estimator", name, "cupy")
                    ref = call(f_np, oracle(), P, x, y, v).value
                    host_kw = {"noise": "host"} if noisy else {}
                    got = cupy.asnumpy(call(f_cp, oracle(), P, x, y, v, **host_kw).value)
                    err = float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))
                    if not err <= PARITY_RTOL:
                        print(f"PARITY FAILED: {label} d={d} R={R} structured={structured}: "
                              f"max rel diff {err:.2e} > {PARITY_RTOL}")
                        return 1
                    o_np, o_cp = oracle(), oracle()
                    xd, yd, vd = cupy.asarray(x), cupy.asarray(y), cupy.asarray(v)
                    dev_kw = {"noise": "device"} if noisy else {}
                    t_np = timed(partial(call, f_np, o_np, P, x, y, v), args.min_time, nosync)
                    t_cp = timed(partial(call, f_cp, o_cp, P, xd, yd, vd, **dev_kw),
                                 args.min_time, sync)
                    t_nb = float("nan")
                    if not args.no_numba and name in _numba_names():
                        f_nb = implementation("estimator", name, "numba")
                        o_nb = oracle()
                        t_nb = timed(partial(call, f_nb, o_nb, P, x, y, v), args.min_time,
                                     nosync)
                    kind = "householder" if structured else "dense"
                    print(f"| {label} | {kind} | {d} | {R} | {_fmt(t_np)} | {_fmt(t_nb)} | "
                          f"{_fmt(t_cp)} | {t_np / t_cp:.1f}x | {t_nb / t_cp:.1f}x | {err:.1e} |",
                          flush=True)
    return 0


def _numba_names() -> set[str]:
    from refbilevel.backends import implementations

    return {n for n, b in implementations("estimator").items() if "numba" in b}


def _fmt(t: float) -> str:
    if t != t:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


if __name__ == "__main__":
    raise SystemExit(main())
