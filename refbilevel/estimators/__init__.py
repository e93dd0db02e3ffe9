"""Hypergradient estimators, one module per estimator (NumPy reference), with its Numba
kernel in ``<name>_numba.py`` and CuPy path where one exists. Importing this package
registers every implementation in :mod:`refbilevel.backends`.
"""

import importlib
import pkgutil

from refbilevel.estimators.result import Estimate

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_") and _mod.name != "result":
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["Estimate"]
