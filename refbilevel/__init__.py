"""refbilevel: reference implementation of stochastic bilevel optimization.

The data flow is problem → oracle → estimator → algorithm → trace → check → verdict
(see docs/design.rst and the README).
"""

__version__ = "0.1.0"

from refbilevel.solver import solve  # noqa: E402  (the one entry point, docs/design.rst)

__all__ = ["__version__", "solve"]
