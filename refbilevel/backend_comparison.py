"""NumPy ↔ Numba (↔ CuPy) parity and timing of every algorithm, in one table
(``refbilevel compare-backends``; issue #4, docs/design.rst §Backends).

For each algorithm implemented on two or more of the requested backends, the same
:class:`~refbilevel.runs.RunSpec` (same seed, so the same random numbers) is run on each
backend and compared with the first one (the NumPy reference):

* ``max rel dx``: max |x_b − x_ref| / max |x_ref| over every record, replica and coordinate
  where both are finite (λ for BSGM); the parity contract is ≤ 1e-12 in float64;
* ``same div``: the divergence records (``diverged_at``) are identical;
* ``same counts``: the cumulative oracle counts are identical;
* time per run on each backend and their ratio, from the same process. Compile time (the
  first call of a compiled backend, a cache load when Numba's disk cache is warm) is measured
  by a one-iteration warm-up run and reported separately, not included in the timing.

The setups are those of each algorithm's tests (:func:`setup`).

The estimators get the same treatment call by call (:func:`estimator_cases`,
:func:`compare_estimator`; claim X4): every registered estimator on the problems and in the
variants of its parity tests (tests/test_estimators.py, tests/test_sid.py), on fresh oracles
seeded alike, comparing the value (and the linear-system iterate z), the counts and the
Generator state after the call (both backends consumed the same random numbers).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from refbilevel.backends import implementations
from refbilevel.runs import RunSpec, execute


def setup(algorithm: str) -> dict[str, Any]:
    """The :class:`RunSpec` fields of ``algorithm``'s comparison run: its record's
    ``parity()`` (the settings of its tests)."""
    from refbilevel.solver_record import solver_record

    record = solver_record(algorithm)
    if record.parity is None:
        raise ValueError(f"method {algorithm!r} states no comparison setup (SolverRecord.parity)")
    return record.parity()


@dataclass
class ComparisonRow:
    algorithm: str
    backend: str
    reference: str
    seconds: float
    reference_seconds: float
    compile_seconds: float
    max_rel_dx: float
    same_divergence: bool
    same_counts: bool

    @property
    def ok(self) -> bool:
        return self.max_rel_dx <= 1e-12 and self.same_divergence and self.same_counts


def default_spec(algorithm: str, T: int = 1000, replicas: int = 4, seed: int = 0) -> RunSpec:
    # a record may cap T (UniBiO: each UL step is an Epoch-SGD call, its tuned T = 500
    # already makes ~1e5 oracle calls per replica); mode "paper": the implementations' own
    # values, with which the setups were chosen
    from refbilevel.solver_record import solver_record

    cap = solver_record(algorithm).parity_T_cap
    return RunSpec(algorithm, seed=seed, replicas=replicas, mode="paper",
                   T=T if cap is None else min(T, cap),
                   record_every=max(1, T // 100), **setup(algorithm))


def positions(trace: Any) -> np.ndarray:
    """The compared iterates of a trace: x (records, R, d_x), or λ for BSGM."""
    return trace.lam if hasattr(trace, "lam") else trace.x


def _counts_equal(a: Any, b: Any) -> bool:
    ca, cb = a.counts, b.counts
    if isinstance(ca, dict) and isinstance(cb, dict):
        return ca.keys() == cb.keys() and all(np.array_equal(ca[k], cb[k]) for k in ca)
    return bool(ca == cb)


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / max |a| over the entries finite in both; inf if the finite patterns
    differ (one backend diverged where the other did not)."""
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb):
        return float("inf")
    if not fa.any():
        return 0.0
    scale = float(np.abs(a[fa]).max()) or 1.0
    return float(np.abs(a[fa] - b[fa]).max() / scale)


def _timed(spec: RunSpec, backend: str) -> tuple[Any, float]:
    t0 = time.perf_counter()
    trace = execute(spec, backend)
    return trace, time.perf_counter() - t0


