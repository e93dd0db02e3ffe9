"""Built-in sweep cells (``refbilevel sweep``; :mod:`refbilevel.sweeps`).

:func:`algorithm_run` runs one algorithm on one problem from a grid cell's parameters and
returns the run's tidy records (:meth:`refbilevel.algorithms.trace.Trace.to_frame`), so a
sweep over algorithms × problems × seeds gives one tidy table (:func:`sweep_table`, or
``refbilevel sweep SPEC --table results.csv``). Example spec: ``examples/sweep_soba.json``.

Cell parameters (each may be a grid axis or fixed by a one-value axis):

* the fields of :class:`refbilevel.runs.RunSpec`: ``algorithm``, ``problem`` (required),
  ``T``, ``replicas``, ``seed``, ``noise``, ``batch``, ``x0``, ``y0``, ``record_every``;
* ``backend`` (default ``"numpy"``);
* ``problem.NAME``: a problem constructor argument (``"problem.p": [2, 4]``);
* ``option.NAME``: an algorithm option (``"option.step_size": [0.01, 0.05]``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from refbilevel.runs import RunSpec, execute

if TYPE_CHECKING:
    import pandas

_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunSpec)
                    if f.name not in ("problem_params", "options"))
_PREFIXES = ("problem.", "option.")


def run_spec(params: Mapping[str, Any]) -> tuple[RunSpec, str]:
    """(RunSpec, backend) from a cell's parameters (module docstring); unknown names fail
    with the list of allowed ones."""
    plain: dict[str, Any] = {}
    problem_params: dict[str, Any] = {}
    options: dict[str, Any] = {}
    backend = "numpy"
    for name, value in params.items():
        if name == "backend":
            backend = value
        elif name.startswith("problem."):
            problem_params[name.removeprefix("problem.")] = value
        elif name.startswith("option."):
            options[name.removeprefix("option.")] = value
        elif name in _RUN_FIELDS:
            plain[name] = value
        else:
            raise ValueError(f"unknown sweep parameter {name!r}; allowed: backend, "
                             f"{', '.join(_RUN_FIELDS)}, problem.NAME, option.NAME")
    missing = [n for n in ("algorithm", "problem") if n not in plain]
    if missing:
        raise ValueError(f"sweep cell needs the parameter(s) {', '.join(missing)}")
    return RunSpec(problem_params=problem_params, options=options, **plain), backend


def algorithm_run(params: Mapping[str, Any]) -> dict[str, Any]:
    """One run (:func:`refbilevel.runs.execute`) from the cell's parameters; returns
    ``records`` (the tidy columns of the trace, NaN as null), the median final ||∇phi||, the
    number of diverged replicas and the run's wall time."""
    spec, backend = run_spec(params)
    trace = execute(spec, backend)
    frame = trace.to_frame()
    records = {c: [None if isinstance(v, float) and math.isnan(v) else v
                   for v in frame[c].tolist()]
               for c in frame.columns if c not in ("algorithm", "backend", "seed")}
    last = frame[frame.record == frame.record.max()]
    return {"records": records,
            "final_grad_phi_norm_median": _finite_or_none(last.grad_phi_norm.median()),
            "final_oracle_calls": int(trace.oracle_calls()[-1]),
            "diverged_replicas": int(trace.diverged.sum()),
            "wall_time_s": trace.wall_time_s}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def sweep_table(rows: list[dict[str, Any]] | str | Path) -> pandas.DataFrame:
    """One tidy table from a sweep's rows (or its JSON-Lines file): the cell's parameters
    as columns, then one row per record × replica for cells that return ``records``
    (:func:`algorithm_run`), one row per cell with its scalar values otherwise."""
    import pandas as pd

    from refbilevel.sweeps import read_results

    if not isinstance(rows, list):
        rows = read_results(Path(rows))
    parts = []
    for row in rows:
        values = row.get("values", {})
        fixed = {**row["params"], "seed": row.get("seed"), "cell": row["key"]}
        if "records" in values:
            part = pd.DataFrame(values["records"])
        else:
            part = pd.DataFrame([{k: v for k, v in values.items()
                                  if not isinstance(v, (list, dict))}])
        for name, value in reversed(list(fixed.items())):
            part.insert(0, name, [value] * len(part))
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def write_table(frame: pandas.DataFrame, path: str | Path) -> Path:
    """Write a sweep table as ``.csv`` or ``.parquet``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"table path must end in .csv or .parquet, got {str(path)!r}")
    return path
