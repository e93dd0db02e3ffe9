"""The built-in sweep cell and the README's example spec (refbilevel.sweep_cells)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from refbilevel.cli import main
from refbilevel.runs import RunSpec, execute
from refbilevel.sweep_cells import algorithm_run, run_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sweep_soba.json"


def test_readme_example_spec_runs_and_writes_one_tidy_table(tmp_path, capsys):
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^refbilevel sweep examples/sweep_soba\.json .*$", readme, re.M)
    assert command, "the README shows the example sweep command"
    table = tmp_path / "soba.parquet"
    assert main(["sweep", str(EXAMPLE), "--out", str(tmp_path / "soba.jsonl"), "--table",
                 str(table), "--workers", "1"]) == 0
    assert "tidy table in" in capsys.readouterr().out
    frame = pd.read_parquet(table)
    grid = json.loads(EXAMPLE.read_text())["grid"]
    cells = len(grid["option.step_size"]) * len(grid["seed"])
    records = grid["T"][0] // grid["record_every"][0] + 1
    assert len(frame) == cells * records * grid["replicas"][0]
    # one cell of the table against the same run made directly
    cell = frame[(frame["option.step_size"] == 0.03) & (frame["seed"] == 1)]
    ref = execute(RunSpec("soba", "quadratic", problem_params={"d_x": 4, "d_y": 3},
                          options={"step_size": 0.03}, noise=0.1, T=300, replicas=3,
                          record_every=10, seed=1)).to_frame()
    np.testing.assert_array_equal(cell.grad_phi_norm.to_numpy(), ref.grad_phi_norm.to_numpy())
    np.testing.assert_array_equal(cell.oracle_calls.to_numpy(), ref.oracle_calls.to_numpy())


def test_cell_parameters_are_checked():
    spec, backend = run_spec({"algorithm": "soba", "problem": "quadratic", "problem.d_x": 2,
                              "option.step_size": 0.1, "T": 5, "backend": "numba"})
    assert (spec.problem_params, spec.options, spec.T, backend) == (
        {"d_x": 2}, {"step_size": 0.1}, 5, "numba")
    with pytest.raises(ValueError, match="unknown sweep parameter 'stepsize'; allowed: "):
        run_spec({"algorithm": "soba", "problem": "quadratic", "stepsize": 0.1})
    with pytest.raises(ValueError, match="needs the parameter"):
        algorithm_run({"algorithm": "soba"})
