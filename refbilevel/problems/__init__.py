"""Closed-form bilevel problems, by name (``refbilevel list`` prints them).

To define a new problem, subclass :class:`~refbilevel.problems.base.BilevelProblem` and
implement its underscored methods, or wrap closed-form callables with
:class:`~refbilevel.problems.custom.ClosedFormProblem` (see its docstring).
"""

from __future__ import annotations

import importlib

from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import Constants

# name -> "module:Class"; modules load lazily so one broken family cannot hide the others
_REGISTRY = {
    "unibio-example3": "refbilevel.problems.unibio_example3:UniBiOExample3",
    "uniformly-convex-separable": "refbilevel.problems.uniformly_convex:SeparableUniformlyConvex",
    "uniformly-convex-nonseparable":
        "refbilevel.problems.uniformly_convex:NonSeparableUniformlyConvex",
    "uniformly-convex-sharp-holder":
        "refbilevel.problems.uniformly_convex:SharpHolderUniformlyConvex",
    "lp-hypercleaning": "refbilevel.problems.hypercleaning:LpHyperCleaning",
    "logistic-cleaning": "refbilevel.problems.logistic_cleaning:LogisticCleaning",
    "quadratic": "refbilevel.problems.quadratic:StronglyConvexQuadratic",
    "finite-sum-quadratic": "refbilevel.problems.finite_sum_quadratic:FiniteSumQuadratic",
    "borep-p1": "refbilevel.problems.relaxed_smooth:RelaxedSmoothP1",
    "borep-p2": "refbilevel.problems.relaxed_smooth:RelaxedSmoothP2",
    "linear-contraction": "refbilevel.problems.contraction:LinearContraction",
    "ridge-contraction": "refbilevel.problems.contraction:RidgeContraction",
}


def problem_names() -> list[str]:
    return sorted(_REGISTRY)


def problem_class(name: str) -> type:
    if name not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(problem_names())}")
    module, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_problem(name: str, **params):
    """Instantiate a registered problem with keyword parameters."""
    return problem_class(name)(**params)


__all__ = ["BilevelProblem", "Constants", "make_problem", "problem_class", "problem_names"]