def compare(algorithm: str, backends: Sequence[str] = ("numpy", "numba"), *, T: int = 1000,
            replicas: int = 4, seed: int = 0) -> list[ComparisonRow]:
    """Rows comparing each of ``backends[1:]`` with ``backends[0]`` (see module docstring)."""
    spec = default_spec(algorithm, T=T, replicas=replicas, seed=seed)
    ref_name = backends[0]
    warm = {b: _timed(replace(spec, T=1, record_every=1), b)[1] for b in backends}
    ref, ref_s = _timed(spec, ref_name)
    rows = []
    for b in backends[1:]:
        other, s = _timed(spec, b)
        rows.append(ComparisonRow(
            algorithm, b, ref_name, s, ref_s, warm[b],
            max_relative_difference(positions(ref), positions(other)),
            bool(np.array_equal(ref.diverged_at, other.diverged_at)),
            _counts_equal(ref, other)))
    return rows


def comparable_algorithms(backends: Sequence[str]) -> list[str]:
    """Algorithms implemented on every one of ``backends``."""
    return [a for a, have in implementations("algorithm").items()
            if all(b in have for b in backends)]


def format_table(rows: Sequence[ComparisonRow]) -> str:
    lines = ["| algorithm | backend vs ref | max rel dx | same div | same counts | ref (s) | "
             "backend (s) | ref/backend | compile (s) | parity |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.algorithm} | {r.backend} vs {r.reference} | {r.max_rel_dx:.1e} | "
            f"{'yes' if r.same_divergence else 'NO'} | {'yes' if r.same_counts else 'NO'} | "
            f"{r.reference_seconds:.3f} | {r.seconds:.3f} | "
            f"{r.reference_seconds / r.seconds:.1f}x | {r.compile_seconds:.2f} | "
            f"{'ok' if r.ok else 'FAIL'} |")
    return "\n".join(lines)


# ---- estimators ---------------------------------------------------------------------------------
#: the float64 parity contract of the compiled backends (docs/design.rst §Backends; claim X4)
PARITY_RTOL = 1e-12
#: the four Neumann variants of the parity tests: (truncation, variant, start)
NEUMANN_VARIANTS = (("fixed", "classical", 0), ("fixed", "generalized", 1),
                    ("randomized", "classical", 0), ("randomized", "generalized", 0))
#: the linear-system SGD variants of the parity tests: (variant, fresh_rhs, radius)
LINEAR_SYSTEM_VARIANTS = (("classical", False, None), ("generalized", True, 0.7),
                          ("classical", True, 0.3))
FD_ESTIMATORS = ("fd_hvp", "fd_jvp", "fd_hypergradient", "fd_ls_gradient")
ESTIMATOR_ORACLES = ("gaussian", "contraction", "none")


@dataclass(frozen=True)
class EstimatorCase:
    """One estimator call of the parity table: the registered ``estimator`` called as
    ``f(oracle, *args, **kwargs)`` with an oracle over ``problem`` (``oracle="gaussian"``:
    a GaussianOracle with noise std ``noise`` on every kind; ``"contraction"``: a
    ContractionOracle), or ``f(problem, *args, **kwargs)`` for a deterministic estimator
    (``oracle="none"``: conjugate gradients)."""

    label: str
    estimator: str
    problem: Any
    args: tuple
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    oracle: str = "gaussian"
    noise: float = 0.3

    def __post_init__(self) -> None:
        if self.oracle not in ESTIMATOR_ORACLES:
            raise ValueError(f"oracle must be one of {', '.join(ESTIMATOR_ORACLES)}; got "
                             f"{self.oracle!r}")


def _estimator_inputs(problem: Any, R: int | None, rng: np.random.Generator):
    """x ~ U(−1, 1), y with |y_i| ∈ [0.2, 1] (away from the singular points of the
    generalized Hessian), v ~ N(0, I); leading axis R unless R is None."""
    lead = () if R is None else (R,)
    x = rng.uniform(-1, 1, lead + (problem.d_x,))
    y = rng.uniform(0.2, 1.0, lead + (problem.d_y,)) * rng.choice([-1, 1], lead + (problem.d_y,))
    v = rng.standard_normal(lead + (problem.d_y,))
    return x, y, v


