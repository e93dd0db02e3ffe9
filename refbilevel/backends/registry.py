"""Backend availability and the table of implementations per (category, name, backend)."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Callable, Iterator
from typing import Any

BACKEND_NAMES = ("numpy", "numba", "cupy")


class BackendUnavailableError(RuntimeError):
    """The backend's package is missing or has no device (the message says which)."""


class NotImplementedOnBackendError(LookupError):
    """The named estimator/algorithm exists, but not on the requested backend."""


@functools.cache
def backend_status(name: str) -> tuple[bool, str]:
    """(available, reason) for a backend name; raises ValueError for unknown names."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {name!r}")
    if name == "numpy":
        return True, "always available"
    if name == "numba":
        try:
            numba = importlib.import_module("numba")
        except ImportError as exc:  # pragma: no cover - numba is a hard dependency
            return False, f"numba is not installed ({exc}); pip install numba"
        return True, f"numba {numba.__version__}"
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        return False, (f"cupy is not installed ({exc}); "
                       "pip install 'refbilevel[cupy]' on a CUDA machine")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver errors have backend-specific types
        return False, f"cupy is installed but no CUDA device is usable ({exc})"
    if n < 1:
        return False, "cupy is installed but no CUDA device was found"
    return True, f"cupy {cupy.__version__}, {n} CUDA device(s)"


def require_backend(name: str) -> None:
    """Raise ValueError for an unknown name, BackendUnavailableError if it cannot run here."""
    ok, reason = backend_status(name)
    if not ok:
        raise BackendUnavailableError(f"backend {name!r} is unavailable: {reason}")


_TABLE: dict[tuple[str, str], dict[str, Callable[..., Any]]] = {}
# modules whose import registers implementations, by category
_PROVIDERS: dict[str, tuple[str, ...]] = {
    "estimator": ("refbilevel.estimators",),
    "algorithm": ("refbilevel.algorithms",),
}


def register(category: str, name: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: record ``func`` as the ``backend`` implementation of ``category/name``."""
    if backend not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}; got {backend!r}")

    def deco(func: Callable) -> Callable:
        _TABLE.setdefault((category, name), {})[backend] = func
        return func

    return deco


def _load_providers(category: str) -> None:
    for mod in _PROVIDERS.get(category, ()):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def implementations(category: str) -> dict[str, tuple[str, ...]]:
    """{name: backends implementing it} for a category ("estimator", "algorithm")."""
    _load_providers(category)
    return {n: tuple(sorted(b)) for (c, n), b in sorted(_TABLE.items()) if c == category}


#: open :func:`recording_backends` sets; every successful lookup adds its backend to each
_RECORDERS: list[set[str]] = []


@contextlib.contextmanager
def recording_backends() -> Iterator[set[str]]:
    """Collect the backends of every implementation looked up inside the ``with`` block (the
    check runner records which backend a check actually used, docs/checks.rst)."""
    used: set[str] = set()
    _RECORDERS.append(used)
    try:
        yield used
    finally:
        _RECORDERS.remove(used)


def implementation(category: str, name: str, backend: str = "numpy") -> Callable[..., Any]:
    """The ``backend`` implementation of ``category/name``, or a clear error saying why not."""
    _load_providers(category)
    impls = _TABLE.get((category, name))
    if impls is None:
        known = sorted(n for (c, n) in _TABLE if c == category)
        raise ValueError(f"unknown {category} {name!r}; known: {', '.join(known) or 'none'}")
    require_backend(backend)
    if backend not in impls:
        raise NotImplementedOnBackendError(
            f"{category} {name!r} has no {backend} implementation (available on: "
            f"{', '.join(sorted(impls))})"
        )
    for used in _RECORDERS:
        used.add(backend)
    return impls[backend]
