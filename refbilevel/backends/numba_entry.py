"""Calling a Numba kernel whose argument types are fixed by construction, without the
dispatcher's per-call type resolution (docs/design.rst §Backends; issue #3, SID at one replica).

Why. A Numba dispatcher call first computes the Numba type of every argument to pick the
compiled overload. For arrays that is a fast C path; for a ``numpy.random.Generator`` it is
the Python-level ``typeof`` (≈ 7 µs with Numba 0.68), and the kernels that draw their
random numbers from the Generator passed in take ~20 arguments. At one replica SID's whole
compiled work is ≈ 75 µs, so this resolution alone was a tenth of the call.

How. :class:`FixedTypeKernel` resolves the overload on its first call, through the
dispatcher as usual (compiling, or loading Numba's on-disk cache), remembers the compiled
entry point of that signature and calls it directly from then on. The unboxing of the
arguments still happens in the entry point, so a wrong *value* is still converted or
rejected there; what is skipped is only the choice between overloads. That is safe only if
every later call has the same argument *types* (dtype, ndim, layout, scalar kinds) as the
first, which the callers guarantee: they build every argument with fixed dtypes and
C-contiguous copies (see :func:`refbilevel.estimators.sid.prepare_sid_inputs` and
:class:`refbilevel.oracles.contraction.ContractionOracle`). Each call site checks this in
its tests by comparing against the plain dispatcher (same values, bit for bit).
"""

from __future__ import annotations

from typing import Any


class FixedTypeKernel:
    """Wrap a Numba dispatcher whose callers always pass the same argument types.

    ``FixedTypeKernel(kernel)(*args)`` returns what ``kernel(*args)`` returns. The first call
    goes through the dispatcher; later calls go straight to the compiled entry point of the
    signature that call resolved. Call :meth:`via_dispatcher` to force the ordinary path
    (used by the tests as the reference).
    """

    def __init__(self, dispatcher: Any):
        self.dispatcher = dispatcher
        self._entry: Any = None
        self.signature: tuple | None = None

    def __call__(self, *args: Any) -> Any:
        entry = self._entry
        if entry is not None:
            return entry(*args)
        result = self.dispatcher(*args)
        sig = tuple(self.dispatcher.typeof_pyval(a) for a in args)
        # ``overloads`` maps argument-type tuples to compile results; the entry point is the
        # compiled wrapper that unboxes Python arguments and runs the kernel.
        self._entry = self.dispatcher.overloads[sig].entry_point
        self.signature = sig
        return result

    def via_dispatcher(self, *args: Any) -> Any:
        """The ordinary dispatcher call (type resolution on every call)."""
        return self.dispatcher(*args)
