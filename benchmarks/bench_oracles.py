"""Cost per oracle call of the Numba kernels, per problem family, kernel and dimension, against
the random-number floor (O(d) families) and BLAS on one thread (dense families).

    python benchmarks/bench_oracles.py [--full]      (or: refbilevel bench oracles)

Targets (issue #14, item 5): an O(d) family (UniBiO Example 3, separable, Householder-
structured quadratic, BO-REP's P1/P2 at their sizes) costs at most 3x the floor per call; a
family with dense d x d matrices at most 2x the same matrix-vector products done by BLAS.
The verdict states the first against the floor of normals and against the normals plus the
special functions the family's formulas evaluate (why: docs/design.rst §Backends).

Method (docs/design.rst: ratios from one run; the machine may be shared, so absolute times
move between runs, the ratios of one run are what counts):

- one Numba thread and one BLAS thread (OPENBLAS_NUM_THREADS=1 etc. are set, re-executing the
  script if it was started without them): per-core costs;
- kernels: ``neumann`` (the Neumann estimator, fixed truncation: ∇_x F, ∇_y F, Q HVPs, JVP
  per replica), ``soba`` (SOBA on a GaussianOracle: ∇_y G, HVP, JVP, ∇_y F, ∇_x F per
  iteration), ``borep`` for P1/P2. All noise stds are 0.1, so every call draws its normals,
  and every call does the oracle's whole arithmetic (nothing is reused between calls);
- **marginal cost per call**: each kernel runs at a short and a long length (Q or T; the long
  one adds ~EXTRA_NORMALS normals), R replicas, best of REPEATS timed runs each after a
  warm-up (cache load), short and long runs interleaved; ns/call =
  (t_long - t_short) / (R x extra oracle calls). This removes the per-run cost of the Python
  wrapper (input checks, the trace; printed as ``run us``), which is not a per-call cost. The
  algorithm traces' closed-form metrics are switched off on the instances, as in
  bench_baselines.py, and every run records only its last iterate (a trace records each
  record's metrics in Python: BO-REP timed with a record per iteration cost ~3x per call);
  a row is flagged ``disturbed`` when its two lengths disagree with one marginal rate or
  its extra calls cost less than drawing their normals;
- floor: the fastest way to draw the extra calls' normals (random_floor.normal_floor);
  ``x floor`` = (t_long - t_short) / floor;
- special functions (libm): some families' formulas evaluate sin, cos, tanh or sinh per
  coordinate, each costing 2-4 normals (printed first), work that no implementation of
  the same formulas avoids; ``x floor+libm`` = (t_long - t_short) / (floor + those
  evaluations, timed in compiled loops; :data:`LIBM` counts them per primitive). The
  verdict states the 3x target against both floors;
- BLAS (dense families): the d x d matrix-vector products of the extra calls (``GEMV`` per
  primitive) timed as BLAS dgemv calls, one vector at a time, from a compiled loop (Numba's
  ``np.dot``, which calls SciPy's BLAS: no Python overhead to subtract), and the ratio kernel
  arithmetic / BLAS, where kernel arithmetic = kernel time - floor time (the normals are drawn
  either way). Batched GEMM (all replicas at once) is faster still, but it is not the
  products the kernels do: each replica's vector depends on its own previous call;
- the curve: the separable family's Neumann kernel over d, fitted as ns/call = a + b d
  (least squares): a is the fixed cost of a call, b its cost per coordinate, against the
  floor's f per normal. The 3x target needs a + b d <= 3 f d, i.e. d >= a / (3 f - b): at
  smaller d no call can meet it, since drawing d normals takes only f d ns.

The default run (the quick one) takes ~1 minute on an idle machine with a warm Numba cache;
``--full`` adds larger dimensions.
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
from numba import njit  # noqa: E402
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
R = 32
REPEATS = 15
#: normals drawn by the extra calls of the long run (R x extra calls x d): ~0.3-2 ms of work,
#: well above the run-to-run jitter of the Python wrapper (a few µs) and short enough to fit
#: in one time slice of the scheduler on a busy machine (runs of several ms were preempted:
#: the best of 15 then still overstated d = 100 by 3-10x on the shared 2-core machine)
EXTRA_NORMALS = 50_000
SHORT = 10  # Q or T of the short run


def _lengths(d: int, calls_per_step: int) -> tuple[int, int]:
    """(short, long) Q or T for a kernel whose step makes ``calls_per_step`` oracle calls of
    ~d normals each."""
    return SHORT, SHORT + max(4, EXTRA_NORMALS // (R * d * calls_per_step))


def _problems(full: bool):
    """(problem, dense?) per (family, d)."""
    small = (10, 100, 1000) if full else (10, 100)
    dense = (30, 100, 300) if full else (30, 100)
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


def _start(P, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (R, P.d_x))
    y = rng.uniform(0.2, 1.0, (R, P.d_y)) * rng.choice([-1, 1], (R, P.d_y))
    return x, y


def borep_calls(p):
    """(oracle calls, normals(dx, dy), {primitive: calls}) per replica of one BO-REP run
    with params p: Epoch-SGD and the periodic lower-level steps (∇_y G), then per outer
    iteration ∇_x F, ∇_y F, HVP and JVP."""
    ll = p.epoch_T1 * (2**p.epoch_k - 1) + (max(p.T - 1, 0) // p.I) * p.N
    per = {"grad_y_g": ll, "grad_x_f": p.T, "grad_y_f": p.T, "hvp": p.T, "jvp": p.T}
    return 4 * p.T + ll, lambda dx, dy: ll * dy + p.T * (2 * dx + 2 * dy), per


def _kernels(P):
    """name -> [(run(oracle, x, y), oracle calls, normals per replica, calls per replica of
    each primitive: {primitive: calls}, for GEMV and LIBM) for the short and the long
    length]."""
    dx, dy = P.d_x, P.d_y
    neumann = implementation("estimator", "neumann", "numba")
    soba = implementation("algorithm", "soba", "numba")

    def neumann_run(Q):
        return (lambda o, x, y: neumann(o, x, y, Q, alpha=0.1), Q + 3, 2 * dx + (Q + 1) * dy,
                {"grad_x_f": 1, "grad_y_f": 1, "hvp": Q, "jvp": 1})

    def soba_run(T):
        return (lambda o, x, y: soba(o, x, y, T=T, record_every=T), 5 * T,
                T * (3 * dy + 2 * dx),
                {"grad_y_g": T, "hvp": T, "jvp": T, "grad_y_f": T, "grad_x_f": T})

    out = {"neumann": [neumann_run(Q) for Q in _lengths(dy, 1)],
           "soba": [soba_run(T) for T in _lengths(max(dx, dy), 5)]}
    if isinstance(P, (RelaxedSmoothP1, RelaxedSmoothP2)):
        borep = implementation("algorithm", "borep", "numba")

        def borep_run(T):
            p = borep_params(P, mode="tuned", T=T)
            calls, normals, per = borep_calls(p)
            return (lambda o, x, y: borep(o, x, y, params=p, record_every=T), calls,
                    normals(dx, dy), per)
        out["borep"] = [borep_run(T) for T in _lengths(max(dx, dy), 4)]
    return out


#: matrix-vector products (d x d) per primitive call, per dense family
GEMV = {
    "quadratic-dense": {"grad_x_f": 0, "grad_y_f": 2, "grad_y_g": 4, "hvp": 2, "jvp": 2},
    "nonseparable-uniformly-convex": {"grad_x_f": 0, "grad_y_f": 0, "grad_y_g": 2, "hvp": 1,
                                      "jvp": 1},
    "relaxed-smooth-p1": {"grad_x_f": 0, "grad_y_f": 0, "grad_y_g": 2, "hvp": 1, "jvp": 1},
}


#: special-function evaluations per primitive call, per family that has them: what the
#: family's own formulas evaluate through libm (the NumPy reference calls the same functions).
#: At ~8 ns (sin, cos) and ~14 ns (tanh, sinh) each on the development machine they cost
#: 2-4 normals apiece, so a kernel bound by them cannot come near 3x a floor of normals
#: alone; the ``x floor+libm`` ratio counts them as unavoidable work too. Example 3's
#: ∇_y f evaluates its cos where |u| <= pi/2, which holds on these runs (|y| <= 1).
#: tests/test_bench_oracles_libm.py checks the table against the NumPy reference.
LIBM = {
    # g = (1/p)||y||_p^p - <sin x, y> (docs/unibio.rst §2, §6.1)
    "unibio-example3": lambda P: {"grad_y_g": {"sin": 1}, "grad_x_g": {"cos": 1},
                                  "jvp": {"cos": 1}, "grad_y_f": {"cos": 1}},
    "separable-uniformly-convex": lambda P: {"grad_y_g": {"sin": P.d_y},
                                             "grad_x_g": {"cos": P.d_y},
                                             "jvp": {"cos": P.d_y}},
    "relaxed-smooth-p1": lambda P: {"grad_x_f": {"sinh": P.d_x},
                                    **({"grad_y_f": {"cos": P.d_y}} if P.variant == "sine"
                                       else {})},
    "relaxed-smooth-p2": lambda P: {"grad_y_f": {"tanh": P.d_y}},
}


#: the special functions of :data:`LIBM`, by their code in :func:`_libm_loop`
LIBM_FUNCTIONS = ("sin", "cos", "tanh", "sinh")


@njit(cache=True)
def _libm_loop(a, fn):
    """Σ f(a_i) for f = LIBM_FUNCTIONS[fn] (the test of fn is the same on every pass:
    predicted, and LLVM moves it out of the loop)."""
    s = 0.0
    for i in range(a.shape[0]):
        v = a[i]
        if fn == 0:
            s += np.sin(v)
        elif fn == 1:
            s += np.cos(v)
        elif fn == 2:
            s += np.tanh(v)
        else:
            s += np.sinh(v)
    return s


def libm_seconds(n: int = 50_000, repeat: int = REPEATS) -> dict[str, float]:
    """Seconds of one evaluation of each special function of :data:`LIBM`, best of
    ``repeat`` compiled loops over n arguments uniform in [-1, 1] (the range of the
    benchmark's iterates)."""
    a = np.random.default_rng(0).uniform(-1.0, 1.0, n)
    out = {}
    for fn, name in enumerate(LIBM_FUNCTIONS):
        _libm_loop(a, fn)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            _libm_loop(a, fn)
            best = min(best, time.perf_counter() - t0)
        out[name] = best / n
    return out


@njit(cache=True)
def _gemv_loop(M, V, out):
    for r in range(V.shape[0]):
        np.dot(M, V[r], out[r])


def gemv_seconds(d: int, n: int = 256, repeat: int = 20) -> float:
    """Seconds of one d x d BLAS matrix-vector product (dgemv), best of ``repeat`` loops over
    n vectors in compiled code."""
    rng = np.random.default_rng(0)
    M, V, out = rng.standard_normal((d, d)), rng.standard_normal((n, d)), np.empty((n, d))
    _gemv_loop(M, V, out)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _gemv_loop(M, V, out)
        best = min(best, time.perf_counter() - t0)
    return best / n


def _best_times(runs, P, x, y) -> list[float]:
    """Best of REPEATS timed runs of each of ``runs``, the runs interleaved (short, long,
    short, long, ...) so that a burst of other load slows both lengths alike instead of one
    (run one after the other, a burst during the short runs once gave SOBA 0.96x the
    floor, less than drawing its normals)."""
    def once(run):
        o = GaussianOracle(P, NoiseConfig.uniform(STD), np.random.default_rng(1))
        t0 = time.perf_counter()
        run(o, x.copy(), y.copy())
        return time.perf_counter() - t0

    for run in runs:
        once(run)  # compile or load from the cache
    best = [float("inf")] * len(runs)
    for _ in range(REPEATS):
        for i, run in enumerate(runs):
            best[i] = min(best[i], once(run))
    return best


def _quiet_metrics(P) -> None:
    """The algorithm traces' closed-form metrics (∇φ, y* at the recorded points: a Newton or
    linear solve per replica) are not the kernels' time: switched off on the instance."""
    P._grad_phi = np.zeros_like
    P._y_star = lambda x, P=P: np.zeros(np.shape(x)[:-1] + (P.d_y,))


def measure(P, kname, runs, gemv=None, libm=None) -> dict:
    """One row: the marginal cost per call of kernel ``kname`` on problem P (module
    docstring); ``libm``: :func:`libm_seconds`, for the ``x floor+libm`` ratio."""
    x, y = _start(P)
    (run_s, calls_s, normals_s, prims_s), (run_l, calls_l, normals_l, prims_l) = runs
    t_s, t_l = _best_times((run_s, run_l), P, x, y)
    dt = max(t_l - t_s, 1e-12)
    dcalls = R * (calls_l - calls_s)
    dnormals = R * (normals_l - normals_s)
    floor, how = normal_floor(np.random.default_rng(2), dnormals, repeats=REPEATS)
    per_call = dt / dcalls
    row = {"family": family_of(P).name, "d": P.d_y, "kernel": kname,
           "ns/call": 1e9 * per_call, "ns/normal": 1e9 * dt / dnormals,
           "floor ns/call": 1e9 * floor / dcalls, "x floor": dt / floor, "floor by": how,
           "run us": 1e6 * max(t_s - per_call * R * calls_s, 0.0),
           # the short run costs less than its calls at the marginal rate (the long run was
           # slowed by other load: the row overstates), or the extra calls cost clearly less
           # than drawing their normals (the short run was slowed: the row understates; a
           # kernel bound by its draws measures 0.9-1.0x the floor from run to run)
           "disturbed": t_s < per_call * R * calls_s or dt < 0.9 * floor}
    # the extra calls of each primitive, all replicas (None: a curve row, primitives untold)
    extra = None if prims_s is None else {k: R * (prims_l[k] - prims_s[k]) for k in prims_l}
    libm_s = 0.0
    if libm is not None and extra is not None:
        per_fn = LIBM.get(row["family"], lambda P: {})(P)
        libm_s = sum(n * extra[k] * libm[fn]
                     for k, fns in per_fn.items() if k in extra for fn, n in fns.items())
    row["libm ns/call"] = 1e9 * libm_s / dcalls
    row["x floor+libm"] = dt / (floor + libm_s)
    if gemv is not None and extra is not None:
        fam = GEMV[row["family"]]
        n_gemv = sum(fam[k] * extra[k] for k in extra)
        blas = n_gemv * gemv
        row["BLAS ns/call"] = 1e9 * blas / dcalls
        row["x BLAS"] = max(dt - floor, 0.0) / blas if blas > 0 else float("nan")
    return row


def _fmt(row) -> str:
    s = (f"{row['family']:<30} d={row['d']:<5} {row['kernel']:<8} "
         f"{row['ns/call']:8.0f} ns/call {row['ns/normal']:6.1f} ns/normal "
         f"floor {row['floor ns/call']:7.0f} ns/call ({row['floor by']:<7}) "
         f"{row['x floor']:5.2f}x floor  run {row['run us']:6.0f} us")
    if row["libm ns/call"] > 0:
        s += (f"  libm {row['libm ns/call']:5.0f} ns/call {row['x floor+libm']:5.2f}x "
              "floor+libm")
    if "x BLAS" in row:
        s += f"  BLAS {row['BLAS ns/call']:8.0f} ns/call {row['x BLAS']:5.2f}x BLAS"
    if row["disturbed"]:
        s += "  [disturbed: rerun]"
    return s


def curve(full: bool) -> None:
    """Neumann on the separable family over d: the fixed cost per call and the d from which
    the 3x target can hold (module docstring)."""
    ds = (1, 3, 10, 30, 100, 300, 1000) if full else (1, 3, 10, 30, 100)
    pts = []
    print("\nseparable-uniformly-convex, neumann, over d (fit: ns/call = a + b d):")
    neumann = implementation("estimator", "neumann", "numba")
    for d in ds:
        P = SeparableUniformlyConvex(d=d, p=4.0)
        dx = P.d_x
        runs = [(lambda o, x, y, Q=Q: neumann(o, x, y, Q, alpha=0.1), Q + 3,
                 2 * dx + (Q + 1) * d, None) for Q in _lengths(d, 1)]
        row = measure(P, "neumann", runs)
        f = row["floor ns/call"] / d  # the floor per normal: each HVP call draws d normals
        pts.append((d, row["ns/call"], f))
        print(f"  d={d:<5} {row['ns/call']:8.1f} ns/call  floor {row['floor ns/call']:7.1f} "
              f"ns/call  {row['x floor']:5.2f}x floor")
    d = np.array([p[0] for p in pts], dtype=float)
    ns = np.array([p[1] for p in pts])
    b, a = np.polyfit(d, ns, 1, w=1.0 / ns)  # relative residuals: small d weigh as much
    f = float(np.median([p[2] for p in pts]))
    print(f"  fixed cost a = {a:.1f} ns per call, b = {b:.2f} ns per coordinate; floor "
          f"f = {f:.2f} ns per normal")
    if 3 * f > b:
        print(f"  3x target: a + b d <= 3 f d from d >= a / (3f - b) = {a / (3 * f - b):.1f}")
    else:
        print("  3x target: b >= 3 f, not met at any d")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="larger dimensions too")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = []
    libm = libm_seconds()
    print("special functions (ns per evaluation, one thread): "
          + ", ".join(f"{k} {1e9 * v:.1f}" for k, v in libm.items()))
    for P, dense in _problems(args.full):
        _quiet_metrics(P)
        gemv = gemv_seconds(P.d_y) if dense else None
        for kname, runs in _kernels(P).items():
            row = measure(P, kname, runs, gemv, libm)
            rows.append(row)
            print(_fmt(row), flush=True)
    _verdict(rows)
    curve(args.full)
    print(f"\n(R = {R} replicas, one thread; one run on a possibly shared machine: compare the "
          f"ratios, not the absolute times; {time.perf_counter() - t0:.0f} s)")
    return 0


