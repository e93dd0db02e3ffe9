"""The array module a problem computes with: NumPy, or CuPy for the GPU backend
(docs/design.rst §Contracts: each family's mathematics is written once, with the array module
as a parameter).

A family writes its arithmetic with ``self.xp`` (``self.xp.sin``, ``self.xp.where``, ...)
instead of ``np``; :meth:`OnArrayModule.on` then gives the same problem with its array
parameters on another module, e.g. ``problem.on(cupy)``, which is what the CuPy estimators
evaluate. The library's helpers that take arrays (:func:`array_module`,
:func:`~refbilevel.problems.base.batch_broadcast`, :mod:`refbilevel.power_map`) find the
module from their arguments.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np


def array_module(*arrays: Any) -> Any:
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (CuPy is imported only then)."""
    for a in arrays:
        if type(a).__module__.partition(".")[0] == "cupy":
            import cupy

            return cupy
    return np


class OnArrayModule:
    """An object whose array attributes can move to another array module (see the module
    docstring). Attributes that are NumPy arrays are converted with ``xp.asarray``; attributes
    that are themselves :class:`OnArrayModule` (a problem's spectral factors) move with it;
    everything else (floats, :class:`~refbilevel.problems.constants.Constants`) is shared."""

    #: the array module of the parameters and the arithmetic
    xp: Any = np
    #: False for a family whose arithmetic is not written with ``self.xp`` (NumPy only)
    supports_array_modules: ClassVar[bool] = True

    def on(self, xp: Any):
        """This object with its array attributes on ``xp`` (the same object for its own
        module; ``on(numpy)`` of a moved object is the original)."""
        if xp is self.xp:
            return self
        host = self.__dict__.get("_host", self)
        if xp is np:
            return host
        if not type(self).supports_array_modules:
            from refbilevel.backends.registry import NotImplementedOnBackendError

            raise NotImplementedOnBackendError(
                f"{type(self).__name__} computes with NumPy only (its methods are not "
                "written with self.xp), so it has no device version; see "
                "refbilevel.array_module")
        view = copy.copy(host)
        view.xp = xp
        view._host = host
        for key, value in vars(host).items():
            if isinstance(value, np.ndarray):
                setattr(view, key, xp.asarray(value))
            elif isinstance(value, OnArrayModule):
                setattr(view, key, value.on(xp))
        return view
