"""NumPy ↔ Numba (↔ CuPy) parity and timing of every algorithm, in one table
(``refbilevel compare-backends``; issue #4, DESIGN.md §Backends).

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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from refbilevel.backends import implementations
from refbilevel.runs import RunSpec, execute

_QUADRATIC = {"d_x": 5, "d_y": 5, "mu": 3.0, "L": 10.0, "rho": 10.0, "seed": 0}
_FINITE_SUM = {"n_inner": 256, "n_outer": 256, "d_inner": 5, "d_outer": 5, "mu": 1.0,
               "L": 4.0, "L_cross": 1.0, "seed": 16}


def _storm_setup() -> dict[str, Any]:
    """FdeHBO/FMBO: the well-conditioned §10.1 quadratic and schedule of claim F2
    (theory_checks/f2_fdehbo_rate.py). Not the stiff quadratic of the baselines: there the
    tuned STORM schedule of fdehbo.md §10.1 makes the dynamics chaotic (a 1e-15 difference
    between backends grows by ≈ 1e3 every 50 iterations, to O(1) by t = 400, while both runs
    converge alike), so parity after 1000 iterations is a property the dynamics do not
    have there, whatever the kernels do."""
    from refbilevel.algorithms.fdehbo import StormSchedule

    return {"problem": "quadratic", "x0": 2.0, "noise": 1.0,
            "problem_params": {"d_x": 3, "d_y": 4, "mu": 1.0, "L": 1.0, "seed": 0,
                               "k_range": (0.2, 0.5), "f_range": (0.5, 1.0), "rho": 1.0},
            "options": {"schedule": StormSchedule(w=8.0, c_beta=1.0, c_lambda=1.0,
                                                  c_eta_f=3.0, c_eta_R=3.0, c_eta_g=3.0),
                        "r_v": 20.0}}


def _bsgm_setup() -> dict[str, Any]:
    """BSGM on the noisy golden instance with the deterministic SID schedule and a box, as
    its parity test (the default "finite" schedule grows SID's t = k = J with the outer
    iteration: 1000 outer steps take minutes on the NumPy reference)."""
    from refbilevel.algorithms.bsgm import Box

    return {"problem": "linear-contraction", "x0": 0.9,
            "options": {"schedule": "deterministic", "constraint": Box(-1.0, 1.0)}}


def setup(algorithm: str) -> dict[str, Any]:
    """The :class:`RunSpec` fields of ``algorithm``'s comparison run: the settings of its
    tests (tests/test_baselines.py, test_unibio.py, test_borep_fdehbo_bsgm.py). BO-REP
    starts at the x0 = 9·1 of claim B2, where fixed-step methods overflow."""
    if algorithm in ("bsa", "stocbio", "ttsa", "soba", "ma_soba", "amigo", "f2sa"):
        return {"problem": "quadratic", "problem_params": _QUADRATIC, "x0": -2.0}
    if algorithm in ("fdehbo", "fmbo"):
        return _storm_setup()
    fixed: dict[str, dict[str, Any]] = {
        "saba": {"problem": "finite-sum-quadratic", "problem_params": _FINITE_SUM},
        "unibio": {"problem": "unibio-example3", "problem_params": {"p": 4}, "x0": 1.0},
        "borep": {"problem": "borep-p1", "x0": 9.0}}
    if algorithm in fixed:
        return fixed[algorithm]
    if algorithm == "bsgm":
        return _bsgm_setup()
    raise ValueError(f"no comparison setup for algorithm {algorithm!r}; known: bsa, stocbio, "
                     "ttsa, soba, ma_soba, amigo, f2sa, fdehbo, fmbo, saba, unibio, borep, bsgm")


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
    # UniBiO's T counts UL steps, each with an Epoch-SGD call: its tuned T = 500 already
    # makes ~1e5 oracle calls per replica, so T is capped there
    return RunSpec(algorithm, seed=seed, replicas=replicas,
                   T=min(T, 500) if algorithm == "unibio" else T,
                   record_every=max(1, T // 100), **setup(algorithm))


def _positions(trace: Any) -> np.ndarray:
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
            max_relative_difference(_positions(ref), _positions(other)),
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
