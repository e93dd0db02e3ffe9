"""The record an algorithm run returns (docs/design.rst: algorithm → trace → check).

Per recorded iteration t and replica r: x_t, phi(x_t) and ||∇phi(x_t)|| from the closed
form, ||y_t - y*(x_t)||, the running average of ||∇phi||, and the cumulative oracle counts by
kind; plus the parameters, the seed, the divergence record and the wall time (per record on
NumPy, where reading the clock at each record costs nothing next to an iteration; the total
otherwise, measured by whoever ran the kernel once its work has finished).

Results (docs/design.rst, "trace"): :meth:`Trace.to_frame` is the tidy table (one row per
record × replica, pandas, the ``results`` extra), :meth:`Trace.save` writes ``.npz`` (the
whole record, read back by :func:`load_trace` as the same type), ``.csv`` or ``.parquet``
(the table, read back by :func:`load_frame`), and :meth:`Trace.plot` draws the curves
(:mod:`refbilevel.trace_plots`).

Divergence: a replica whose iterate becomes non-finite is stopped (its state is frozen at
the last finite values by the algorithm, see :meth:`TraceRecorder.active`) and the
iteration is recorded in ``diverged_at``; one whose state grows past
:data:`DIVERGENCE_FACTOR` times its start is recorded as diverged at the first record where
it does (:func:`build_trace`, both backends alike). Its trace entries from that point on are
NaN *and* flagged, never silently returned. ``Trace.summary()`` states how many replicas diverged.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from refbilevel.oracles.counters import ORACLE_KINDS, OracleCounts
from refbilevel.problems.base import BilevelProblem

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

#: the suffixes :meth:`Trace.save` writes: the whole record, or the tidy table
TRACE_SUFFIXES = (".npz",)
TABLE_SUFFIXES = (".csv", ".parquet")


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
    phi: np.ndarray | None = None  # (n_rec, R) phi(x_t) from the closed form
    record_time_s: np.ndarray | None = None  # (n_rec,) seconds from the start to each record
    wall_time_s: float | None = None  # the whole run, read once its work had finished

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

    def oracle_calls(self) -> np.ndarray:
        """(n_rec,) cumulative oracle calls of every kind per replica at each record (the
        count the complexity theorems bound; independent samples are counted apart)."""
        total = np.zeros(len(self.iterations), dtype=np.int64)
        for k in ORACLE_KINDS:
            if k in self.counts:
                total = total + np.asarray(self.counts[k], dtype=np.int64)
        return total

    def to_frame(self, *, x: bool = False) -> pandas.DataFrame:
        """The tidy table: one row per record × replica, with the columns ``algorithm``,
        ``backend``, ``seed``, ``replica``, ``record``, ``iteration``, ``oracle_calls`` (all
        kinds), ``calls_<kind>`` per oracle kind, ``samples``, ``grad_phi_norm``,
        ``avg_grad_phi_norm``, ``y_error``, ``phi``, ``diverged`` (the replica had diverged by
        this record) and, when recorded, ``time_s``; ``x=True`` adds ``x_0 ... x_{d-1}``.
        The parameters and the total wall time are in ``frame.attrs`` (kept by Parquet, not
        by CSV)."""
        pd = _pandas()
        n, R = self.grad_phi_norm.shape
        rec, rep = np.repeat(np.arange(n), R), np.tile(np.arange(R), n)
        it = np.asarray(self.iterations)[rec]
        cols: dict[str, Any] = {
            "algorithm": self.algorithm, "backend": self.backend,
            "seed": -1 if self.seed is None else int(self.seed), "replica": rep,
            "record": rec, "iteration": it}
        cols["oracle_calls"] = self.oracle_calls()[rec]
        for k in sorted(self.counts):
            name = "samples" if k == "samples" else f"calls_{k}"
            cols[name] = np.asarray(self.counts[k], dtype=np.int64)[rec]
        cols["grad_phi_norm"] = self.grad_phi_norm.ravel()
        cols["avg_grad_phi_norm"] = self.avg_grad_phi_norm.ravel()
        cols["y_error"] = self.y_error.ravel()
        cols["phi"] = (np.full(n * R, np.nan) if self.phi is None else self.phi.ravel())
        div = np.asarray(self.diverged_at)[rep]
        cols["diverged"] = (div >= 0) & (it >= div)
        if self.record_time_s is not None:
            cols["time_s"] = np.asarray(self.record_time_s, dtype=np.float64)[rec]
        if x:
            flat = self.x.reshape(n * R, -1)
            for j in range(flat.shape[1]):
                cols[f"x_{j}"] = flat[:, j]
        frame = pd.DataFrame(cols)
        frame.attrs.update({"params": _json_safe(self.params), "wall_time_s": self.wall_time_s})
        return frame

    def save(self, path: str | Path) -> Path:
        """Write the trace: ``.npz`` the whole record (:func:`load_trace` reads it back as a
        :class:`Trace`), ``.csv`` / ``.parquet`` the tidy table of :meth:`to_frame`
        (:func:`load_frame` reads it back)."""
        path = Path(path)
        if path.suffix in TRACE_SUFFIXES:
            return save_trace(self, path)
        if path.suffix not in TABLE_SUFFIXES:
            raise ValueError(f"path must end in one of {', '.join(TRACE_SUFFIXES + TABLE_SUFFIXES)}"
                             f", got {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame = self.to_frame()
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return path

    def plot(self, *, label: str | None = None, fig: Figure | None = None) -> Figure:
        """||∇phi|| and ||y - y*|| against iterations and oracle calls: the median over
        replicas and the band between the lowest and highest replica
        (:func:`refbilevel.trace_plots.plot_traces`)."""
        from refbilevel.trace_plots import plot_traces

        return plot_traces([self], labels=None if label is None else [label], fig=fig)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:  # pragma: no cover - pandas is in the test extra
        raise ImportError("Trace.to_frame needs pandas: pip install 'refbilevel[results]'"
                          ) from exc
    return pandas


def _json_safe(value: Any) -> Any:
    from refbilevel.checks.verdict import jsonable

    return jsonable(value)


def load_frame(path: str | Path) -> pandas.DataFrame:
    """Read a table written by :meth:`Trace.save` (``.csv`` or ``.parquet``)."""
    pd = _pandas()
    path = Path(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(f"path must end in .csv or .parquet, got {str(path)!r}")


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
    ph = np.full((n, R), np.nan)
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
            ph[a:b][alive] = problem.phi(xa)
    return Trace(algorithm=algorithm, backend=backend, params=params, seed=seed,
                 iterations=iterations, x=xs, grad_phi_norm=g, y_error=e,
                 counts={k: np.asarray(v) for k, v in counts.items()},
                 diverged_at=diverged_at, extra=extra, phi=ph)


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
        self._time: list[float] = []
        # the run starts when its recorder is made (after the oracle and the start are set
        # up); NumPy is synchronous, so the clock read at a record follows the work before it
        self._t0 = time.perf_counter()

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
        self._time.append(time.perf_counter() - self._t0)

    def finish(self, algorithm: str, backend: str, params: dict[str, Any], seed: int | None,
               **extra: Any) -> Trace:
        wall = time.perf_counter() - self._t0  # before the closed-form metrics below
        kinds = list(self._c[0]) if self._c else []
        # stack and drop each list at once: the peak holds one list and one stacked copy
        xs = np.array(self._x)
        self._x.clear()
        ys = np.array(self._y)
        self._y.clear()
        trace = build_trace(self.problem, algorithm, backend, params, seed,
                            np.array(self._it), xs, ys,
                            {k: np.array([c[k] for c in self._c]) for k in kinds},
                            self.diverged_at, **extra)
        trace.record_time_s = np.array(self._time)
        trace.wall_time_s = wall
        return trace


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
    meta: dict[str, Any] = {"type": type(trace).__name__, "module": type(trace).__module__}
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


def load_trace(path: str | Path) -> Any:
    """Read a file written by :func:`save_trace` (or :meth:`Trace.save`) back into the
    dataclass it came from (a :class:`Trace`, or e.g. BSGM's trace): dict fields are
    re-assembled from their ``"field/key"`` arrays and their JSON part. Only classes of the
    ``refbilevel`` package are rebuilt; non-finite floats of the metadata come back as the
    strings they were stored as."""
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
    cls = _trace_class(out.pop("type"), out.pop("module", None))
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(out) - names)
    if unknown:
        raise ValueError(f"{path}: fields {', '.join(unknown)} are not fields of "
                         f"{cls.__name__} (written by another version of refbilevel?)")
    return cls(**out)


def _trace_class(name: str, module: str | None) -> type:
    # files written before the module was stored name only the class
    module = module or {"Trace": __name__,
                        "BSGMTrace": "refbilevel.algorithms.bsgm"}.get(name, "")
    if not (module == "refbilevel" or module.startswith("refbilevel.")):
        raise ValueError(f"trace type {name!r} of module {module!r} is not a refbilevel trace")
    cls = getattr(importlib.import_module(module), name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{module}.{name} is not a trace class")
    return cls
