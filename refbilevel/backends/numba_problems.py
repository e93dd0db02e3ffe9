"""Problems as Numba records: the contract between a problem family and the Numba kernels.

Why this module exists. Numba kernels cannot call the Python methods of a
:class:`~refbilevel.problems.base.BilevelProblem`, so every estimator and algorithm kernel
needs the problem's derivatives as compiled functions and its data as a value Numba can
type. This module defines how a family provides both, keeps the one registry of families,
and gives the kernels one generic name per primitive (docs/design.rst §Backends).

The contract. A *Numba family* (:class:`NumbaFamily`) is

- a **record type**: a ``typing.NamedTuple`` class whose fields are the problem's data
  (float64 arrays, floats, bools), read by name in the primitives (``P.y_ref``, ``P.c``);
- a **builder** ``build(problem) -> record`` (:func:`readonly` for every array, so that the
  record's Numba type is the same for every instance);
- the **primitives**, ``@njit`` functions of one replica with the uniform signatures below
  (the conventions of problems/base.py: ∇²_xy g is d_x × d_y, H is in the Jacobian
  convention and the hypergradient applies H^T, docs/unibio.rst §1.6)::

    grad_x_f(P, x, y, out)      ∇_x f          out ∈ R^{d_x}
    grad_y_f(P, x, y, out)      ∇_y f          out ∈ R^{d_y}
    grad_x_g(P, x, y, out)      ∇_x g          out ∈ R^{d_x}
    grad_y_g(P, x, y, out)      ∇_y g          out ∈ R^{d_y}
    hvp(P, x, y, v, out)        ∇²_yy g v      out ∈ R^{d_y}
    jvp(P, x, y, v, out)        ∇²_xy g v      out ∈ R^{d_x}
    f_u(P, x, y, out)           df/d[y]^{∘(p-1)}            (docs/unibio.rst §1.5)
    gen_hvp(P, x, y, v, out)    H v                          (docs/unibio.rst §1.4)
    gen_hvp_T(P, x, y, v, out)  H^T v                        (docs/unibio.rst §1.6)

  x, y, v and out are 1-D float64 arrays (one replica); ``out`` is written in place and
  never shares memory with x, y or v (kernels pass separate workspace rows), so a
  primitive may use it as scratch before its final value (an allocation per call costs
  ~20 ns, a dense d = 30 product ~150 ns). A
  family may leave primitives out (BO-REP's P1/P2 have no f_u); a kernel that needs a
  missing one fails to compile with Numba's typing error naming the primitive.

Kernels call the generic functions of this module (``grad_y_g(P, x, y, out)``). Each is a
Numba ``@overload`` that, at compile time, looks up the family of ``P``'s record type and
calls that family's primitive: dispatch by *type*, so every kernel is compiled
(specialized) per family and the branch costs nothing at run time.

The registry. :func:`register_numba_family` is the only way in; it refuses a second family
with the same name or the same record type, so two families cannot share a tag (the record
type *is* the tag the kernels dispatch on), and :func:`family_of` refuses a problem that
two families claim. The library's families are listed in one place,
``LIBRARY_FAMILIES`` of :mod:`refbilevel.backends.numba_families`, and registered the first
time a problem is looked up.

How to add a library family (e.g. ``uniformly-convex-bump``):

1. in :mod:`refbilevel.backends.numba_families` (or a module of its own), define the record
   ``class BumpRecord(NamedTuple): p: float; c: np.ndarray; ...``, the primitives
   ``@njit(**PRIMITIVE_JIT) def _bump_grad_y_g(P, x, y, out): ...`` (``inline="always"``:
   see "Speed" below; same operation order as the
   NumPy methods, for parity ≤ 1e-12, claim X4) and ``build(problem) -> BumpRecord``;
2. add one ``NumbaFamily(name="uniformly-convex-bump", problem_class=..., record=BumpRecord,
   build=..., primitives={...})`` to the tuple returned by ``_library_families()`` (which
   is ``LIBRARY_FAMILIES``). Primitives a family leaves out raise NotImplementedError
   naming the family when a kernel reaches them.

Nothing else changes: every estimator and algorithm kernel then compiles for the new record
type on first use and caches it on disk. Test it as tests/test_numba_families.py tests the
user family (parity with NumPy to 1e-12 through an estimator and an algorithm).

A :class:`~refbilevel.problems.custom.ClosedFormProblem` needs no family of its own: the
library's ``closed-form`` family compiles its callables with Numba for one replica (1-D
arrays) when the problem is first used on this backend and refuses, naming the callable,
one that Numba cannot compile. Its kernels are compiled once per process, not cached.

User families (a problem class defined outside the package, e.g. one registered by name
with :mod:`refbilevel.problems`): the user defines a record, ``@njit`` primitives and a
builder the same way and calls :func:`register_numba_family` once (tests/numba_user_family.py
is a complete example). Every estimator and algorithm kernel then runs on it. Such kernels are
**compiled once per process and not cached on disk**: :mod:`refbilevel.backends.numba_jit`
refuses to save a compilation whose argument types include a record class defined outside
the package, because a cache index naming a class that the next process cannot import would
break every later load of that kernel. Primitives that Numba cannot compile fail at the
first kernel call with Numba's typing error; a problem without a registered family is
refused with NotImplementedOnBackendError naming its class.

Why NamedTuples (measured with Numba 0.68 on the 2-core development machine):

- NamedTuple records are cached on disk like any other argument type (the cache index
  pickles the class by reference); a kernel loaded from the cache in a new process runs
  without compiling (checked with ``dispatcher.stats.cache_hits``). They pass into
  ``prange`` bodies as they are (the old tuple of tuples could not, and every kernel
  unpacked and rebuilt it per parallel loop).
- jitclass instances as kernel arguments are never served from the cache: the jitclass
  type carries a per-process identity, so a second process misses (measured: a cached
  ``njit`` taking a jitclass instance recompiled, 2.0 s, in each of two processes).
- structref was not tried: its caching has open upstream bugs.
- The previous design, one uniform tuple ``(kind, s, vecs[6], mats[4])`` and a runtime
  branch on ``kind``, compiled each kernel once for all problems but cost ~360 ns per
  primitive call against ~100 ns specialized (the branches that touch matrices kept the
  primitive from being inlined, so every call reference-counted its array arguments).
  Specializing by type costs one compilation per (kernel, family) actually used, once
  per cache.

Speed. The generic primitives below are inlined into the kernel (``@overload(...,
inline="always")``), and so are the library's primitives (``PRIMITIVE_JIT`` of
:mod:`refbilevel.backends.numba_families`, ``inline="always"``): a Numba-to-Numba call that
is not inlined costs ~50 ns per call (measured: ~60 ns against ~10 ns per Neumann step at
d = 1, where the step's normal costs ~5 ns), so at small d it, not the arithmetic, set the
cost of an oracle call. A user family whose primitives use a plain ``@njit`` is correct but
pays that call; ``refbilevel bench oracles`` prints the cost per call against the
random-number floor.

Arithmetic mirrors the NumPy methods operation by operation (same formulas, same order of
the element-wise operations, the same factored matrix products), so kernels agree with the
reference to rounding (≤ 1e-12 relative, claim X4); only the summation order inside dot
products differs from BLAS. Everything compiles with ``error_model="numpy"`` so a division
by zero gives inf/nan as in NumPy instead of raising.

Noise. Kernels draw the oracle noise themselves, exactly as
:class:`~refbilevel.oracles.gaussian.GaussianOracle` does: per oracle call one C-order
``standard_normal((R, dim))`` block for all R replicas, replicas first, and nothing when the
std is 0 (:func:`draw_block`). Numba's Generator support produces the same stream as NumPy
and advances the same Python Generator, so the same calls in the same order give the same
numbers. Per-call costs outside the arithmetic (Numba 0.68): ~25 µs to unbox the NumPy
Generator, ~40 µs of input validation in the wrappers; :func:`numba_problem` caches the
record per problem instance.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba.extending import overload

from refbilevel.backends.numba_jit import njit

#: the primitives a family may provide, with their number of arguments
PRIMITIVES: dict[str, int] = {
    "grad_x_f": 4, "grad_y_f": 4, "grad_x_g": 4, "grad_y_g": 4, "hvp": 5, "jvp": 5,
    "f_u": 4, "gen_hvp": 5, "gen_hvp_T": 5,
}

#: the Numba options of every library function (see the module docstring)
JIT: dict[str, Any] = {"cache": True, "error_model": "numpy"}


@dataclass(frozen=True)
class NumbaFamily:
    """One problem family on the Numba backend (the contract of the module docstring).

    ``applies`` selects among families of the same problem class (dense or Householder
    factors of the quadratic problem; the two variants of BO-REP's P1).
    """

    name: str
    problem_class: type
    record: type
    build: Callable[[Any], tuple]
    primitives: Mapping[str, Any]
    applies: Callable[[Any], bool] = field(default=lambda problem: True)
    description: str = ""


_FAMILIES: dict[str, NumbaFamily] = {}
_BY_RECORD: dict[type, NumbaFamily] = {}
_library_loaded = False


def _is_record_class(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def register_numba_family(family: NumbaFamily) -> NumbaFamily:
    """Add ``family`` to the registry; ValueError if its name or record type is taken, its
    record is not a NamedTuple class, or it names a primitive that does not exist."""
    if not _is_record_class(family.record):
        raise ValueError(f"record of family {family.name!r} must be a typing.NamedTuple class, "
                         f"got {family.record!r}")
    if family.name in _FAMILIES:
        raise ValueError(f"a Numba family named {family.name!r} is already registered")
    if family.record in _BY_RECORD:
        raise ValueError(f"record type {family.record.__name__} already belongs to family "
                         f"{_BY_RECORD[family.record].name!r}")
    unknown = set(family.primitives) - set(PRIMITIVES)
    if unknown:
        raise ValueError(f"family {family.name!r}: unknown primitives {sorted(unknown)}; "
                         f"allowed: {', '.join(PRIMITIVES)}")
    _FAMILIES[family.name] = family
    _BY_RECORD[family.record] = family
    return family


def _load_library() -> None:
    global _library_loaded
    if not _library_loaded:
        _library_loaded = True
        from refbilevel.backends.numba_families import LIBRARY_FAMILIES

        for fam in LIBRARY_FAMILIES:
            register_numba_family(fam)


def families() -> dict[str, NumbaFamily]:
    """The registered families by name (the library's and the user's)."""
    _load_library()
    return dict(_FAMILIES)


def family_of(problem) -> NumbaFamily:
    """The family of ``problem`` (exact class match: a subclass may change the mathematics);
    NotImplementedOnBackendError naming the class when there is none."""
    from refbilevel.backends.registry import NotImplementedOnBackendError

    _load_library()
    cls = type(problem)
    found = [f for f in _FAMILIES.values() if f.problem_class is cls and f.applies(problem)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(f"problem class {cls.__name__} matches several Numba families: "
                         f"{', '.join(f.name for f in found)}")
    supported = sorted({f.problem_class.__name__ for f in _FAMILIES.values()})
    raise NotImplementedOnBackendError(
        f"the numba backend has no kernels for problem class {cls.__name__}; supported: "
        f"{', '.join(supported)} (register one with "
        "refbilevel.backends.numba_problems.register_numba_family)")


_RECORDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def numba_problem(problem) -> tuple:
    """The Numba record of ``problem`` (see the module docstring), cached per instance
    (problems are not modified after construction; building costs ~50 µs, as much as a small
    kernel). NotImplementedOnBackendError naming the class for an unsupported problem."""
    try:
        rec = _RECORDS.get(problem)
    except TypeError:  # not weak-referenceable: build every time
        return family_of(problem).build(problem)
    if rec is None:
        rec = _RECORDS[problem] = family_of(problem).build(problem)
    return rec


def supports(problem) -> bool:
    """True when a registered family covers ``problem``."""
    from refbilevel.backends.registry import NotImplementedOnBackendError

    try:
        family_of(problem)
    except NotImplementedOnBackendError:
        return False
    return True


def readonly(a) -> np.ndarray:
    """A C-contiguous read-only float64 view (or copy) of ``a``: record arrays are read-only
    so that one record type has one Numba type whatever the caller's flags."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    a = a.view()
    a.setflags(write=False)
    return a


# ---- the generic primitives: dispatch on the record type at compile time ---------------------
def _family_primitive(P, name: str):
    """The family's primitive ``name`` for record type P (None: P is not a record of a
    registered family, so this overload does not apply). A primitive the family leaves out
    compiles to a call that raises NotImplementedError naming the family, so kernels whose
    other branch needs it (f_u for the generalized variant) still compile."""
    _load_library()
    cls = getattr(P, "instance_class", None)
    fam = _BY_RECORD.get(cls) if cls is not None else None
    if fam is None:
        return None
    impl = fam.primitives.get(name)
    if impl is None:
        return _missing(f"the Numba family {fam.name!r} has no primitive {name!r}")
    return impl


def _missing(message: str):
    @njit(error_model="numpy")
    def raise_missing(*args):
        raise NotImplementedError(message)
    return raise_missing


def _overload4(stub, name):
    @overload(stub, jit_options={"error_model": "numpy"}, inline="always")
    def _dispatch(P, x, y, out):
        impl = _family_primitive(P, name)
        if impl is None:
            return None

        def call(P, x, y, out):
            impl(P, x, y, out)
        return call
    return stub


def _overload5(stub, name):
    @overload(stub, jit_options={"error_model": "numpy"}, inline="always")
    def _dispatch(P, x, y, v, out):
        impl = _family_primitive(P, name)
        if impl is None:
            return None

        def call(P, x, y, v, out):
            impl(P, x, y, v, out)
        return call
    return stub


def grad_x_f(P, x, y, out):
    """∇_x f(x, y) into out (d_x), by the family of P (compiled code only)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def grad_y_f(P, x, y, out):
    """∇_y f(x, y) into out (d_y)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def grad_x_g(P, x, y, out):
    """∇_x g(x, y) into out (d_x)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def grad_y_g(P, x, y, out):
    """∇_y g(x, y) into out (d_y)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def hvp(P, x, y, v, out):
    """∇²_yy g(x, y) v into out (d_y)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def jvp(P, x, y, v, out):
    """∇²_xy g(x, y) v into out (d_x)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def f_u(P, x, y, out):
    """f_u = df/d[y]^{∘(p-1)} into out (d_y) (docs/unibio.rst §1.5)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def gen_hvp(P, x, y, v, out):
    """H v, H = d∇_y g/d[y]^{∘(p-1)} (docs/unibio.rst §1.4-1.5)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


def gen_hvp_T(P, x, y, v, out):
    """H^T v (the vector hypergradient needs H^{-T}, docs/unibio.rst §1.6)."""
    raise NotImplementedError("a Numba primitive: call it from compiled code")


for _stub4 in (grad_x_f, grad_y_f, grad_x_g, grad_y_g, f_u):
    _overload4(_stub4, _stub4.__name__)
for _stub5 in (hvp, jvp, gen_hvp, gen_hvp_T):
    _overload5(_stub5, _stub5.__name__)


# ---- noise, exactly as GaussianOracle draws it ---------------------------------------------
@njit(cache=True)
def draw_block(rng, std, R, d):
    """One oracle call's standard-normal block for R replicas, shape (R, d), C order.

    std == 0 consumes no random numbers (GaussianOracle.draw returns zeros then); the caller
    skips the addition in that case, as GaussianOracle._noisy does.
    """
    if std == 0.0:
        return np.zeros((R, d))
    return rng.standard_normal((R, d))


@njit(error_model="numpy", inline="always")
def add_noise(out, std, z):
    """out += std z: a Gaussian oracle's noise row added to one replica's exact value, as
    GaussianOracle adds it; nothing, and z unread, for std 0 (:func:`draw_block` then drew
    nothing). Inlined; element loops only (a slice assignment in a ``prange`` body lost its
    writes, see ``algorithms/_baselines_numba``)."""
    if std != 0.0:
        for i in range(out.shape[0]):
            out[i] = out[i] + std * z[i]


def jit_pair(func):
    """(serial, parallel) dispatchers of one kernel source that loops over replicas with
    ``prange``: the serial one runs prange as range (no thread launch: the fast choice for
    small batches), the parallel one distributes the replicas over threads.

    Why two dispatchers and not a runtime flag: Numba compiles a parallel function ~2-3x
    slower, and a kernel only pays for the variant it actually runs. The parallel one is a
    clone with its own ``__qualname__`` so the two never share an on-disk cache entry.
    """
    clone = types.FunctionType(func.__code__, func.__globals__, func.__name__ + "_parallel",
                               func.__defaults__, func.__closure__)
    clone.__qualname__ = func.__qualname__ + "_parallel"
    clone.__module__ = func.__module__
    clone.__doc__ = func.__doc__
    return (njit(cache=True, error_model="numpy")(func),
            njit(cache=True, parallel=True, error_model="numpy")(clone))
