"""``refbilevel.solve``: the one entry point of every run (docs/design.rst §Contracts,
"Solver"; in the spirit of ``scipy.optimize.minimize``).

    trace = solve("quadratic", "soba", backend="numba", noise=0.0, seed=0)

builds the problem (a registered name, or an instance), the oracle that fits it, the start
points, checks the method's assumptions (a problem outside them is refused before the run
with the assumption named), computes the method's parameters for the mode from the
problem's constants, and calls the registered implementation on the backend. Every caller —
the CLI (``run``, ``compare-backends``, ``matrix``), the sweeps, the checks, the benchmarks —
goes through it; nothing here or there depends on a method's or a problem's name: what
differs between methods is in their :class:`~refbilevel.solver_record.SolverRecord`.

Oracle (unless ``oracle`` is an instance): chosen by the problem's type —

* a fixed-point problem (:class:`~refbilevel.problems.contraction.FixedPointProblem`) →
  :class:`~refbilevel.oracles.contraction.ContractionOracle`; ``noise=0`` makes the maps
  exact (the problem's noise levels set to 0), ``noise=None`` keeps the problem's own;
* a finite-sum problem (``n_inner``/``n_outer`` samples) →
  :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle` with minibatch ``batch`` (default
  64) and ``sampler`` (default "uniform"); ``noise=0`` without ``batch``/``sampler`` means
  the deterministic full batch (:func:`full_batch_oracle`);
* every other problem → :class:`~refbilevel.oracles.gaussian.GaussianOracle` with standard
  deviation ``noise`` (default 0.1) on every oracle kind.

``oracle`` may also be a mapping of these settings (``{"noise": ..., "batch": ...,
"sampler": ...}``). Randomness: the oracle draws from ``named_stream(seed, "oracle")`` and
UniBiO's random restarts from ``named_stream(seed, "restart")``, so the same arguments give
the same trajectory on every backend.

Start: ``x0``/``y0`` a number (every coordinate), a vector (every replica) or an (R, d)
array (one row per replica; then R must equal ``replicas`` unless ``replicas`` is left at
1). Defaults: the problem's own ``x0`` where it defines one, else the vector of ones;
``y0 = 0``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from refbilevel.backends import implementation
from refbilevel.randomness import named_stream
from refbilevel.solver_record import (
    MODES,
    SolverInputs,
    SolverRecord,
    require_options,
    solver_record,
)
from refbilevel.validation import require_choice, require_int, require_range

#: Gaussian oracle standard deviation and finite-sum minibatch when not given
DEFAULT_NOISE = 0.1
DEFAULT_BATCH = 64
_ORACLE_SETTINGS = ("noise", "batch", "sampler")


def default_instance(name: str, **params: Any) -> Any:
    """The registered problem ``name`` with ``params``; without parameters, the class's own
    ``default_instance()`` where it defines one (the contraction problems need data), else
    its constructor's defaults."""
    from refbilevel.problems import make_problem, problem_class

    factory = getattr(problem_class(name), "default_instance", None)
    if not params and factory is not None:
        return factory()
    return make_problem(name, **params)


def resolve_problem(problem: Any, params: Mapping[str, Any] | None = None) -> Any:
    if isinstance(problem, str):
        return default_instance(problem, **dict(params or {}))
    if params:
        raise ValueError("problem_params apply to a problem given by name only")
    if not hasattr(problem, "constants"):
        raise ValueError(f"problem must be a registered name or a problem instance, got "
                         f"{type(problem).__name__}")
    return problem


def _exact_contraction(problem: Any) -> Any:
    """The same linear contraction with every oracle noise level 0 (exact maps)."""
    from refbilevel.problems.contraction import LinearContraction

    if not isinstance(problem, LinearContraction):
        return problem
    if (problem.s_Z == problem.s_Y == problem.s_eps == 0.0
            and not np.any(problem.Sigma_xi)):
        return problem
    exact = LinearContraction(problem.A, problem.B, problem.c, problem.P, problem.Q,
                              problem.S, problem.p, problem.s,
                              extra=dict(problem.constants.extra),
                              sources=dict(problem.constants.sources))
    if hasattr(problem, "x0"):
        exact.x0 = problem.x0
    return exact


