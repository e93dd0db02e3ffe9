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
import ctypes
import hashlib
import importlib
import itertools
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from refbilevel.checks.verdict import jsonable
from refbilevel.progress import Progress
from refbilevel.validation import require_int

#: seconds to wait for a Dask scheduler before saying it cannot be reached
_DASK_CONNECT_TIMEOUT_S = 30


def grid(**axes: Iterable[Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the axes, as a list of parameter dicts (axis order kept).

    Each axis is a list (any iterable but a string or a mapping, which would silently become
    its characters or its keys) of at least one value.
    """
    values = []
    for name, vals in axes.items():
        if isinstance(vals, (str, bytes, Mapping)) or not isinstance(vals, Iterable):
            raise ValueError(f"sweep axis {name!r} must be a list of values, e.g. [{vals!r}], "
                             f"got {type(vals).__name__} {vals!r}")
        values.append(list(vals))
        if not values[-1]:
            raise ValueError(f"sweep axis {name!r} must have at least one value")
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


class SweepSpec(NamedTuple):
    """A sweep read from a spec file: the cell function, its 'module:function' name, and the
    grid's cells."""

    cell: str
    fn: Callable[[dict], dict]
    cells: list[dict[str, Any]]


SPEC_FORMAT = '{"cell": "module:function", "grid": {"axis": [values, ...], ...}}'


def load_spec(path: Path | str) -> SweepSpec:
    """Read a sweep spec (JSON, :data:`SPEC_FORMAT`); ValueError naming what is wrong."""
    try:
        spec = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read sweep spec {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"sweep spec {path} is not JSON ({exc})") from None
    if not isinstance(spec, dict) or set(spec) != {"cell", "grid"}:
        got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"sweep spec must be a JSON object with exactly the keys 'cell' and "
                         f"'grid' ({SPEC_FORMAT}), got {got}")
    if not isinstance(spec["grid"], dict):
        raise ValueError(f"sweep spec 'grid' must be an object mapping axis names to lists "
                         f"of values, got {type(spec['grid']).__name__} {spec['grid']!r}")
    if not isinstance(spec["cell"], str):
        raise ValueError(f"sweep spec 'cell' must be a string 'module:function', got "
                         f"{spec['cell']!r}")
    return SweepSpec(spec["cell"], resolve_cell_function(spec["cell"]), grid(**spec["grid"]))


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


def _run_cell(fn: Callable[[dict], dict], params: dict[str, Any],
              imports: tuple[str, ...] = ()) -> dict[str, Any]:
    # a worker process has not run the parent's `--import`: problems registered by those
    # modules must be registered here too before the cell names them
    from refbilevel.problems import import_problem_modules

    import_problem_modules(imports)
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
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(f"cell module {module!r} cannot be imported here ({exc}); it must be "
                         "an importable module (installed, or on PYTHONPATH)") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ValueError(f"{spec!r} does not name a callable")
    return fn


def die_with_parent(sweep_pid: int) -> None:
    """Process-pool initializer: end this worker when the sweep process ends, even by SIGKILL
    (which runs no cleanup). Otherwise the workers outlive it, computing cells nobody will
    write; the next run recomputes those cells anyway, since only written cells count.

    A worker whose parent is the sweep process (start methods fork and spawn), on Linux:
    prctl(PR_SET_PDEATHSIG, SIGKILL), the kernel kills it when the sweep dies. Otherwise
    (forkserver, Python 3.14's default on Linux, where the parent is the forkserver, which
    itself lives as long as any worker does; or another OS): a daemon thread that waits for
    the sweep process to end and then ends the worker.
    """
    if sys.platform.startswith("linux") and os.getppid() == sweep_pid:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if not _pid_exists(sweep_pid):  # it died before prctl took effect
                os._exit(1)
            return
    threading.Thread(target=_exit_when_gone, args=(sweep_pid,), name="die-with-sweep",
                     daemon=True).start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_when_gone(pid: int) -> None:
    """Block until process ``pid`` has ended, then end this process."""
    try:
        fd = os.pidfd_open(pid)  # Linux >= 5.3: readable once the process has exited
    except (AttributeError, OSError):  # no pidfd here, or the process is already gone
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    else:
        while _pid_exists(pid):
            time.sleep(1.0)
    os._exit(1)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _require_importable_on_cluster(client: Any, fn: Callable[[dict], dict]) -> None:
    """Before submitting, check that the Dask scheduler and every worker can unpickle the cell
    (which imports its module and refbilevel.sweeps), so a missing module is one message
    naming it instead of a pickle traceback from inside distributed.

    A function that plain pickle cannot pickle by reference (a lambda, a local function) is
    shipped by value by cloudpickle and needs no module on the nodes: nothing to check.
    """
    import pickle

    probes = []
    for module, obj in (("refbilevel.sweeps", _run_cell), (fn.__module__, fn)):
        try:
            probes.append((module, pickle.dumps(obj)))
        except (pickle.PicklingError, AttributeError, TypeError):
            continue
    def unpickle_error(payload: bytes) -> str | None:
        # a local function: shipped by value (cloudpickle), so the probe itself needs nothing
        # on the node, and it reports instead of raising (no traceback in the node's log)
        import pickle

        try:
            pickle.loads(payload)
        except Exception as exc:  # noqa: BLE001 - whatever the unpickling raised there
            return f"{type(exc).__name__}: {exc}"
        return None

    for module, payload in probes:
        where = {"the scheduler": client.run_on_scheduler(unpickle_error, payload)}
        where.update({f"worker {address}": error for address, error
                      in client.run(unpickle_error, payload).items()})
        failed = {node: error for node, error in where.items() if error is not None}
        if failed:
            node, error = next(iter(failed.items()))
            more = f" (and {len(failed) - 1} more node(s))" if len(failed) > 1 else ""
            raise ValueError(
                f"sweep cell module {module!r} cannot be imported on the Dask cluster: on "
                f"{node}{more}, {error}. Every node (the scheduler and each worker) must be "
                "able to import it: install it there or put it on PYTHONPATH")


def run_sweep(
    fn: Callable[[dict], dict],
    cells: list[dict[str, Any]],
    results_path: Path | str,
    *,
    executor: cf.Executor | None = None,
    dask_address: str | None = None,
    max_workers: int | None = None,
    progress: bool = True,
    imports: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """Run every unfinished cell and return all rows (finished earlier + now), grid order.

    ``executor`` wins over ``dask_address``; with neither, a local process pool of
    ``max_workers`` (default: CPU count) runs the cells. The pool's workers die with the
    sweep process, however it ends; on Dask, the cell's module must be importable on every
    node (checked before any cell is submitted). ``imports`` are modules every worker
    imports before its cells (``refbilevel --import``: modules that register problems).
    """
    if max_workers is not None:
        max_workers = require_int("max_workers", max_workers, low=1)
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

            try:
                client = Client(dask_address, timeout=_DASK_CONNECT_TIMEOUT_S)
            except (OSError, ValueError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {dask_address!r} "
                                 f"(dask_address): {exc}") from None
            try:
                _require_importable_on_cluster(client, fn)
            except ValueError:
                client.close()
                raise
            executor = client.get_executor()
        if executor is None:
            executor = own_executor = cf.ProcessPoolExecutor(
                max_workers=max_workers, initializer=die_with_parent,
                initargs=(os.getpid(),))
        try:
            futures = {executor.submit(_run_cell, fn, c, tuple(imports)): (k, c)
                       for k, c in todo}
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
