"""Sweeps: tidy results written as cells finish, resume after a kill, Dask execution."""

import contextlib
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


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])  # 3.11's and 3.14's default
def test_killed_sweep_resumes_without_losing_or_recomputing_finished_cells(tmp_path,
                                                                           start_method):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "res.jsonl"
    cells = grid(p=[2, 4, 6, 8], seed=[0, 1, 2], sleep=[0.25], marker_dir=[str(markers)])
    script = textwrap.dedent(f"""
        import multiprocessing
        multiprocessing.set_start_method({start_method!r})
        from refbilevel.sweeps import grid, run_sweep
        from tests.sweep_cells import holder_ratio_cell
        cells = {cells!r}
        run_sweep(holder_ratio_cell, cells, {str(out)!r}, max_workers=1, progress=False)
    """)
    # SIGKILL of the sweep process alone (not its process group): its pool workers must die
    # with it. The process group is only the test's cleanup if they do not.
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(read_results(out)) < 3:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        workers = {int(m.name.split("-")[2]) for m in markers.iterdir()}
        assert workers and proc.pid not in workers
        # the kernel delivers the death signal at once; 10 s only absorbs a loaded machine
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.05)
        assert not [pid for pid in workers if _alive(pid)], "a worker outlived the sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
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


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (on Linux a zombie, dead but not yet reaped by its new parent,
    counts as dead; elsewhere, whether the pid exists)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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


SPEC = {"cell": "tests.sweep_cells:holder_ratio_cell", "grid": {"p": [2, 4], "seed": [3]}}


@pytest.mark.parametrize("spec, match", [
    ({**SPEC, "grid": [2, 4]}, "'grid' must be an object mapping axis names to lists of values, "
                               "got list [2, 4]"),
    ({**SPEC, "grid": {"p": 2, "seed": [3]}}, "sweep axis 'p' must be a list of values, e.g. "
                                              "[2], got int 2"),
    ({**SPEC, "grid": {"p": "24"}}, "sweep axis 'p' must be a list of values, e.g. ['24'], got "
                                    "str '24'"),
    ({**SPEC, "grid": {"p": []}}, "sweep axis 'p' must have at least one value"),
    ([SPEC], "must be a JSON object with exactly the keys 'cell' and 'grid'"),
    ({"cell": SPEC["cell"]}, "\"grid\": {\"axis\": [values, ...], ...}}), got ['cell']"),
    ({**SPEC, "cell": 3}, "'cell' must be a string 'module:function', got 3"),
    ({**SPEC, "cell": "nomodule"}, "cell function must be given as 'module:function'"),
    ({**SPEC, "cell": "no_such_module_xyz:f"}, "cell module 'no_such_module_xyz' cannot be "
                                               "imported here"),
    ("{not json", "is not JSON"),
])
def test_bad_sweep_spec_is_one_line_and_exits_2(spec, match, tmp_path, monkeypatch, capsys):
    from refbilevel.cli import main

    monkeypatch.syspath_prepend(str(ROOT))
    path = tmp_path / "spec.json"
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    assert main(["sweep", str(path), "--out", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"refbilevel sweep: bad spec {path}: ")
    assert match in err
    assert not (tmp_path / "r.jsonl").exists()


def test_sweep_workers_below_one_are_rejected(tmp_path, capsys):
    from refbilevel.cli import main

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    with pytest.raises(SystemExit) as exc:  # at parse time, by argparse
        main(["sweep", str(path), "--workers", "0"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "refbilevel sweep: error: argument --workers: workers must be an integer in [1, inf], "
        "got 0")
    with pytest.raises(ValueError, match=r"max_workers must be an integer in \[1, inf\], got 0"):
        run_sweep(holder_ratio_cell, grid(p=[2]), tmp_path / "r.jsonl", max_workers=0)


def test_dask_cell_module_missing_on_the_workers_is_named(tmp_path, monkeypatch):
    """A module the client imports but the cluster's workers cannot: one message naming the
    module and the node, before any cell is submitted (not a pickle traceback from inside
    distributed). The workers start before the module's folder joins sys.path, so they lack
    it, as a remote worker without the module would."""
    distributed = pytest.importorskip("distributed", reason="the `dask` extra is not installed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        (tmp_path / "client_only_cells.py").write_text(
            "def cell(params):\n    return {'twice': 2 * params['p']}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        from client_only_cells import cell

        with pytest.raises(ValueError) as exc:
            run_sweep(cell, grid(p=[1, 2]), tmp_path / "r.jsonl",
                      dask_address=cluster.scheduler_address, progress=False)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("sweep cell module 'client_only_cells' cannot be imported on the Dask "
                          "cluster: on worker tcp://127.0.0.1:")
    assert "No module named 'client_only_cells'" in msg
    assert msg.endswith("Every node (the scheduler and each worker) must be able to import it: "
                        "install it there or put it on PYTHONPATH")
    assert read_results(tmp_path / "r.jsonl") == []


def test_dask_cell_module_missing_on_the_scheduler_is_named(monkeypatch):
    """The scheduler's side of the same pre-flight check. An in-process scheduler shares the
    client's modules, so this stands in a client whose scheduler lacks tests.sweep_cells
    (``sys.modules[name] = None`` makes its import fail there) and whose workers have it."""
    from refbilevel.sweeps import _require_importable_on_cluster

    class SchedulerWithoutTheCellModule:
        def run_on_scheduler(self, fn, *args):
            with monkeypatch.context() as m:
                m.setitem(sys.modules, "tests.sweep_cells", None)
                return fn(*args)

        def run(self, fn, *args):
            return {"tcp://10.0.0.2:1234": fn(*args)}

    with pytest.raises(ValueError, match=r"^sweep cell module 'tests.sweep_cells' cannot be "
                                         r"imported on the Dask cluster: on the scheduler, "
                                         r"ModuleNotFoundError: .*Every node"):
        _require_importable_on_cluster(SchedulerWithoutTheCellModule(), holder_ratio_cell)
