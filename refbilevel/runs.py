"""One algorithm run from names: problem, oracle, start, mode and backend
(``refbilevel run`` and ``refbilevel compare-backends``; docs/design.rst problem → oracle →
algorithm → trace).

:class:`RunSpec` names everything a run needs; :func:`execute` hands it to
:func:`refbilevel.solve`, which builds the problem (a registered name; without parameters the
problem's default instance), the oracle that fits it (by the problem's type: a Gaussian
oracle with standard deviation ``noise``, a finite-sum oracle with minibatch ``batch`` —
full batch at ``noise=0`` — or a contraction oracle), the start, checks the method's
assumptions and computes its parameters for the mode from the problem's constants
(:mod:`refbilevel.solver_record`). Randomness comes from ``named_stream(seed, "oracle")``
(and ``"restart"`` for UniBiO's random restarts), so the same spec gives the same trajectory
on every backend.

Start: ``x0`` and ``y0`` may be a number (every coordinate) or a list; by default ``x0`` is
the problem's own ``x0`` when it defines one, otherwise the vector of ones, and ``y0`` is
zero. Every replica starts at the same point.

Method options (``refbilevel run soba --set step_size=0.05``) override the mode's values;
an unknown name is an error naming the allowed ones.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, by name (see the module docstring for the defaults)."""

    algorithm: str
    problem: str
    problem_params: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    T: int | None = None  # None: the method's default T for the mode (its SolverRecord)
    replicas: int = 1
    seed: int = 0
    noise: float | None = None  # None: 0.1 for a Gaussian oracle, a contraction's own levels
    batch: int | None = None  # None: 64 (full batch when noise = 0)
    mode: str = "default"
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
    from refbilevel.solver import resolve_problem

    problem = resolve_problem(spec.problem, spec.problem_params)
    return problem, getattr(problem, "x0", None)


def execute(spec: RunSpec, backend: str = "numpy") -> Any:
    """Run ``spec`` on ``backend`` through :func:`refbilevel.solve`; returns its
    :class:`~refbilevel.algorithms.trace.Trace`."""
    from refbilevel.solver import solve

    oracle = {k: v for k, v in (("noise", spec.noise), ("batch", spec.batch)) if v is not None}
    return solve(spec.problem, spec.algorithm, backend=backend, T=spec.T, seed=spec.seed,
                 replicas=spec.replicas, x0=spec.x0, y0=spec.y0, oracle=oracle,
                 mode=spec.mode, record_every=spec.record_every,
                 problem_params=dict(spec.problem_params), **dict(spec.options))
