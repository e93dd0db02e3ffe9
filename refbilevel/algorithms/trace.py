"""The record an algorithm run returns (docs/design.rst: algorithm → trace → check).

Per recorded iteration t and replica r: x_t, ||∇phi(x_t)|| from the closed form,
||y_t - y*(x_t)||, the running average of ||∇phi||, and the cumulative oracle counts by
kind; plus the parameters, the seed and the divergence record.

Divergence: a replica whose iterate becomes non-finite is stopped (its state is frozen at
the last finite values by the algorithm, see :meth:`TraceRecorder.active`) and the
iteration is recorded in ``diverged_at``; one whose state grows past
:data:`DIVERGENCE_FACTOR` times its start is recorded as diverged at the first record where
it does (:func:`build_trace`, both backends alike). Its trace entries from that point on are
NaN *and* flagged, never silently returned. ``Trace.summary()`` states how many replicas diverged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from refbilevel.oracles.counters import OracleCounts
from refbilevel.problems.base import BilevelProblem


@dataclass
class Trace:
    algorithm: str
    backend: str
    params: dict[str, Any]
    seed: int | None
    iterations: np.ndarray  # (n_rec,) outer iteration index of each record
    x: np.ndarray  # (n_rec, R, d_x)
    grad_phi_norm: np.ndarray  # (n_rec, R)
    y_error: np.ndarray  # (n_rec, R)   ||y_t - y*(x_t)||
    counts: dict[str, np.ndarray]  # kind -> (n_rec,) cumulative calls per replica
    diverged_at: np.ndarray  # (R,) first non-finite iteration, -1 if none
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def avg_grad_phi_norm(self) -> np.ndarray:
        """Running average (1/(k+1)) Σ_{j<=k} ||∇phi(x_j)|| over the records (the quantity
        UniBiO Thm 5.1 and BO-REP Thm 3.2 bound)."""
        return np.cumsum(self.grad_phi_norm, axis=0) / np.arange(
            1, len(self.iterations) + 1)[:, None]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    def summary(self) -> str:
        R = self.diverged_at.size
        nd = int(self.diverged.sum())
        last = self.grad_phi_norm[-1]
        final = (f"final mean ||∇phi|| = {np.nanmean(last):.3e}" if np.isfinite(last).any()
                 else "no finite final ||∇phi||")
        msg = f"{self.algorithm} [{self.backend}] T={int(self.iterations[-1])}, R={R}: {final}"
        if nd:
            first = int(self.diverged_at[self.diverged].min())
            msg += f"; {nd}/{R} replicas DIVERGED (first at iteration {first})"
        return msg


#: a replica whose state (x_t, y_t) grows past this factor times max(1, ||(x_0, y_0)||) at a
#: record is diverged there, like a non-finite one (no run reports 1e28 as a result)
DIVERGENCE_FACTOR = 1e6
#: records per chunk of the metric evaluation: the temporaries of grad_phi and y_star stay a
#: small fraction of the recorded states (build_trace's peak is within 2x of them)
_CHUNKS = 16


def _blow_up(xs: np.ndarray, ys: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """(records, R) mask of ||(x_t, y_t)|| > bound (NaN compares False: the non-finite
    states are the kernels' own divergence record)."""
    sq = np.einsum("trd,trd->tr", xs, xs) + np.einsum("trd,trd->tr", ys, ys)
    with np.errstate(invalid="ignore"):
        return sq > bound[None, :] ** 2


def build_trace(problem: BilevelProblem, algorithm: str, backend: str, params: dict[str, Any],
                seed: int | None, iterations: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                counts: dict[str, np.ndarray], diverged_at: np.ndarray, **extra: Any) -> Trace:
    """A :class:`Trace` from recorded states xs (n_rec, R, d_x), ys (n_rec, R, d_y).

    Divergence: a replica whose state at a record exceeds :data:`DIVERGENCE_FACTOR` times
    its start's norm (at least 1) is diverged at that record's iteration, unless the run
    already flagged it earlier (non-finite state). Entries at or after a replica's
    divergence are NaN (and flagged by ``diverged_at``).

    Memory: ``xs`` is taken over (NaN written into it in place, no copy when it is float64)
    and the closed-form metrics are evaluated in chunks of records, so the peak stays within
    about 1.1x of the recorded states (measured in tests/test_solve.py).
    """
    iterations = np.asarray(iterations)
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    diverged_at = np.array(diverged_at, dtype=np.int64)
    n, R = xs.shape[:2]
    g = np.full((n, R), np.nan)
    e = np.full((n, R), np.nan)
    if n:
        start = np.sqrt(np.sum(xs[0] ** 2, axis=-1) + np.sum(ys[0] ** 2, axis=-1))
        bound = DIVERGENCE_FACTOR * np.maximum(1.0, np.nan_to_num(start, nan=1.0, posinf=1.0))
    step = max(1, -(-n // _CHUNKS))
    for a in range(0, n, step):
        b = min(n, a + step)
        its = iterations[a:b]
        big = _blow_up(xs[a:b], ys[a:b], bound)
        for r in np.flatnonzero(big.any(axis=0)):
            first = int(its[np.argmax(big[:, r])])
            if diverged_at[r] < 0 or first < diverged_at[r]:
                diverged_at[r] = first
        alive = (diverged_at[None, :] < 0) | (its[:, None] < diverged_at[None, :])
        xs[a:b][~alive] = np.nan
        if alive.any():
            xa, ya = xs[a:b][alive], ys[a:b][alive]
            g[a:b][alive] = np.linalg.norm(problem.grad_phi(xa), axis=-1)
            e[a:b][alive] = np.linalg.norm(ya - problem.y_star(xa), axis=-1)
    return Trace(algorithm=algorithm, backend=backend, params=params, seed=seed,
                 iterations=iterations, x=xs, grad_phi_norm=g, y_error=e,
                 counts={k: np.asarray(v) for k, v in counts.items()},
                 diverged_at=diverged_at, extra=extra)


class TraceRecorder:
    """Accumulates states during a NumPy run; algorithms call :meth:`record` every
    iteration and :meth:`check_finite` after every update."""

    def __init__(self, problem: BilevelProblem, n_replicas: int, record_every: int = 1):
        if record_every < 1:
            raise ValueError(f"record_every must be an integer >= 1, got {record_every}")
        self.problem = problem
        self.record_every = record_every
        self.R = n_replicas
        self.diverged_at = np.full(n_replicas, -1, dtype=np.int64)
        self._it: list[int] = []
        self._x: list[np.ndarray] = []
        self._y: list[np.ndarray] = []
        self._c: list[dict[str, int]] = []

    @property
    def active(self) -> np.ndarray:
        """Replicas still running (not diverged)."""
        return self.diverged_at < 0

    def check_finite(self, t: int, *states: np.ndarray) -> np.ndarray:
        """Mark replicas whose state is non-finite at iteration t; return the active mask."""
        bad = np.zeros(self.R, dtype=bool)
        for s in states:
            bad |= ~np.all(np.isfinite(s.reshape(self.R, -1)), axis=1)
        newly = bad & self.active
        self.diverged_at[newly] = t
        return self.active

    def record(self, t: int, x: np.ndarray, y: np.ndarray, counts: OracleCounts,
               force: bool = False) -> None:
        if not force and t % self.record_every:
            return
        self._it.append(t)
        self._x.append(np.array(x, dtype=np.float64))
        self._y.append(np.array(y, dtype=np.float64))
        self._c.append(counts.as_dict())

    def finish(self, algorithm: str, backend: str, params: dict[str, Any], seed: int | None,
               **extra: Any) -> Trace:
        kinds = list(self._c[0]) if self._c else []
        # stack and drop each list at once: the peak holds one list and one stacked copy
        xs = np.array(self._x)
        self._x.clear()
        ys = np.array(self._y)
        self._y.clear()
        return build_trace(self.problem, algorithm, backend, params, seed, np.array(self._it),
                           xs, ys, {k: np.array([c[k] for c in self._c]) for k in kinds},
                           self.diverged_at, **extra)


def save_trace(trace: Any, path: str | Path) -> Path:
    """Write a run record (a :class:`Trace`, or any dataclass trace such as BSGM's) to one
    ``.npz`` file: array fields as arrays, dicts of arrays as ``"field/key"`` entries, every
    other field (algorithm, backend, params, seed, non-array extras) as JSON under
    ``"meta"``. :func:`load_trace` reads it back. Non-finite floats in the metadata are
    stored as strings (JSON has no NaN); arrays keep their NaN (diverged replicas)."""
    import json

    from refbilevel.checks.verdict import jsonable

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz, got {str(path)!r}")
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"type": type(trace).__name__}
    for f in fields(trace):
        value = getattr(trace, f.name)
        if isinstance(value, np.ndarray):
            arrays[f.name] = value
        elif isinstance(value, dict) and value:
            rest = {}
            for k, v in value.items():
                if isinstance(v, np.ndarray) and v.dtype != object:
                    arrays[f"{f.name}/{k}"] = v
                else:
                    rest[k] = v
            meta[f.name] = rest
        else:
            meta[f.name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {"meta": np.array(json.dumps(jsonable(meta), allow_nan=False)),
                               **arrays}
    np.savez_compressed(path, **payload)
    return path


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read a file written by :func:`save_trace` back into a dict of its fields (dict fields
    re-assembled from their ``"field/key"`` arrays and their JSON part)."""
    import json

    with np.load(Path(path), allow_pickle=False) as data:
        out: dict[str, Any] = json.loads(str(data["meta"]))
        for key in data.files:
            if key == "meta":
                continue
            name, _, sub = key.partition("/")
            if sub:
                out.setdefault(name, {})[sub] = data[key]
            else:
                out[name] = data[key]
    return out
