"""Sweeps: tidy results written as cells finish, resume after a kill, Dask execution."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from refbilevel.sweeps import cell_key, grid, read_results, run_sweep
from tests.sweep_cells import holder_ratio_cell

ROOT = Path(__file__).parents[1]


def test_grid_keys_and_seeds(tmp_path):
    cells = grid(p=[2, 4], seed=[0, 1, 2])
    assert len(cells) == 6 and cells[0] == {"p": 2, "seed": 0}
    assert len({cell_key(c) for c in cells}) == 6
    assert cell_key({"a": 1, "b": 2}) == cell_key({"b": 2, "a": 1})
    with pytest.raises(ValueError, match="axis 'p' must have at least one value"):
        grid(p=[])
    with pytest.raises(ValueError, match="must be distinct"):
        run_sweep(holder_ratio_cell, [{"p": 2}, {"p": 2}], tmp_path / "r.jsonl")


def test_results_are_tidy_and_a_rerun_computes_nothing(tmp_path):
    cells = grid(p=[2, 4], seed=[0, 1])
    out = tmp_path / "res.jsonl"
    rows = run_sweep(holder_ratio_cell, cells, out, max_workers=2, progress=False)
    assert [r["params"] for r in rows] == cells
    assert all(r["values"]["max_ratio"] <= 1 for r in rows)
    mtime = out.stat().st_mtime_ns
    rows2 = run_sweep(holder_ratio_cell, cells, out, max_workers=2, progress=False)
    assert rows2 == rows and out.stat().st_mtime_ns == mtime  # nothing recomputed or written


def test_killed_sweep_resumes_without_losing_or_recomputing_finished_cells(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "res.jsonl"
    cells = grid(p=[2, 4, 6, 8], seed=[0, 1, 2], sleep=[0.25], marker_dir=[str(markers)])
    script = textwrap.dedent(f"""
        from refbilevel.sweeps import grid, run_sweep
        from tests.sweep_cells import holder_ratio_cell
        cells = {cells!r}
        run_sweep(holder_ratio_cell, cells, {str(out)!r}, max_workers=1, progress=False)
    """)
    # its own process group, so the kill takes the pool's workers too (as Ctrl-C or a job
    # scheduler would) and leaves no orphan behind
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and len(read_results(out)) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # a torn line, as if the kill had landed mid-write
    with out.open("a") as fh:
        fh.write('{"key": "torn')
    finished = {r["key"] for r in read_results(out)}
    assert 3 <= len(finished) < len(cells), "the kill must land mid-sweep"
    runs_before = {k: _runs(markers, c) for k, c in ((cell_key(c), c) for c in cells)}

    rows = run_sweep(holder_ratio_cell, cells, out, max_workers=2, progress=False)
    assert [r["params"] for r in rows] == cells  # nothing lost
    for c in cells:
        k = cell_key(c)
        if k in finished:  # finished cells were not recomputed
            assert _runs(markers, c) == runs_before[k] == 1
        else:
            assert _runs(markers, c) >= 1
    lines = out.read_text().splitlines()
    assert len(lines) == len(cells) and all(json.loads(line) for line in lines)


def _runs(markers: Path, cell) -> int:
    return len(list(markers.glob(f"{cell['p']}-{cell['seed']}-*")))


def test_dask_local_cluster_on_loopback(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed", reason="the `dask` extra is not installed")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # workers import tests.sweep_cells
    cells = grid(p=[2, 4, 8], seed=[0, 1])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        rows = run_sweep(holder_ratio_cell, cells, tmp_path / "dask.jsonl",
                         dask_address=cluster.scheduler_address, progress=False)
    local = run_sweep(holder_ratio_cell, cells, tmp_path / "local.jsonl", max_workers=1,
                      progress=False)
    # same seeds, same measurements, whichever executor ran the cells
    assert [r["values"] for r in rows] == [r["values"] for r in local]


def test_cli_sweep_from_spec_file(tmp_path, monkeypatch, capsys):
    from refbilevel.cli import main

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"cell": "tests.sweep_cells:holder_ratio_cell",
                                "grid": {"p": [2, 4], "seed": [3]}}))
    out = tmp_path / "r.jsonl"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    assert len(read_results(out)) == 2
    spec.write_text(json.dumps({"cell": "nomodule", "grid": {}}))
    assert main(["sweep", str(spec), "--out", str(out)]) == 2
    assert "module:function" in capsys.readouterr().err
