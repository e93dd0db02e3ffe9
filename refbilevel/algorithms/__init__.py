"""Bilevel algorithms, one module per algorithm (NumPy reference), with its Numba kernel in
``<name>_numba.py``. Every algorithm takes an oracle and explicit start points batched over
replicas (leading axis) and returns a :class:`~refbilevel.algorithms.trace.Trace`.
Importing this package registers every implementation in :mod:`refbilevel.backends`.
"""

import importlib
import pkgutil

from refbilevel.algorithms.trace import Trace, TraceRecorder

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "trace":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["Trace", "TraceRecorder"]