def estimator_cases(seed: int = 0, *, full: bool = False) -> list[EstimatorCase]:
    """The estimator parity cases (the problems and variants of the parity tests): every
    Neumann and linear-system variant, CG and the four finite-difference estimators on
    Example 3 (p = 4, d = 1), a non-separable uniformly convex problem (p = 4, d_y = 3) and
    a strongly convex quadratic (d = 20; ``full``: also d = 100 and the Householder-
    structured one, and unbatched inputs) and the registered ``uniformly-convex-bump`` (its
    default instance), with R = 5 replicas; SID and its two negative
    control variants on the golden instance and a random contraction (d = 3). Inputs are
    drawn from ``named_stream(seed, "estimator-inputs")``."""
    from refbilevel.problems.contraction import golden_instance
    from refbilevel.problems.quadratic import StronglyConvexQuadratic
    from refbilevel.problems.unibio_example3 import UniBiOExample3
    from refbilevel.problems.uniformly_convex import NonSeparableUniformlyConvex
    from refbilevel.randomness import named_stream
    from refbilevel.sid_moments import StepSchedule, random_linear_contraction
    from refbilevel.solver import default_instance

    rng = named_stream(seed, "estimator-inputs")
    problems = [("Example 3 p=4", UniBiOExample3(4)),
                ("non-separable p=4 d_y=3", NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0,
                                                                        seed=1)),
                ("quadratic d=20", StronglyConvexQuadratic(d_x=20, d_y=20, mu=0.2, L=1.0,
                                                           seed=0))]
    if full:
        problems += [("quadratic d=100", StronglyConvexQuadratic(d_x=100, d_y=100, mu=0.2,
                                                                 L=1.0, seed=0)),
                     ("structured quadratic 30x20",
                      StronglyConvexQuadratic(d_x=30, d_y=20, seed=4, structured=True))]
    # the uniformly convex bump (non-symmetric generalized Hessian, docs/unibio.rst §1.6),
    # its inputs from a stream of their own so that the other cases' inputs stay as they were
    bump_rng = named_stream(seed, "estimator-inputs/uniformly-convex-bump")
    bump = ("uniformly-convex-bump", default_instance("uniformly-convex-bump"))
    cases = []
    for R in ((5, None) if full else (5,)):
        for name, P in problems + [bump]:
            x, y, v = _estimator_inputs(P, R, bump_rng if P is bump[1] else rng)
            tag = f"{name}, R={R}"
            for trunc, variant, start in NEUMANN_VARIANTS:
                cases.append(EstimatorCase(
                    f"{tag}, {trunc}/{variant}/start={start}", "neumann", P, (x, y, 6),
                    {"alpha": 0.2, "truncation": trunc, "variant": variant, "start": start}))
            for variant, fresh, radius in LINEAR_SYSTEM_VARIANTS:
                cases.append(EstimatorCase(
                    f"{tag}, {variant}/fresh_rhs={fresh}/radius={radius}", "linear_system_sgd",
                    P, (x, y, 5, 0.1), {"z0": v, "radius": radius, "variant": variant,
                                        "fresh_rhs": fresh, "convention": "-z"}))
            cases.append(EstimatorCase(f"{tag}, 3 iterations", "linear_system_cg", P,
                                       (x, y, 3), {"tol": 0.0}, oracle="none"))
            for fd in FD_ESTIMATORS:
                cases.append(EstimatorCase(f"{tag}, delta=1e-2", fd, P, (x, y, v, 1e-2)))
    g = golden_instance()
    P3 = random_linear_contraction(3, 2, rng, q=0.9, s_Z=0.3 / np.sqrt(3), s_Y=0.1)
    steps = StepSchedule.decreasing(2.0, 3.0)
    contractions: list[tuple[str, Any, np.ndarray, np.ndarray | None]] = [
        ("golden §14.1", g.problem, np.asarray(g.lam), None),
        ("random contraction d=3", P3, rng.standard_normal(2), np.linspace(-1, 1, 3))]
    for name, C, lam, w0 in contractions:
        kw = {"steps": steps, "w0": w0, "replicas": 7}
        cases.append(EstimatorCase(f"{name}, (t,k,J)=(13,17,5), R=7", "sid", C,
                                   (lam, 13, 17, 5), kw, oracle="contraction"))
        for reuse in ("pairs", "ll"):
            cases.append(EstimatorCase(f"{name}, reuse={reuse}, R=7", "sid_control_reuse", C,
                                       (lam, 13, 17, 5), {**kw, "reuse": reuse},
                                       oracle="contraction"))
    return cases


