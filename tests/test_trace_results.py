"""Results of a run (docs/design.rst, "trace"): phi and wall time in the trace, the tidy table,
save/load round trips (.npz, CSV, Parquet) and the plot (``Trace.plot``, ``refbilevel plot``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import refbilevel
from refbilevel.algorithms.trace import Trace, load_frame, load_trace, save_trace
from refbilevel.cli import main
from refbilevel.runs import RunSpec, execute

SPEC = RunSpec("soba", "quadratic", problem_params={"d_x": 4, "d_y": 3}, x0=-2.0, T=30,
               replicas=3, seed=3, options={"step_size": 0.05})


@pytest.fixture(scope="module")
def trace() -> Trace:
    return execute(SPEC)


def test_records_hold_phi_and_the_wall_time(trace):
    from refbilevel.problems import make_problem

    P = make_problem("quadratic", d_x=4, d_y=3)
    np.testing.assert_allclose(trace.phi, P.phi(trace.x), rtol=1e-14)
    # NumPy: one clock reading per record, increasing, within the total
    t = trace.record_time_s
    assert t.shape == trace.iterations.shape and np.all(np.diff(t) >= 0)
    assert 0 < t[-1] <= trace.wall_time_s


def test_tidy_frame_has_one_row_per_record_and_replica(trace):
    f = trace.to_frame(x=True)
    n, R = trace.grad_phi_norm.shape
    assert len(f) == n * R
    row = f[(f.record == 7) & (f.replica == 2)].iloc[0]
    assert row.iteration == trace.iterations[7]
    assert row.grad_phi_norm == trace.grad_phi_norm[7, 2]
    assert row.phi == trace.phi[7, 2] and row.y_error == trace.y_error[7, 2]
    assert row.x_3 == trace.x[7, 2, 3]
    assert row.oracle_calls == trace.oracle_calls()[7] > 0
    assert row.calls_hvp == trace.counts["hvp"][7]
    assert f.attrs["params"]["step_size"] == 0.05


def test_npz_round_trip_gives_back_a_trace(trace, tmp_path):
    back = load_trace(trace.save(tmp_path / "t.npz"))
    assert type(back) is Trace
    for name in ("x", "grad_phi_norm", "y_error", "phi", "record_time_s", "iterations",
                 "diverged_at"):
        np.testing.assert_array_equal(getattr(back, name), getattr(trace, name))
    assert back.counts.keys() == trace.counts.keys()
    np.testing.assert_array_equal(back.extra["v"], trace.extra["v"])
    assert (back.algorithm, back.backend, back.seed, back.wall_time_s) == (
        trace.algorithm, trace.backend, trace.seed, trace.wall_time_s)
    assert back.summary() == trace.summary()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(trace, tmp_path, suffix):
    path = trace.save(tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(load_frame(path), trace.to_frame())


def test_bad_suffix_and_foreign_type_are_refused(trace, tmp_path):
    with pytest.raises(ValueError, match=r"path must end in one of \.npz, \.csv, \.parquet"):
        trace.save(tmp_path / "t.json")
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        load_frame(tmp_path / "t.npz")
    np.savez(tmp_path / "evil.npz", meta=np.array('{"type": "Popen", "module": "subprocess"}'))
    with pytest.raises(ValueError, match="not a refbilevel trace"):
        load_trace(tmp_path / "evil.npz")


def test_both_names_are_importable_from_the_package():
    assert refbilevel.load_trace is load_trace and refbilevel.save_trace is save_trace
    assert refbilevel.Trace is Trace


def test_plot_command_writes_a_figure_of_several_runs(trace, tmp_path, capsys):
    a = trace.save(tmp_path / "a.npz")
    b = execute(RunSpec("stocbio", "quadratic", problem_params={"d_x": 4, "d_y": 3}, T=30,
                        replicas=2, seed=1)).save(tmp_path / "b.npz")
    out = tmp_path / "fig.png"
    assert main(["plot", str(a), str(b), "--out", str(out), "--label", "SOBA",
                 "--label", "stocBiO"]) == 0
    assert out.stat().st_size > 10_000 and "figure written" in capsys.readouterr().out
    fig = trace.plot(label="SOBA")
    # 2 metrics × (iterations, oracle calls, wall time): NumPy traces are timed
    assert len(fig.axes) == 6
    assert fig.axes[0].get_lines()[0].get_label() == "SOBA, R = 3"


def test_plot_command_bad_input_exits_2(trace, tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing.npz")]) == 2
    assert "cannot read trace" in capsys.readouterr().err
    a = str(trace.save(tmp_path / "a.npz"))
    assert main(["plot", a, "--label", "x", "--label", "y"]) == 2
    assert "--label must be given once per trace (1), got 2" in capsys.readouterr().err


@pytest.mark.numba
def test_compiled_runs_record_the_total_wall_time_and_the_same_phi(trace):
    """Numba: no clock inside the kernel (no per-record times); the total is read by
    runs.execute once the kernel returned; phi agrees with the NumPy reference (X4)."""
    tr = execute(SPEC, "numba")
    assert tr.record_time_s is None and tr.wall_time_s > 0
    np.testing.assert_allclose(tr.phi, trace.phi, rtol=1e-12)
    assert "time_s" not in tr.to_frame().columns


def test_bsgm_trace_is_drawn_against_its_samples():
    """BSGM's oracle counts only independent samples (docs/sid_bsgm.rst Definition 15): the
    calls panel uses them; a metric it does not record says so instead of staying blank."""
    tr = execute(RunSpec("bsgm", "linear-contraction", T=10, replicas=2))
    fig = tr.plot()
    assert len(fig.axes) == 4 and fig.axes[1].get_lines()  # ||∇φ|| against samples
    assert any("nothing to draw" in t.get_text() for t in fig.axes[3].texts)
