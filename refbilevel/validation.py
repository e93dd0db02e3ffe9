"""Input validation shared by problems, oracles, estimators and algorithms.

Every public entry point validates its inputs here so that bad input fails early with a
message naming the parameter and its allowed range (docs/design.rst, "Standards").
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
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
    arr = _real_array(name, value, f"of shape (..., {dim})")
    if dim == 1 and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim == 0 or arr.shape[-1] != dim:
        raise ValueError(
            f"{name} must have shape (..., {dim}) (last axis = dimension {dim}), "
            f"got shape {arr.shape}"
        )
    if arr.size == 0:
        # an empty replica axis has nothing to compute; left alone it fails later with a
        # reshape error far from its cause (a trace of zero replicas)
        raise ValueError(
            f"{name} must hold at least one replica (leading axes of size >= 1), "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} must be finite; non-finite entry at index {tuple(bad)}")
    return arr


def _real_array(name: str, value: Any, what: str) -> np.ndarray:
    """``value`` as a float64 array, or a ValueError naming ``name`` (not NumPy's message,
    which names neither the argument nor what it should be)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"
        raise ValueError(f"{name} must be an array of real numbers {what}, got {shown}") from None


def require_same_replicas(**arrays: np.ndarray) -> tuple[int, ...]:
    """The common leading (replica) shape of batched arrays (validated by
    :func:`as_vector_batch`), or a ValueError naming them.

    Arrays with leading axes must have the same ones: no broadcasting between replica counts,
    which would silently pair replica i of one argument with another replica of the other. An
    array without leading axes (a single point) is shared by every replica.
    """
    leads = {a.shape[:-1] for a in arrays.values() if a.ndim > 1}
    if len(leads) > 1:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        raise ValueError(
            f"{' and '.join(arrays)} must have the same leading (replica) axes, or none to "
            f"share one point across replicas; got {shapes}"
        )
    return leads.pop() if leads else ()


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
    except (TypeError, ValueError):
        raise ValueError(f"batch_shape must be a tuple of ints, got {batch_shape!r}") from None
    if any(b < 1 for b in shape):
        # a zero-size batch is zero replicas: rejected here, like an empty x or y
        raise ValueError(f"batch_shape entries (replica counts) must be >= 1, got {shape}")
    return shape


def require_choice(name: str, value: Any, choices: tuple[_T, ...]) -> _T:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def int_argument(name: str, *, low: int | None = None,
                 high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` that parses an integer in [low, high] (:func:`require_int`), so a
    bad value is rejected at parse time: exit 2, and argparse's one error line names the
    option and carries this module's message with the allowed range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        try:
            return require_int(name, value, low=low, high=high)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse shows it in "invalid <name> value" fallbacks
    return parse