def make_oracle(problem: Any, settings: Mapping[str, Any], seed: int) -> tuple[Any, Any]:
    """(oracle, problem it runs on) for the settings (module docstring)."""
    from refbilevel.problems.contraction import FixedPointProblem

    unknown = sorted(set(settings) - set(_ORACLE_SETTINGS))
    if unknown:
        raise ValueError(f"unknown oracle setting(s) {', '.join(unknown)}; allowed: "
                         f"{', '.join(_ORACLE_SETTINGS)}")
    rng = named_stream(seed, "oracle")
    noise = settings.get("noise")
    if noise is not None:
        noise = require_range("noise", noise, low=0.0)
    if isinstance(problem, FixedPointProblem):
        from refbilevel.oracles.contraction import ContractionOracle

        if noise not in (None, 0.0):
            raise ValueError("noise applies to a fixed-point problem as 0 (exact maps) or "
                             "None (the problem's own noise levels) only")
        if noise == 0.0:
            problem = _exact_contraction(problem)
        return ContractionOracle(problem, rng), problem
    if hasattr(problem, "n_inner") and hasattr(problem, "n_outer"):
        from refbilevel.oracles.finite_sum import FiniteSumOracle

        batch, sampler = settings.get("batch"), settings.get("sampler")
        if noise == 0.0 and batch is None and sampler is None:
            return full_batch_oracle(problem, rng), problem
        batch = require_int("batch", DEFAULT_BATCH if batch is None else batch, low=1)
        return FiniteSumOracle(problem, batch, rng,
                               sampler="uniform" if sampler is None else sampler), problem
    from refbilevel.oracles.gaussian import GaussianOracle

    return GaussianOracle(problem, DEFAULT_NOISE if noise is None else noise, rng), problem


def full_batch_oracle(problem: Any, rng: np.random.Generator) -> Any:
    """The deterministic full-batch oracle of a finite-sum problem (``noise=0``): the
    "shuffled" sampler with one batch of all n samples, so every call evaluates the exact
    mean over the data (a pass of one batch; the Generator is still consumed, the indices do
    not depend on it). The "uniform" sampler with B = n would draw n indices *with
    replacement*, a bootstrap sample whose relative error O(1/√n) leaves a noise floor.
    One batch size serves both levels, so n_inner must equal n_outer."""
    from refbilevel.oracles.finite_sum import FiniteSumOracle

    n_inner, n_outer = int(problem.n_inner), int(problem.n_outer)
    if n_inner != n_outer:
        raise ValueError(f"noise=0 (the full batch) needs n_inner == n_outer (one batch "
                         f"size for both levels); got {n_inner} and {n_outer}: give "
                         "oracle={'batch': B, 'sampler': ...} instead")
    return FiniteSumOracle(problem, n_inner, rng, sampler="shuffled")


