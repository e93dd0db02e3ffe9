"""Closed-form bilevel problems, by name (``refbilevel list`` prints them).

To define a new problem, subclass :class:`~refbilevel.problems.base.BilevelProblem` and
implement its underscored methods, or wrap closed-form callables with
:class:`~refbilevel.problems.custom.ClosedFormProblem` (see its docstring); then
:func:`register` it so that every tool can name it (:mod:`refbilevel.problems.registry`).
"""

from __future__ import annotations

import inspect

from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants
from refbilevel.problems.registry import (
    ProblemEntry,
    import_problem_modules,
    problem_factory,
    problem_names,
    register,
    registered,
    unregister,
)

# The library's families: name -> "module:Class", imported on first use so one broken family
# cannot hide the others. Users add theirs with register() or the entry-point group.
_BUILTIN = {
    "unibio-example3": "refbilevel.problems.unibio_example3:UniBiOExample3",
    "uniformly-convex-separable": "refbilevel.problems.uniformly_convex:SeparableUniformlyConvex",
    "uniformly-convex-nonseparable":
        "refbilevel.problems.uniformly_convex:NonSeparableUniformlyConvex",
    "uniformly-convex-sharp-holder":
        "refbilevel.problems.uniformly_convex:SharpHolderUniformlyConvex",
    "uniformly-convex-bump": "refbilevel.problems.uniformly_convex_bump:UniformlyConvexBump",
    "lp-hypercleaning": "refbilevel.problems.hypercleaning:LpHyperCleaning",
    "logistic-cleaning": "refbilevel.problems.logistic_cleaning:LogisticCleaning",
    "quadratic": "refbilevel.problems.quadratic:StronglyConvexQuadratic",
    "finite-sum-quadratic": "refbilevel.problems.finite_sum_quadratic:FiniteSumQuadratic",
    "finite-sum-quadratic-householder":
        "refbilevel.problems.finite_sum_quadratic:householder_instance",
    "borep-p1": "refbilevel.problems.relaxed_smooth:RelaxedSmoothP1",
    "borep-p2": "refbilevel.problems.relaxed_smooth:RelaxedSmoothP2",
    "linear-contraction": "refbilevel.problems.contraction:LinearContraction",
    "ridge-contraction": "refbilevel.problems.contraction:RidgeContraction",
}


for _name, _target in _BUILTIN.items():
    register(_name, _target, _origin="builtin")


def problem_class(name: str):
    """The factory (for the library's families: the class) registered as ``name``."""
    return problem_factory(name)


def problem_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a registered problem's constructor, by name."""
    sig = inspect.signature(problem_class(name))
    return {k: p for k, p in sig.parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def make_problem(name: str, **params):
    """Instantiate a registered problem with keyword parameters.

    An unknown or missing parameter is a ValueError naming it and listing the allowed ones
    (the constructor's own TypeError names neither the problem nor the alternatives); the
    values themselves are validated by the constructor.
    """
    cls = problem_class(name)
    allowed = problem_parameters(name)
    accepts_any = any(p.kind is p.VAR_KEYWORD
                      for p in inspect.signature(cls).parameters.values())
    unknown = sorted(set(params) - set(allowed))
    if unknown and not accepts_any:
        raise ValueError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"of problem {name!r}; allowed: {', '.join(allowed) or 'none'}")
    missing = [k for k, p in allowed.items() if p.default is p.empty and k not in params]
    if missing:
        raise ValueError(f"problem {name!r} needs parameter{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)} (allowed: {', '.join(allowed)})")
    return cls(**params)


__all__ = ["BilevelProblem", "Constants", "ProblemEntry", "import_problem_modules",
           "make_problem", "problem_class", "problem_factory", "problem_names",
           "problem_parameters", "register", "registered", "unregister"]