def _verdict(rows) -> None:
    bad = [r for r in rows if r["disturbed"]]
    if bad:
        print(f"\n{len(bad)} row(s) disturbed (the long run was slowed by other load): the "
              "verdict below counts them; rerun on an idle machine")
    od = [r for r in rows if "x BLAS" not in r]
    dense = [r for r in rows if "x BLAS" in r]
    for key, what in (("x floor", "the floor (normals)"),
                      ("x floor+libm", "the floor + special functions")):
        worst = max(od, key=lambda r: r[key])
        above = [f"{r['family']} d={r['d']} {r['kernel']} {r[key]:.2f}x" for r in od
                 if r[key] > 3]
        print(f"\nO(d) families against {what}: worst {worst[key]:.2f}x "
              f"({worst['family']}, d={worst['d']}, {worst['kernel']}); target <= 3x: "
              + ("met" if not above else "NOT met (" + "; ".join(above) + ")"))
    if dense:
        worst = max(dense, key=lambda r: r["x BLAS"])
        print(f"dense families: worst {worst['x BLAS']:.2f}x one-thread BLAS "
              f"({worst['family']}, d={worst['d']}, {worst['kernel']}); target <= 2x: "
              f"{'met' if worst['x BLAS'] <= 2 else 'NOT met'}")


if __name__ == "__main__":
    sys.exit(main())
