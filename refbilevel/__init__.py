"""refbilevel: reference implementation of stochastic bilevel optimization.

The data flow is problem → oracle → estimator → algorithm → trace → check → verdict
(see docs/design.rst and the README).
"""

__version__ = "0.1.0"

from refbilevel.solver import solve  # noqa: E402  (the one entry point, docs/design.rst)

__all__ = ["__version__", "solve", "Trace", "load_trace", "save_trace", "load_frame"]

#: names importable from the package itself, loaded on first use (``refbilevel.load_trace``)
_LAZY = {"Trace": "refbilevel.algorithms.trace", "load_trace": "refbilevel.algorithms.trace",
         "save_trace": "refbilevel.algorithms.trace", "load_frame": "refbilevel.algorithms.trace"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'refbilevel' has no attribute {name!r}")
