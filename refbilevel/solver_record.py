"""The solver contract: one registered :class:`SolverRecord` per algorithm (docs/design.rst
§Contracts, "Solver").

A record says everything :func:`refbilevel.solve` needs to run an algorithm without knowing
its name: the assumptions a problem must satisfy (checked before the run; a problem outside
them is refused with a one-line error naming the assumption), the option names a user may
set, the defaults computed from the problem's constants in each mode, the default horizon T,
the per-iteration oracle counts its paper states, and an adapter (``invoke``) from the one
calling convention of :class:`SolverInputs` to the implementation's signature. The
implementations themselves are registered per backend in :mod:`refbilevel.backends`
(``register("algorithm", name, backend)``).

Adding an algorithm: ``refbilevel/algorithms/<name>.py`` (NumPy reference, with its record
registered by :func:`register_solver` at the bottom of the module) and
``refbilevel/algorithms/<name>_numba.py`` (its kernel). Nothing else changes: the CLI, the
sweeps, the checks and the matrix find it in the registry.

Modes (every record):

* ``"default"``: theory-shaped parameters computed from the problem's constants (each
  record's docstring gives the derivation and the paper's step-size conditions it satisfies);
* ``"theory"``: the theorem's ε-schedule with the paper's constants (what the implementations
  call ``mode="theory"``; extra inputs such as ``theory_constants`` or ``eps`` are options);
* ``"paper"``: the authors' fixed values (the implementations' ``mode="tuned"`` defaults).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MODES = ("default", "theory", "paper")


class AssumptionError(ValueError):
    """A problem outside an algorithm's assumptions (the message names the assumption)."""


@dataclass(frozen=True)
class Assumption:
    """One hypothesis of a convergence theorem, checkable on a problem before a run.

    ``text`` is what a refusal prints (``refused: <text>``); ``holds(problem)`` decides it
    from the problem's structure and stated constants (a constant the problem cannot state
    counts as not holding: the theorem cannot be instantiated). An assumption that is
    ``for_parameters`` only asks for a constant that the "default" and "theory" parameters
    are computed from; the "paper" mode (the authors' fixed values) needs none, so it runs
    without it, and the user answers for the hypothesis (e.g. a problem whose ∇φ is
    Lipschitz with no useful stated constant, like ``logistic-cleaning``)."""

    text: str
    holds: Callable[[Any], bool]
    label: str = ""  # a few words for the matrix's cells; default: text before "("
    for_parameters: bool = False

    @property
    def short(self) -> str:
        """What the matrix prints after ``refused:``."""
        return self.label or self.text.split(" (")[0]


@dataclass(frozen=True)
class SolverInputs:
    """The one calling convention: what :func:`refbilevel.solve` hands to a record's
    ``invoke`` (start points already validated and batched over the R replicas)."""

    oracle: Any
    x0: np.ndarray  # (R, d_x)
    y0: np.ndarray  # (R, d_y)
    T: int
    mode: str
    options: dict[str, Any]  # the record's defaults for the mode, updated by the user's
    record_every: int
    seed: int
    restart_rng: np.random.Generator


