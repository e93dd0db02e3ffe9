"""``njit`` for refbilevel's kernels: Numba's decorator with an on-disk cache that is
invalidated when *any* of the package's Numba sources changes.

Why: Numba validates a cached function against the modification stamp of the one file that
defines it. A kernel in ``soba_numba.py`` that calls (and inlines) a helper of
``_baselines_numba.py`` keeps its old machine code after the helper is edited, because
``soba_numba.py`` did not change (numba/numba#8396 would extend the check; it is not
merged). In a git checkout, where a pull touches only the changed files, stale kernels
would run silently, and parity tests would pass against the old code.

How: every refbilevel module that compiles code imports ``njit`` (and ``prange``) from here.
Importing this module registers, ahead of Numba's own, a cache locator for files inside the
package whose source stamp is (the file's own stamp, a SHA-256 digest of every package file
that mentions Numba). Any edit to one of those files changes the digest, so the next run
recompiles every kernel once and overwrites the cache in place. Kernels must therefore take
their data as arguments or from Numba files (globals are frozen into the machine code).
The cache lives where Numba would put it: ``__pycache__`` next to the source, or under
``NUMBA_CACHE_DIR`` when that is set. Where neither is writable the locator declines and
Numba's own locators take over (a pip install rewrites every file, so stamps change there).

User problem records. A kernel compiled for a record class defined outside the package
(a user's Numba family, :mod:`refbilevel.backends.numba_problems`), or for a record holding
a user's compiled callables (ClosedFormProblem), is compiled once per process and never
written to the cache: Numba's cache index pickles the argument types, and
an index naming a class the next process cannot import would make every later load of that
kernel fail. :class:`LibraryTypesCache` (installed by this module's ``njit`` on every cached
dispatcher) skips saving such signatures; the library's own signatures are cached as usual.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numba
from numba import config, prange, types
from numba import njit as _numba_njit
from numba.core.caching import CacheImpl, FunctionCache, InTreeCacheLocator
from numba.core.errors import NumbaIRAssumptionWarning

# Numba's "internal pedantic check" of its SSA pass warns "variable '...' is not in scope"
# when a helper inlined with inline="always" (numba_families.PRIMITIVE_JIT, the estimators'
# per-replica helpers) ends up in one branch of its caller: a remark on Numba's own IR, not
# on the compiled code (the parity tests compare every such kernel with NumPy to 1e-12).
# Users would see it on every cold compilation, asking them to report it: that one message
# is silenced (pytest resets filters per test and still shows it there).
warnings.filterwarnings("ignore", message=r"variable '.*' is not in scope",
                        category=NumbaIRAssumptionWarning)

__all__ = ["njit", "prange", "numba_sources_digest", "LibraryTypesCache"]

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def numba_sources_digest() -> str:
    """SHA-256 over the path and bytes of every package ``.py`` file that mentions numba."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        text = path.read_bytes()
        if b"numba" in text or b"njit" in text:
            h.update(path.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0")
            h.update(text + b"\0")
    return h.hexdigest()


class PackageDigestLocator(InTreeCacheLocator):
    """Numba cache locator for refbilevel's files: stamp = (file stamp, package digest)."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        if config.CACHE_DIR:  # the place Numba's UserProvidedCacheLocator would use
            self._cache_path = os.path.join(config.CACHE_DIR,
                                            self.get_suitable_cache_subpath(py_file))

    def get_source_stamp(self):
        return (super().get_source_stamp(), numba_sources_digest())

    @classmethod
    def from_function(cls, py_func, py_file):
        if not Path(py_file).resolve().is_relative_to(PACKAGE_ROOT):
            return None
        return super().from_function(py_func, py_file)


if PackageDigestLocator not in CacheImpl._locator_classes:
    CacheImpl._locator_classes.insert(0, PackageDigestLocator)


def _library_type(t) -> bool:
    """False when the Numba type ``t`` is, or contains, a NamedTuple class defined outside
    the package (a user's record) or a compiled function (a user's callable, e.g. in the
    record of a ClosedFormProblem): neither is the same object in the next process."""
    if isinstance(t, (types.Dispatcher, types.FunctionType)):
        return False
    cls = getattr(t, "instance_class", None)
    if isinstance(t, types.BaseNamedTuple) and cls is not None:
        if not cls.__module__.startswith("refbilevel."):
            return False
    if isinstance(t, types.BaseTuple):
        return all(_library_type(e) for e in getattr(t, "types", ()))
    return True


class LibraryTypesCache(FunctionCache):
    """Numba's function cache that does not save signatures with user record types (see the
    module docstring), and that starts Numba's thread pool before it loads a function.

    Why the thread pool: a serial function that calls a parallel one (the baselines' oracle
    calls choose ``*_rows_parallel`` at run time) links the parallel machine code, which
    calls the threading layer's ``allocate_sched`` etc. Those symbols exist in a process
    only once the pool is started. Numba starts it when it compiles a parfor or loads a
    parallel function, but not when it loads a *serial* function that merely links one
    (numba 0.68: the library's reload hooks are not kept in the cache for the caller): such
    a kernel, loaded from the cache in a fresh process that ran nothing parallel before,
    jumps to an unresolved symbol and segfaults (seen as PZOBO, MRBO, SABA... crashing
    after some compile histories; tests/test_numba_cache.py reproduces it with two small
    functions). Starting the pool is what any parallel kernel does anyway."""

    def load_overload(self, sig, target_context):
        numba.get_num_threads()  # starts the pool once per process (later calls: a lookup)
        return super().load_overload(sig, target_context)

    def save_overload(self, sig, data):
        if all(_library_type(t) for t in sig):
            super().save_overload(sig, data)


def njit(*args, **kws):
    """``numba.njit`` whose on-disk cache (``cache=True``) keeps only the library's types."""
    if args and callable(args[0]) and not kws:
        return _numba_njit(args[0])
    decorate = _numba_njit(*args, **kws)

    def wrap(func):
        disp = decorate(func)
        if isinstance(getattr(disp, "_cache", None), FunctionCache):
            disp._cache.__class__ = LibraryTypesCache
        return disp
    return wrap
