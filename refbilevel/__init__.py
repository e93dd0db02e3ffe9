"""refbilevel: reference implementation of stochastic bilevel optimization.

The data flow is problem → oracle → estimator → algorithm → trace → check → verdict
(see docs/design.rst and the README).
"""

__version__ = "0.1.0"
