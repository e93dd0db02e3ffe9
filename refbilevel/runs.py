"""One algorithm run from names: problem, oracle, start and backend
(``refbilevel run`` and ``refbilevel compare-backends``; docs/design.rst problem → oracle →
algorithm → trace).

:class:`RunSpec` names everything a run needs; :func:`execute` builds the problem
(:func:`refbilevel.problems.make_problem`), the oracle that fits it, the start, and calls
the registered implementation of the algorithm on the chosen backend. Randomness comes from
``named_stream(seed, "oracle")`` (and ``"restart"`` for UniBiO's random restarts), so the
same spec gives the same trajectory on every backend.

Which oracle (docs/baselines.rst §10.2, docs/sid_bsgm.rst §4.1, docs/design.rst §Oracles):

* ``finite-sum-quadratic`` → :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`
  (minibatch ``batch``, uniform sampler);
* ``linear-contraction`` → :class:`~refbilevel.oracles.contraction.ContractionOracle`
  (only BSGM runs on it); without problem parameters the golden instance of
  docs/sid_bsgm.rst §14.1 is used, started at its λ;
* every other problem → :class:`~refbilevel.oracles.gaussian.GaussianOracle` with the same
  standard deviation ``noise`` on every oracle kind.

Start (NOT RECOVERED in the spec for a generic run; our choice): ``x0`` and ``y0`` may be a
number (every coordinate) or a list; by default ``x0`` is the problem's own ``x0`` when it
defines one (the finite-sum quadratic does), otherwise the vector of ones, and ``y0`` is
zero. Every replica starts at the same point.

Algorithm options are passed as keyword arguments to the implementation
(``refbilevel run soba --set step_size=0.05``). UniBiO takes a parameter record instead:
its options override :func:`refbilevel.algorithms.unibio.tuned_params` (docs/unibio.rst
§7.1) for the problem's p.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refbilevel.backends import implementation
from refbilevel.randomness import named_stream
from refbilevel.validation import require_int, require_range

#: problems whose oracle is not the Gaussian one
FINITE_SUM_PROBLEMS = ("finite-sum-quadratic",)
CONTRACTION_PROBLEMS = ("linear-contraction",)
#: horizon when the spec gives none and the algorithm has no default of its own
DEFAULT_T = 1000


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, by name (see the module docstring for the defaults)."""

    algorithm: str
    problem: str
    problem_params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    T: int | None = None  # None: the algorithm's own default (UniBiO: tuned_params' T)
    replicas: int = 1
    seed: int = 0
    noise: float = 0.1
    batch: int = 64
    x0: float | Sequence[float] | None = None
    y0: float | Sequence[float] | None = None
    record_every: int = 1


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"name=value"`` → (name, value); the value is a Python literal when it parses as one
    (``0.1``, ``(0.5, 0.5)``, ``True``, ``None``), otherwise the string itself."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"expected name=value, got {text!r}")
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        value = raw.strip()
    return name.strip(), value


def build_problem(spec: RunSpec) -> tuple[Any, Any]:
    """(problem, default start or None) for the spec's problem name and parameters."""
    from refbilevel.problems import make_problem

    if spec.problem in CONTRACTION_PROBLEMS and not spec.problem_params:
        from refbilevel.problems.contraction import golden_instance

        g = golden_instance()
        return g.problem, g.lam
    problem = make_problem(spec.problem, **dict(spec.problem_params))
    return problem, getattr(problem, "x0", None)


def build_oracle(spec: RunSpec, problem: Any) -> Any:
    """The oracle that fits the problem (module docstring), on the ``"oracle"`` stream."""
    rng = named_stream(spec.seed, "oracle")
    if spec.problem in CONTRACTION_PROBLEMS:
        from refbilevel.oracles.contraction import ContractionOracle

        return ContractionOracle(problem, rng)
    if spec.problem in FINITE_SUM_PROBLEMS:
        from refbilevel.oracles.finite_sum import FiniteSumOracle

        return FiniteSumOracle(problem, require_int("batch", spec.batch, low=1), rng)
    from refbilevel.oracles.gaussian import GaussianOracle

    return GaussianOracle(problem, require_range("noise", spec.noise, low=0.0), rng)


def _start(name: str, value: Any, default: Any, dim: int, replicas: int) -> np.ndarray:
    if value is None:
        value = default
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(dim, float(arr))
    if arr.shape != (dim,):
        raise ValueError(f"{name} must be a number or a list of {dim} numbers, got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return np.tile(arr, (replicas, 1))


def execute(spec: RunSpec, backend: str = "numpy") -> Any:
    """Run ``spec`` on ``backend``; returns the algorithm's trace
    (:class:`~refbilevel.algorithms.trace.Trace`, or a BSGM trace for BSGM)."""
    run = implementation("algorithm", spec.algorithm, backend)
    R = require_int("replicas", spec.replicas, low=1)
    if spec.T is not None:
        require_int("T", spec.T, low=1)
    problem, default_x0 = build_problem(spec)
    contraction = spec.problem in CONTRACTION_PROBLEMS
    if contraction != (spec.algorithm == "bsgm"):
        raise ValueError(
            f"algorithm {spec.algorithm!r} cannot run on problem {spec.problem!r}: BSGM runs "
            f"on the contraction problems ({', '.join(CONTRACTION_PROBLEMS)}) and only there")
    oracle = build_oracle(spec, problem)
    options = dict(spec.options)
    _check_options(spec.algorithm, run, options)
    if contraction:
        lam0 = _start("x0", spec.x0, default_x0, oracle.n, R)
        return run(oracle, lam0, spec.T if spec.T is not None else DEFAULT_T, seed=spec.seed,
                   **options)
    x0 = _start("x0", spec.x0, np.ones(problem.d_x) if default_x0 is None else default_x0,
                problem.d_x, R)
    y0 = _start("y0", spec.y0, 0.0, problem.d_y, R)
    if spec.algorithm == "unibio":
        from refbilevel.algorithms.unibio import tuned_params

        if spec.T is not None:
            options["T"] = spec.T
        params = tuned_params(problem.p, **options)
        return run(oracle, x0, y0, params, record_every=spec.record_every, seed=spec.seed,
                   restart_rng=named_stream(spec.seed, "restart"))
    if spec.T is not None:
        options["T"] = spec.T
    elif inspect.signature(run).parameters["T"].default is inspect.Parameter.empty:
        options["T"] = DEFAULT_T
    return run(oracle, x0, y0, record_every=spec.record_every, seed=spec.seed, **options)


#: arguments ``execute`` sets itself; an option may not name them
_RESERVED = ("oracle", "x0", "y0", "lam0", "T", "params", "record_every", "seed",
             "restart_rng", "replicas")


def _check_options(algorithm: str, run: Any, options: dict[str, Any]) -> None:
    """Unknown option names fail here, naming the allowed ones (not deep in a kernel)."""
    if algorithm == "unibio":
        from refbilevel.algorithms.unibio import UniBiOParams

        allowed = [f.name for f in dataclasses.fields(UniBiOParams) if f.name != "T"]
    else:
        params = inspect.signature(run).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return  # the implementation validates its own overrides (BO-REP)
        allowed = [n for n in params if n not in _RESERVED]
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ValueError(f"unknown option(s) {', '.join(bad)} for algorithm {algorithm!r}; "
                         f"allowed: {', '.join(allowed)}")
