"""Shared plumbing of the estimator modules: input checks, batching, counts, backends.

Not an estimator (the leading underscore keeps it out of the auto-import in
``refbilevel/estimators/__init__.py``).
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.validation import require_choice as require_choice  # re-export
from refbilevel.validation import require_int, require_range

_COUNT_FIELDS = (*ORACLE_KINDS, "samples")


def require_oracle(oracle) -> None:
    """The estimators need an oracle with ``problem``, ``noise``, ``rng`` and ``counts``."""
    for attr in ("problem", "noise", "rng", "counts"):
        if not hasattr(oracle, attr):
            raise ValueError(
                "oracle must be a refbilevel GaussianOracle (or expose problem, noise, rng "
                f"and counts); {type(oracle).__name__} has no {attr!r}"
            )


def require_positive(name: str, value) -> float:
    return require_range(name, value, low=0.0, low_inclusive=False)


def require_steps(name: str, value, *, low: int = 0) -> int:
    return require_int(name, value, low=low)


def batch_xy(problem, x, y, **vectors):
    """Validate x (..., d_x), y (..., d_y) and any ``name=(value, dim)`` vectors (finite,
    right last axis) and broadcast their leading (replica) axes to one batch shape, so that
    every oracle call sees the same batch and draws one (batch, dim) noise block
    (GaussianOracle's convention).

    Returns (x, y, batch) or, with vectors, (x, y, {name: array}, batch).
    """
    from refbilevel.validation import as_vector_batch

    x, y = problem._x(x), problem._y(y)
    vs = {k: as_vector_batch(k, val, dim) for k, (val, dim) in vectors.items()}
    arrays = {"x": x, "y": y, **vs}
    try:
        shapes = {a.shape[:-1] for a in arrays.values()}
        batch = shapes.pop() if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    except ValueError:
        shapes = ", ".join(f"{k} {a.shape}" for k, a in arrays.items())
        raise ValueError(
            f"the leading (replica) axes of the inputs must broadcast; got {shapes}"
        ) from None
    out = {k: a if a.shape[:-1] == batch else np.broadcast_to(a, batch + a.shape[-1:])
           for k, a in arrays.items()}
    if vectors:
        return out["x"], out["y"], {k: out[k] for k in vs}, batch
    return out["x"], out["y"], batch


def counts(**kw) -> OracleCounts:
    """Per-replica counts of one estimate (OracleCounts with the given fields)."""
    return OracleCounts(**kw)


def add_counts(target: OracleCounts, c: OracleCounts) -> None:
    """target += c (cheaper than going through ``as_dict``; used by the Numba wrappers to
    record, in the oracle's counters, the calls their kernel made)."""
    for k in _COUNT_FIELDS:
        n = getattr(c, k)
        if n:
            target.add(k, n)


def n_replicas(batch: tuple[int, ...]) -> int:
    return int(math.prod(batch))


# ---- backends -------------------------------------------------------------------------------
def as_2d(a: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """(batch..., d) -> contiguous (R, d): C-order flattening keeps GaussianOracle's noise
    order (replicas first, C order), which the Numba kernels rely on for parity."""
    return np.ascontiguousarray(a.reshape((n_replicas(batch), a.shape[-1])), dtype=np.float64)


def parallel_worth_it(R: int, d: int) -> bool:
    """Use the parallel kernel variant only when every parallel region has enough work
    (R >= 64 replicas and R d >= 32768 entries per oracle call). Below that the thread
    launch and, on a busy machine, the scheduling latency of each region (one per oracle
    call) outweigh the arithmetic, and the serial variant is faster (measured on 2 cores)."""
    return R >= 64 and R * d >= 32768