@dataclass(frozen=True)
class SolverRecord:
    """One algorithm (see the module docstring). ``defaults(problem, mode)`` returns the
    implementation options of that mode; ``default_T(problem, mode, options)`` the horizon;
    ``invoke(implementation, inputs)`` runs it and returns a
    :class:`~refbilevel.algorithms.trace.Trace`. ``options`` are the names a user may set
    (anything else is an error naming the allowed ones). ``as_problem`` maps a covered
    problem to the form the implementation runs on (BSGM: the gradient-descent map of a
    strongly convex quadratic lower level); None for the identity. ``localize(problem, x0,
    y0, options, oracle=..., mode=...)`` fills the parameters that need the start or the
    oracle: a constant the problem has no global value of (BO-REP's ρ = l_{f,0}/μ on the
    quadratic), on a ball around the start, or a theory schedule that depends on φ(x0), the
    noise levels and the target ε (UniBiO's).
    ``counts`` are the per-iteration oracle calls its paper states (claim X3), or None
    where they are a schedule (docs section in ``reference``). ``step_options`` name the
    options that are step sizes (X5's control multiplies them). ``paper_counts(trace,
    problem)`` gives the cumulative oracle calls by kind at the trace's records that the
    paper states (claim X3; ``counts_reference`` says where). ``parity()`` gives the
    :class:`~refbilevel.runs.RunSpec` fields of the method's backend-comparison run (the
    settings of its tests; ``refbilevel compare-backends``, X4), ``parity_T_cap`` the most
    iterations that run takes."""

    name: str
    reference: str
    assumptions: tuple[Assumption, ...]
    options: tuple[str, ...]
    defaults: Callable[[Any, str], dict[str, Any]]
    default_T: Callable[[Any, str, Mapping[str, Any]], int]
    invoke: Callable[[Callable[..., Any], SolverInputs], Any]
    counts: Mapping[str, Any] | None = None
    step_options: tuple[str, ...] = ()
    paper_counts: Callable[[Any, Any], dict[str, np.ndarray]] | None = None
    counts_reference: str = ""
    parity: Callable[[], dict[str, Any]] | None = None
    parity_T_cap: int | None = None
    as_problem: Callable[[Any], Any] | None = None
    localize: Callable[..., dict[str, Any]] | None = None

    def refusal(self, problem: Any, mode: str = "default") -> Assumption | None:
        """The first assumption the problem does not satisfy in ``mode``, or None."""
        for a in self.assumptions:
            if a.for_parameters and mode == "paper":
                continue
            try:
                ok = bool(a.holds(problem))
            except (AttributeError, KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                return a
        return None

    def check(self, problem: Any, mode: str = "default") -> None:
        """Raise :class:`AssumptionError` naming the first assumption that fails in
        ``mode``."""
        why = self.refusal(problem, mode)
        if why is not None:
            raise AssumptionError(f"{self.name} refuses {type(problem).__name__}: its "
                                  f"theory needs {why.text} ({self.reference})")


_SOLVERS: dict[str, SolverRecord] = {}


def register_solver(record: SolverRecord) -> SolverRecord:
    if record.name in _SOLVERS and _SOLVERS[record.name] is not record:
        raise ValueError(f"solver {record.name!r} is already registered")
    _SOLVERS[record.name] = record
    return record


def _load() -> None:
    import refbilevel.algorithms  # noqa: F401  (importing it registers every record)


def solver_names() -> list[str]:
    _load()
    return sorted(_SOLVERS)


def solver_record(name: str) -> SolverRecord:
    _load()
    if name not in _SOLVERS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(sorted(_SOLVERS))}")
    return _SOLVERS[name]


# ---- the constants the defaults are computed from ---------------------------------------------
def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


@dataclass(frozen=True)
class StepConstants:
    """The problem constants the default step sizes use (docs/unibio.rst §2 names), each a
    global constant of the problem (``problem.constants``):

    * ``mu``: strong-convexity modulus of g(x, ·) (p = 2);
    * ``L_y``: the largest eigenvalue of ∇²_yy g (``L_y``, else ``C``, the bound on the
      generalized Hessian, which equals it at p = 2);
    * ``L_phi``: the Lipschitz constant of ∇φ — the problem's ``L_phi2`` where it states one
      (the quadratic states ||∇²φ|| exactly), else the surrogate constant L̄ of
      docs/unibio.rst §3.3;
    * ``m_phi``: the curvature that sets the horizon: λ_min(∇²φ) where the problem states a
      positive one, else ``mu`` (a proxy: the horizons are ``ln(1e3)/(γ m_phi)``, the
      iterations a gradient method with step γ needs to gain three decades on a function
      with that curvature).
    """

    mu: float
    L_y: float
    L_phi: float
    m_phi: float

    @property
    def kappa(self) -> float:
        return self.L_y / self.mu

    @staticmethod
    def hypergradient_lipschitz(problem: Any) -> float:
        """L_φ alone (``L_phi2``, else L̄), for methods that need no lower-level constant."""
        from refbilevel.problems.constants import surrogate_lipschitz_constant

        c = problem.constants
        L_phi = _positive(c.L_phi2) or _positive(surrogate_lipschitz_constant(c))
        if L_phi is None:
            raise ValueError(f"{type(problem).__name__} states neither L_phi2 nor L̄")
        return L_phi

    @classmethod
    def of(cls, problem: Any) -> StepConstants:
        from refbilevel.problems.constants import surrogate_lipschitz_constant

        c = problem.constants
        mu = _positive(c.mu)
        L_y = _positive(c.L_y) or _positive(c.C)
        L_phi = _positive(c.L_phi2) or _positive(surrogate_lipschitz_constant(c))
        if mu is None or L_y is None or L_phi is None:
            raise ValueError(f"{type(problem).__name__} does not state mu, L_y (or C) and "
                             "L_phi2 (or the ingredients of L̄)")
        m_phi = _positive(c.extra.get("lambda_min_hessian_phi")) or mu
        return cls(mu=mu, L_y=L_y, L_phi=L_phi, m_phi=min(m_phi, L_phi))


