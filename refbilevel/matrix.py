"""The convergence matrix: every (method, problem) pair on the default instances
(``refbilevel matrix``; claim X5, docs/checks.rst X5).

Each cell runs :func:`refbilevel.solve` deterministically — noise 0 for Gaussian oracles,
full batch for finite sums, exact maps for contractions — with the method's default
parameters and default T (``mode="default"``: both computed from the problem's constants,
see each method's record), and reports the median over the replicas of
||∇φ(x_T)|| / ||∇φ(x_0)||. A cell is

* ``ok`` (the ratio printed) when the ratio is at most :data:`TARGET_RATIO`;
* ``refused: <assumption>`` when the problem is outside the method's assumptions (checked
  before the run, :meth:`~refbilevel.solver_record.SolverRecord.refusal`);
* ``DIVERGED`` (a replica diverged: non-finite, or past the growth bound of
  :func:`~refbilevel.algorithms.trace.build_trace`) or ``STALLED`` (ratio above the target):
  failures; these words appear in failing cells only;
* ``FAILED: <error>`` when a covered pair cannot run (e.g. no kernel on the backend), or
  ``FAILED: over the N s budget`` when the matrix runs with a per-cell time budget
  (``cell_seconds``; issue #10 asks each cell to take at most a minute on Numba) and the
  cell's run outlasts it: the run is then made in a child process that is killed at the
  budget, so one slow cell cannot hold the whole table.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a cell passes when the median ||∇φ(x_T)||/||∇φ(x_0)|| is at most this (issue #10)
TARGET_RATIO = 1e-2
OK, REFUSED, DIVERGED, STALLED, FAILED = "ok", "refused", "DIVERGED", "STALLED", "FAILED"


@dataclass(frozen=True)
class Cell:
    method: str
    problem: str
    status: str
    ratio: float | None = None
    reason: str = ""
    T: int | None = None
    seconds: float = 0.0
    diverged_at: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in (DIVERGED, STALLED, FAILED)

    def text(self) -> str:
        if self.status == OK:
            return f"{self.ratio:.1e}"
        if self.status == REFUSED:
            return f"refused: {self.reason}"
        if self.status == DIVERGED:
            return f"DIVERGED at {self.diverged_at}"
        if self.status == STALLED:
            return f"STALLED {self.ratio:.1e}"
        return f"FAILED: {self.reason}"


def run_cell(method: str, problem: str, *, backend: str = "numpy", replicas: int = 1,
             seed: int = 0, T: int | None = None, step_factor: float = 1.0,
             problem_params: Mapping[str, Any] | None = None) -> Cell:
    """One cell (module docstring). ``step_factor`` multiplies the step-size options the
    record names (:attr:`~refbilevel.solver_record.SolverRecord.step_options`): X5's
    negative control runs a cell with 100x too large steps."""
    from refbilevel.backends.registry import BackendUnavailableError
    from refbilevel.solver import prepare, solve
    from refbilevel.solver_record import AssumptionError

    t0 = time.perf_counter()
    try:
        record, prob, _, params = prepare(problem, method, problem_params=problem_params,
                                          noise=0.0, seed=seed)
    except AssumptionError:
        from refbilevel.solver import resolve_problem
        from refbilevel.solver_record import solver_record

        why = solver_record(method).refusal(resolve_problem(problem, problem_params))
        return Cell(method, problem, REFUSED, reason="" if why is None else why.short)
    options = {k: params[k] * step_factor for k in record.step_options if k in params}
    try:
        tr = solve(problem, method, backend=backend, noise=0.0, replicas=replicas, seed=seed,
                   T=T, problem_params=problem_params, **options,
                   record_every=_every(record.default_T(prob, "default", params)
                                       if T is None else T))
    except (ValueError, LookupError, BackendUnavailableError) as exc:
        return Cell(method, problem, FAILED, reason=str(exc).splitlines()[0].split(";")[0][:80],
                    seconds=time.perf_counter() - t0, options=options)
    secs = time.perf_counter() - t0
    T_run = int(tr.iterations[-1])
    g = tr.grad_phi_norm
    if tr.diverged.any():
        return Cell(method, problem, DIVERGED, T=T_run, seconds=secs, options=options,
                    diverged_at=int(tr.diverged_at[tr.diverged].min()))
    ratio = float(np.median(g[-1] / g[0]))
    status = OK if ratio <= TARGET_RATIO else STALLED
    return Cell(method, problem, status, ratio=ratio, T=T_run, seconds=secs, options=options)


def _cell_in_child(connection, parent_pid: int, method: str, problem: str,
                   kwargs: dict) -> None:
    from refbilevel.sweeps import die_with_parent

    die_with_parent(parent_pid)  # a killed matrix leaves no cell running
    connection.send(run_cell(method, problem, **kwargs))
    connection.close()


def run_cell_within(method: str, problem: str, seconds: float, **kwargs: Any) -> Cell:
    """:func:`run_cell` in a child process (spawned: a fork of a process whose Numba threads
    are running is unsafe) that is killed after ``seconds``. The kernels are compiled first,
    here, by a one-iteration run of the same cell (compile time is not the cell's), and the
    child loads them from the on-disk cache. A refusal is decided here, without a child."""
    import multiprocessing

    from refbilevel.solver import resolve_problem
    from refbilevel.solver_record import solver_record

    why = solver_record(method).refusal(resolve_problem(problem, kwargs.get("problem_params")))
    if why is not None:
        return Cell(method, problem, REFUSED, reason=why.short)
    # compilation is not the cell's run: a one-iteration run here compiles the cell's
    # kernels into the on-disk cache, from which the child loads them
    warm = run_cell(method, problem, **{**kwargs, "T": 1})
    if warm.status == FAILED:
        return warm
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_cell_in_child, args=(send, os.getpid(), method, problem, kwargs),
                        daemon=True)
    t0 = time.perf_counter()
    child.start()
    send.close()
    try:
        if receive.poll(seconds):
            return receive.recv()
        return Cell(method, problem, FAILED, reason=f"over the {seconds:g} s budget",
                    seconds=time.perf_counter() - t0)
    except EOFError:  # the child died without an answer (e.g. killed, out of memory)
        return Cell(method, problem, FAILED, reason=f"child exited with {child.exitcode}",
                    seconds=time.perf_counter() - t0)
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _every(T: int | None) -> int:
    """Record sparsely: the matrix needs the first and the last record only (both are
    always recorded); a few hundred records keep the trace small at any T."""
    return 1 if T is None or T <= 200 else T // 200


def run_matrix(backend: str = "numpy", *, methods: Sequence[str] | None = None,
               problems: Sequence[str] | None = None, replicas: int = 1, seed: int = 0,
               cell_seconds: float | None = None, progress=None) -> list[Cell]:
    """Every (method, problem) cell; with ``cell_seconds``, each run in a child process
    killed at that budget (:func:`run_cell_within`)."""
    from refbilevel.problems import problem_names
    from refbilevel.solver_record import solver_names
    from refbilevel.validation import require_range

    if cell_seconds is not None:
        cell_seconds = require_range("cell_seconds", cell_seconds, low=0.0,
                                     low_inclusive=False)
    cells = []
    for m in methods or solver_names():
        for p in problems or problem_names():
            kw: dict[str, Any] = {"backend": backend, "replicas": replicas, "seed": seed}
            cell = (run_cell(m, p, **kw) if cell_seconds is None
                    else run_cell_within(m, p, cell_seconds, **kw))
            if progress is not None:
                progress(cell)
            cells.append(cell)
    return cells


def format_matrix(cells: Sequence[Cell]) -> str:
    """One Markdown table: a row per method, a column per problem."""
    methods = list(dict.fromkeys(c.method for c in cells))
    problems = list(dict.fromkeys(c.problem for c in cells))
    by = {(c.method, c.problem): c for c in cells}
    lines = ["| method | " + " | ".join(problems) + " |",
             "|---|" + "---|" * len(problems)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(
            by[(m, p)].text() if (m, p) in by else "" for p in problems) + " |")
    return "\n".join(lines)


def refusal_footnotes(cells: Sequence[Cell]) -> dict[str, str]:
    """Short keys for the refusal texts (the table stays readable): {key: assumption}."""
    texts = list(dict.fromkeys(c.reason for c in cells if c.status == REFUSED))
    return {f"A{i + 1}": t for i, t in enumerate(texts)}
