"""Input validation shared by problems, oracles, estimators and algorithms.

Every public entry point validates its inputs here so that bad input fails early with a
message naming the parameter and its allowed range (docs/design.rst, "Standards").
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

_T = TypeVar("_T")


def require_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``float(value)`` if it lies in the stated interval, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    lo_ok = low is None or (v >= low if low_inclusive else v > low)
    hi_ok = high is None or (v <= high if high_inclusive else v < high)
    if not (lo_ok and hi_ok):
        lb = "-inf" if low is None else f"{low:g}"
        hb = "inf" if high is None else f"{high:g}"
        interval = f"{'[' if low_inclusive and low is not None else '('}{lb}, {hb}" + (
            "]" if high_inclusive and high is not None else ")"
        )
        raise ValueError(f"{name} must lie in {interval}, got {v:g}")
    return v


def require_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``int(value)`` if it is an integer in [low, high], else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        lb = "-inf" if low is None else str(low)
        hb = "inf" if high is None else str(high)
        raise ValueError(f"{name} must be an integer in [{lb}, {hb}], got {v}")
    return v


def require_even_integer(name: str, value: float, *, low: int = 2) -> int:
    """Even integers ``>= low`` (Example 3 of UniBiO needs an even p; docs/unibio.rst §6.1)."""
    v = require_range(name, value, low=low)
    if not float(v).is_integer() or int(v) % 2:
        raise ValueError(f"{name} must be an even integer >= {low}, got {value!r}")
    return int(v)


def as_vector_batch(name: str, value: Any, dim: int) -> np.ndarray:
    """Convert to a float64 array of shape ``(..., dim)`` with finite entries.

    Leading axes are replicas (docs/design.rst: many seeds at once along a leading axis). A scalar
    is accepted when ``dim == 1``.
    """
    arr = np.asarray(value, dtype=np.float64)
    if dim == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 0 or arr.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., {dim}) (last axis = dimension {dim}), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} must be finite; non-finite entry at index {tuple(bad)}")
    return arr


def require_square_matrix(name: str, value: Any, dim: int | None = None) -> np.ndarray:
    """A finite float64 square matrix, optionally of a given size."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} must have shape ({dim}, {dim}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def require_matrix(name: str, value: Any, shape: tuple[int | None, int | None]) -> np.ndarray:
    """A finite float64 matrix whose shape matches ``shape`` (None = any size on that axis)."""
    arr = np.asarray(value, dtype=np.float64)
    want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
    if arr.ndim != 2 or any(
        s is not None and a != s for a, s in zip(arr.shape, shape, strict=True)
    ):
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def require_vector(name: str, value: Any, dim: int | None = None) -> np.ndarray:
    """A finite float64 1-D array, optionally of a given length."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (dim is not None and arr.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(n,)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def require_batch_shape(batch_shape: Any) -> tuple[int, ...]:
    """A batch shape (the leading axes of an oracle sample): a tuple of ints >= 0."""
    try:
        shape = tuple(int(b) for b in batch_shape)
    except TypeError:
        raise ValueError(f"batch_shape must be a tuple of ints, got {batch_shape!r}") from None
    if any(b < 0 for b in shape):
        raise ValueError(f"batch_shape entries must be >= 0, got {shape}")
    return shape


def require_choice(name: str, value: Any, choices: tuple[_T, ...]) -> _T:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value
