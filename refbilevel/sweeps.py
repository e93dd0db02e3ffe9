"""Parameter sweeps that write results as they go and resume after an interruption.

A sweep maps a *cell function* ``fn(params: dict) -> dict`` over a grid of parameter dicts
(e.g. problem × p × ε × algorithm × backend × seed). Each finished cell is appended to a
tidy JSON-Lines file (one row per cell: its parameters, its key, the measured values and the
elapsed time) and flushed to disk immediately, so an interrupted sweep loses at most the
cells in flight. Re-running the same sweep reads the file, skips every finished cell and
computes only the rest; a torn last line (the process killed mid-write) is discarded.

Execution goes through any ``concurrent.futures.Executor``: local processes by default, or a
Dask distributed cluster given its scheduler address (``dask_address="tcp://..."``; the
``dask`` extra), so a ``--full`` run can spread over many machines. Cell functions must be
importable (top-level functions of an installed module) so workers can load them.

Seeds follow benchopt: when a cell has no ``seed`` parameter, it gets one by hashing its
parameters, so results do not depend on execution order or on the worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from refbilevel.checks.verdict import jsonable
from refbilevel.progress import Progress


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the axes, as a list of parameter dicts (axis order kept)."""
    names = list(axes)
    values = [list(v) for v in axes.values()]
    for name, vals in zip(names, values, strict=True):
        if not vals:
            raise ValueError(f"sweep axis {name!r} must have at least one value")
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def cell_key(params: Mapping[str, Any]) -> str:
    """A stable identifier of a cell: SHA-256 of its parameters as canonical JSON."""
    canon = json.dumps(jsonable(dict(params)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def cell_seed(params: Mapping[str, Any]) -> int:
    """The cell's seed: its ``seed`` parameter, else a hash of its parameters."""
    if "seed" in params:
        return int(params["seed"])
    return int(cell_key(params), 16) % (2**32)


def read_results(path: Path) -> list[dict[str, Any]]:
    """Rows already written; a torn (partially written) last line is dropped."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    with path.open() as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a write interrupted by a kill: that cell is recomputed
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
    return rows


def _truncate_torn_tail(path: Path) -> None:
    """Make the file end at the last complete line before appending to it."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _run_cell(fn: Callable[[dict], dict], params: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    full = dict(params)
    full.setdefault("seed", cell_seed(params))
    values = fn(full)
    if not isinstance(values, Mapping):
        raise TypeError(f"cell function must return a dict, got {type(values).__name__}")
    return {"values": dict(values), "seed": full["seed"],
            "elapsed_s": time.perf_counter() - t0}


def resolve_cell_function(spec: str) -> Callable[[dict], dict]:
    """'package.module:function' -> the function (what a sweep spec file names)."""
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"cell function must be given as 'module:function', got {spec!r}")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{spec!r} does not name a callable")
    return fn


def run_sweep(
    fn: Callable[[dict], dict],
    cells: list[dict[str, Any]],
    results_path: Path | str,
    *,
    executor: cf.Executor | None = None,
    dask_address: str | None = None,
    max_workers: int | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run every unfinished cell and return all rows (finished earlier + now), grid order.

    ``executor`` wins over ``dask_address``; with neither, a local process pool of
    ``max_workers`` (default: CPU count) runs the cells.
    """
    path = Path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = [cell_key(c) for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("sweep cells must be distinct (two cells have the same parameters)")
    done = {row["key"]: row for row in read_results(path)}
    todo = [(k, c) for k, c in zip(keys, cells, strict=True) if k not in done]
    bar = Progress(len(todo), f"sweep {path.name}", enabled=progress)
    if todo:
        _truncate_torn_tail(path)
        own_executor, client = None, None
        if executor is None and dask_address is not None:
            from distributed import Client  # the `dask` extra

            client = Client(dask_address)
            executor = client.get_executor()
        if executor is None:
            executor = own_executor = cf.ProcessPoolExecutor(max_workers=max_workers)
        try:
            futures = {executor.submit(_run_cell, fn, c): (k, c) for k, c in todo}
            with path.open("a") as fh:
                for fut in cf.as_completed(futures):
                    k, c = futures[fut]
                    res = fut.result()
                    row = {"key": k, "params": c, **res}
                    fh.write(json.dumps(jsonable(row), allow_nan=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                    done[k] = row
                    bar.update()
        finally:
            if own_executor is not None:
                own_executor.shutdown(cancel_futures=True)
            if client is not None:
                client.close()
    return [done[k] for k in keys]