#: decades a default horizon aims to gain: ln(1e3)
HORIZON_LOG = math.log(1e3)
#: no default horizon beyond this (the matrix's one-minute budget per cell on Numba)
MAX_DEFAULT_T = 200_000


def horizon(rate: float, scale: float = 1.0) -> int:
    """⌈scale · ln(1e3)/rate⌉ iterations (rate: the per-iteration contraction 1 − rate of
    the slowest mode), at least 1 and at most :data:`MAX_DEFAULT_T`."""
    return int(min(MAX_DEFAULT_T, max(1, math.ceil(scale * HORIZON_LOG / rate))))


# ---- assumptions shared by several records ----------------------------------------------------
def _is_bilevel(problem: Any) -> bool:
    from refbilevel.problems.base import BilevelProblem

    return isinstance(problem, BilevelProblem)


LOWER_LEVEL_GRADIENTS = Assumption(
    "a lower level given by g(x, ·) with gradient and Hessian oracles (not a fixed-point map)",
    _is_bilevel, "LL given by g")
STRONGLY_CONVEX_LL = Assumption(
    "a strongly convex lower level (p = 2, mu > 0)",
    lambda P: float(P.constants.p) == 2.0 and _positive(P.constants.mu) is not None,
    "strongly convex LL")
SMOOTH_LL = Assumption(
    "a Lipschitz ∇_y g (L_y, or C at p = 2, stated)",
    lambda P: (_positive(P.constants.L_y) or _positive(P.constants.C)) is not None,
    "Lipschitz ∇_y g")
LIPSCHITZ_HYPERGRADIENT = Assumption(
    "a Lipschitz ∇φ with its constant stated (L_phi2, or the ingredients of L̄; relaxed "
    "(L_0, L_1) upper levels are outside), from which the step sizes are computed; "
    "mode='paper' runs the authors' fixed values without it",
    lambda P: StepConstants.of(P) is not None, "Lipschitz ∇φ", for_parameters=True)


def _bounded_below(problem: Any) -> bool:
    """False for a problem that states a negative λ_min(∇²φ): a problem states one number
    only when ∇²φ is constant (φ quadratic), and a quadratic with a negative curvature
    direction is unbounded below."""
    lam = problem.constants.extra.get("lambda_min_hessian_phi")
    return lam is None or float(lam) >= 0.0


PHI_BOUNDED_BELOW = Assumption(
    "a hyperobjective bounded below (inf φ > −∞; the problem states λ_min(∇²φ) < 0 for a "
    "quadratic φ)", _bounded_below, "φ bounded below")
FINITE_SUM = Assumption(
    "a finite-sum problem (n_inner, n_outer samples for the SAGA memory)",
    lambda P: hasattr(P, "n_inner") and hasattr(P, "n_outer"), "finite sum")


def require_options(record: SolverRecord, options: Mapping[str, Any]) -> None:
    """Unknown option names fail here, naming the allowed ones."""
    bad = sorted(set(options) - set(record.options))
    if bad:
        raise ValueError(f"unknown option(s) {', '.join(bad)} for method {record.name!r}; "
                         f"allowed: {', '.join(record.options)}")