def _start(name: str, value: Any, default: Any, dim: int, replicas: int) -> np.ndarray:
    arr = np.asarray(default if value is None else value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a number, a vector of {dim} numbers or an (R, {dim}) "
                         f"array, got {value!r}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.ndim == 1:
        if arr.shape != (dim,):
            raise ValueError(f"{name} must be a number, a vector of {dim} numbers or an "
                             f"(R, {dim}) array, got shape {arr.shape}")
        arr = np.tile(arr, (replicas, 1))
    elif arr.ndim != 2 or arr.shape != (replicas, dim):
        raise ValueError(f"{name} must be a number, a vector of {dim} numbers or an "
                         f"({replicas}, {dim}) array (one row per replica), got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr.copy()


def _replicas(replicas: Any, *starts: Any) -> int:
    R = require_int("replicas", replicas, low=1)
    for s in starts:
        a = np.asarray(s) if s is not None else None
        if a is not None and a.ndim == 2 and R == 1:
            R = a.shape[0]
    return R


def prepare(problem: Any, method: str, *, mode: str = "default", problem_params=None,
            oracle: Any = None, noise: float | None = None, seed: int = 0,
            options: Mapping[str, Any] | None = None) -> tuple[SolverRecord, Any, Any, dict]:
    """(record, problem it runs on, oracle, options) for a run: the assumption check and the
    parameters, without running (the matrix uses it to refuse a cell)."""
    record = solver_record(method)
    require_choice("mode", mode, MODES)
    seed = require_int("seed", seed, low=0)
    options = dict(options or {})
    require_options(record, options)
    prob = resolve_problem(problem, problem_params)
    record.check(prob, mode)
    if record.as_problem is not None:
        prob = record.as_problem(prob)
    if oracle is None or isinstance(oracle, Mapping):
        settings = dict(oracle or {})
        if noise is not None:
            if "noise" in settings:
                raise ValueError("give noise either as an argument or in oracle, not both")
            settings["noise"] = noise
        orc, prob = make_oracle(prob, settings, seed)
    else:
        if noise is not None:
            raise ValueError("noise applies to an oracle solve builds; an oracle instance "
                             "carries its own")
        if getattr(oracle, "problem", None) is None:
            raise ValueError(f"oracle must be an oracle instance (with .problem) or a mapping "
                             f"of settings, got {type(oracle).__name__}")
        orc, prob = oracle, oracle.problem
    params = {**record.defaults(prob, mode), **options}
    return record, prob, orc, params


def solve(problem: Any, method: str, *, backend: str = "numpy", T: int | None = None,
          seed: int = 0, replicas: int = 1, x0: Any = None, y0: Any = None,
          noise: float | None = None, oracle: Any = None, mode: str = "default",
          record_every: int = 1, problem_params: Mapping[str, Any] | None = None,
          **options: Any) -> Any:
    """Run ``method`` on ``problem`` and return its :class:`~refbilevel.algorithms.trace.Trace`
    (see the module docstring; ``options`` are the method's parameters, ``refbilevel list``
    and each record name them). ``Trace.x`` has shape (n_records, R, d_x), ``x[0]`` the
    start; BSGM's λ is its x."""
    run = implementation("algorithm", method, backend)  # unknown name/backend: clear error
    R = _replicas(replicas, x0, y0)
    record_every = require_int("record_every", record_every, low=1)
    record, prob, orc, params = prepare(problem, method, mode=mode,
                                        problem_params=problem_params, oracle=oracle,
                                        noise=noise, seed=seed, options=options)
    d_x, d_y = _dims(prob)
    default_x0 = getattr(prob, "x0", None)
    x = _start("x0", x0, np.ones(d_x) if default_x0 is None else default_x0, d_x, R)
    y = _start("y0", y0, 0.0, d_y, R)
    if record.localize is not None:
        params = record.localize(prob, x, y, params, oracle=orc, mode=mode)
    if T is None:
        T = record.default_T(prob, mode, params)
    T = require_int("T", T, low=1)
    inputs = SolverInputs(oracle=orc, x0=x, y0=y, T=T, mode=mode, options=params,
                          record_every=record_every, seed=seed,
                          restart_rng=named_stream(seed, "restart"))
    t0 = time.perf_counter()
    trace = record.invoke(run, inputs)
    if getattr(trace, "wall_time_s", False) is None:
        # a compiled kernel does not read the clock (it would slow it): the call's wall time,
        # read once it returned its host arrays, i.e. after the work finished (on Numba it
        # includes the first call's compilation); NumPy traces time each record themselves
        trace.wall_time_s = time.perf_counter() - t0
    return trace


def _dims(problem: Any) -> tuple[int, int]:
    """(d_x, d_y) of a problem; a fixed-point problem's upper variable is λ (n), its lower w."""
    if hasattr(problem, "d_x"):
        return int(problem.d_x), int(problem.d_y)
    return int(problem.n), int(problem.d)