def _host(a: Any) -> np.ndarray:
    return np.asarray(a.get() if hasattr(a, "get") else a)


def run_estimator_case(case: EstimatorCase, backend: str, seed: int = 0
                       ) -> tuple[np.ndarray, dict[str, int], float | None]:
    """(value, with z appended for the linear-system estimators; counts; the next standard
    normal of the oracle's Generator after the call, None without an oracle) of ``case`` on
    ``backend``, with the oracle on ``named_stream(seed, "estimator-oracle")``."""
    from refbilevel.backends import implementation
    from refbilevel.randomness import named_stream

    f = implementation("estimator", case.estimator, backend)
    rng = named_stream(seed, "estimator-oracle")
    oracle: Any
    if case.oracle == "none":
        est, oracle = f(case.problem, *case.args, **case.kwargs), None
    elif case.oracle == "contraction":
        from refbilevel.oracles.contraction import ContractionOracle

        oracle = ContractionOracle(case.problem, rng)
        est = f(oracle, *case.args, **case.kwargs)
    else:
        from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig

        oracle = GaussianOracle(case.problem, NoiseConfig.uniform(case.noise), rng)
        est = f(oracle, *case.args, **case.kwargs)
    value = _host(est.value).ravel()
    z = getattr(est, "z", None)
    if z is not None:
        value = np.concatenate([value, _host(z).ravel()])
    nxt = None if oracle is None else float(oracle.rng.standard_normal())
    return value, est.counts.as_dict(), nxt


@dataclass
class EstimatorComparisonRow:
    label: str
    estimator: str
    backend: str
    reference: str
    max_rel_diff: float
    same_counts: bool
    same_stream: bool
    rtol: float = PARITY_RTOL

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= self.rtol and self.same_counts and self.same_stream


def compare_estimator(case: EstimatorCase, backends: Sequence[str] = ("numpy", "numba"), *,
                      seed: int = 0, seeds: Sequence[int] | None = None,
                      rtol: float = PARITY_RTOL) -> list[EstimatorComparisonRow]:
    """Rows comparing ``case`` on each of ``backends[1:]`` with ``backends[0]``: max
    relative difference of the values (:func:`max_relative_difference`), the counts, and
    whether both Generators are in the same state afterwards. ``seeds`` gives each backend
    its own seed (default: ``seed`` for all); different seeds are a NEGATIVE CONTROL only."""
    seeds = [seed] * len(backends) if seeds is None else list(seeds)
    if len(seeds) != len(backends):
        raise ValueError(f"seeds must give one seed per backend, got {len(seeds)} for "
                         f"{len(backends)}")
    ref = run_estimator_case(case, backends[0], seeds[0])
    rows = []
    for b, sd in zip(backends[1:], seeds[1:], strict=True):
        got = run_estimator_case(case, b, sd)
        diff = (max_relative_difference(ref[0], got[0]) if ref[0].shape == got[0].shape
                else float("inf"))
        rows.append(EstimatorComparisonRow(case.label, case.estimator, b, backends[0], diff,
                                           ref[1] == got[1], ref[2] == got[2], rtol))
    return rows
