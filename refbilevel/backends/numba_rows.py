"""Borrowed rows: one replica's row of a 2-D array as a 1-D view that is not reference-counted
(docs/design.rst §Backends, "Kernels near the floor").

Why. A kernel's loop over replicas takes row views (``X[r]``, the replica's noise row, its
workspace rows) and hands them to the oracle rows. Numba gives every view a reference to its
parent's memory and counts it: an atomic increment when the view is made and a decrement
when it dies, each a call of ``NRT_incref``/``NRT_decref`` (which Numba never inlines).
Numba's reference-count pruning removes the pairs only in simple control flow, and a
replica's iteration has branches (the frozen-replica test, the finiteness test, the noise
switch). Measured with ``perf`` on SOBA over UniBiO Example 3 (d = 1, R = 32, one thread):
the two functions took ~17 % of the kernel's time, and borrowed rows made a replica-iteration
17 % cheaper on Example 3 (99 -> 82 ns) and on BO-REP's P2 (413 -> 344 ns).

The rule that makes it safe: a borrowed row lives only inside the kernel body that borrowed
it, while the parent array is alive (the kernel's arguments and its own allocations are, for
the whole call). Never return a borrowed row, store it in a record that outlives the loop
body or hand it to code that keeps it. Its contents are the parent's memory, as with
``X[r]``: writes go to the parent.

A limit met once (Numba 0.68): in the SGD linear-system estimator's parallel kernel, borrowed
rows made the parfor pass stop with "Overwrite of parallel loop index", even taken at the
top of the prange bodies; that kernel keeps ``X[r]``. Its parity test with the parallel
kernels (tests/test_estimators.py, marked slow) is where such a failure shows.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array

__all__ = ["borrowed_row", "borrowed_subrow"]


def borrowed_row(A, r):
    """Row r of the 2-D array A as a 1-D view without reference counting (module docstring);
    ``A[r]`` for an array that is not C-contiguous. Compiled code only; 0 <= r < len(A),
    unchecked (unlike ``A[r]``, a negative r does not count from the end)."""
    raise NotImplementedError("compiled code only")


@intrinsic
def _c_row(typingctx, A, r):
    """Row r of a C-contiguous array seen as (rows, last axis): for a 3-D (n, R, m) array,
    row j R + r is (j, r)."""
    rowty = A.copy(ndim=1, layout="C")

    def codegen(context, builder, sig, args):
        a = make_array(sig.args[0])(context, builder, args[0])
        r = context.cast(builder, args[1], sig.args[1], types.intp)
        shape = cgutils.unpack_tuple(builder, a.shape)
        strides = cgutils.unpack_tuple(builder, a.strides)
        row = make_array(rowty)(context, builder)
        populate_array(row, data=builder.gep(a.data, [builder.mul(r, shape[-1])]),
                       shape=[shape[-1]], strides=[strides[-1]], itemsize=a.itemsize,
                       meminfo=None, parent=None)
        return row._getvalue()
    return rowty(A, r), codegen


@overload(borrowed_row, inline="always")
def _borrowed_row(A, r):
    if not (isinstance(A, types.Array) and A.ndim == 2 and isinstance(r, types.Integer)):
        raise TypeError("borrowed_row(A, r): A a 2-D array, r an integer")
    if A.layout == "C":
        def impl(A, r):
            return _c_row(A, r)
    else:
        def impl(A, r):
            return A[r]
    return impl


def borrowed_subrow(A, j, r):
    """``A[j, r]`` of the 3-D array A as a 1-D view without reference counting (the rule of
    the module docstring); ``A[j, r]`` for an array that is not C-contiguous. Compiled code
    only; 0 <= j < A.shape[0] and 0 <= r < A.shape[1], unchecked."""
    raise NotImplementedError("compiled code only")


@overload(borrowed_subrow, inline="always")
def _borrowed_subrow(A, j, r):
    if not (isinstance(A, types.Array) and A.ndim == 3 and isinstance(j, types.Integer)
            and isinstance(r, types.Integer)):
        raise TypeError("borrowed_subrow(A, j, r): A a 3-D array, j and r integers")
    if A.layout == "C":
        def impl(A, j, r):
            return _c_row(A, j * A.shape[1] + r)
    else:
        def impl(A, j, r):
            return A[j, r]
    return impl
