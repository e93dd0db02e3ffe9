"""Backends by name: "numpy" (the reference), "numba" (explicit @njit kernels), "cupy" (GPU).

docs/design.rst §Backends (modelled on PyLops' selection by name). Estimators and algorithms
register one implementation per backend with :func:`register`; :func:`implementation` looks
one up and says clearly why it cannot (unknown name, backend not installed, or not
implemented on that backend).
"""

from refbilevel.backends.registry import (
    BACKEND_NAMES,
    BackendUnavailableError,
    NotImplementedOnBackendError,
    backend_status,
    implementation,
    implementations,
    register,
    require_backend,
)

__all__ = [
    "BACKEND_NAMES",
    "BackendUnavailableError",
    "NotImplementedOnBackendError",
    "backend_status",
    "implementation",
    "implementations",
    "register",
    "require_backend",
]
