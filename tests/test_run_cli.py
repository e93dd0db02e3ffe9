"""``refbilevel run`` (one algorithm, trace to a file) and ``refbilevel compare-backends``
(parity and timing table); refbilevel.runs, refbilevel.backend_comparison, trace files."""

from __future__ import annotations

import numpy as np
import pytest

from refbilevel.algorithms.trace import Trace, load_trace, save_trace
from refbilevel.backend_comparison import (
    ComparisonRow,
    compare,
    default_spec,
    max_relative_difference,
)
from refbilevel.cli import main
from refbilevel.runs import RunSpec, execute, parse_assignment


def test_parse_assignment_literals_and_strings():
    assert parse_assignment("step_size=0.05") == ("step_size", 0.05)
    assert parse_assignment("exponents=(0.4, 0.6)") == ("exponents", (0.4, 0.6))
    assert parse_assignment("mode=theory") == ("mode", "theory")
    with pytest.raises(ValueError, match="name=value"):
        parse_assignment("step_size")


def test_execute_is_the_registered_algorithm_on_the_named_stream():
    """execute(spec) = the implementation called by hand with the oracle on
    named_stream(seed, "oracle") and the documented start: identical trajectories."""
    from refbilevel.algorithms.soba import run_soba
    from refbilevel.oracles import GaussianOracle
    from refbilevel.problems.quadratic import StronglyConvexQuadratic
    from refbilevel.randomness import named_stream

    spec = RunSpec("soba", "quadratic", problem_params={"d_x": 3, "d_y": 2, "seed": 1},
                   T=40, replicas=2, seed=7, noise=0.2, x0=[1.0, -1.0, 0.5],
                   options={"step_size": 0.05}, mode="paper")
    a = execute(spec)
    P = StronglyConvexQuadratic(d_x=3, d_y=2, seed=1)
    b = run_soba(GaussianOracle(P, 0.2, named_stream(7, "oracle")),
                 np.tile([1.0, -1.0, 0.5], (2, 1)), np.zeros((2, 2)), T=40, step_size=0.05,
                 seed=7)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.seed == 7 and a.params["step_size"] == 0.05


@pytest.mark.parametrize("spec,match", [
    (RunSpec("soba", "quadratic", options={"stepsize": 1}), "unknown option.*stepsize"),
    (RunSpec("soba", "linear-contraction"), "soba refuses LinearContraction.*lower level"),
    (RunSpec("bsgm", "uniformly-convex-separable"), "bsgm refuses.*linear contraction"),
    (RunSpec("saba", "quadratic"), "saba refuses.*finite-sum"),
    (RunSpec("soba", "nope"), "unknown problem 'nope'"),
    (RunSpec("nope", "quadratic"), "nope"),
    (RunSpec("soba", "quadratic", replicas=0), "replicas"),
    (RunSpec("soba", "quadratic", noise=-1.0), "noise"),
    (RunSpec("soba", "quadratic", x0=[1.0, 2.0]), "x0 must be a number, a vector of 10"),
    (RunSpec("soba", "quadratic", y0=float("nan")), "y0 must be finite"),
    (RunSpec("unibio", "unibio-example3", options={"eta2": 1.0}), "unknown option.*eta2"),
])
def test_bad_run_specs_name_the_parameter(spec, match):
    with pytest.raises((ValueError, LookupError), match=match):
        execute(spec)


def test_run_command_writes_a_trace_that_loads_back(tmp_path, capsys):
    out = tmp_path / "soba.npz"
    rc = main(["run", "soba", "--problem", "quadratic", "--problem-param", "d_x=4",
               "--problem-param", "d_y=3", "--x0", "-2", "--T", "30", "--replicas", "2",
               "--seed", "3", "--set", "step_size=0.05", "--mode", "paper", "--out", str(out)])
    assert rc == 0
    assert "trace written to" in capsys.readouterr().out
    d = load_trace(out)
    ref = execute(RunSpec("soba", "quadratic", problem_params={"d_x": 4, "d_y": 3}, x0=-2.0,
                          T=30, replicas=2, seed=3, options={"step_size": 0.05},
                          mode="paper"))
    np.testing.assert_array_equal(d.x, ref.x)
    np.testing.assert_array_equal(d.counts["hvp"], ref.counts["hvp"])
    np.testing.assert_array_equal(d.extra["v"], ref.extra["v"])
    assert type(d) is Trace and d.algorithm == "soba" and d.seed == 3
    assert d.params["step_size"] == 0.05


def test_run_command_reports_divergence_with_its_iteration(tmp_path, capsys):
    """BO-REP without normalization overflows from x0 = 9·1 (claim B2's control): the
    command says so, with the iteration, and exits 1; the NaN are in the file, flagged."""
    out = tmp_path / "b.npz"
    rc = main(["run", "borep", "--problem", "borep-p1", "--x0", "9", "--T", "50",
               "--set", "normalize=False", "--mode", "paper", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1 and "DIVERGED (first at iteration" in text
    d = load_trace(out)
    assert d.diverged_at[0] > 0 and np.isnan(d.grad_phi_norm[-1, 0])


def test_run_command_bad_input_exits_2(capsys):
    assert main(["run", "soba", "--problem", "quadratic", "--set", "stepsize=1"]) == 2
    assert "unknown option(s) stepsize" in capsys.readouterr().err
    assert main(["run", "soba", "--problem", "quadratic", "--x0", "a,b"]) == 2
    assert "x0/y0 must be a number" in capsys.readouterr().err
    assert main(["run", "soba", "--problem", "quadratic", "--backend", "fortran"]) == 2
    assert "backend must be one of" in capsys.readouterr().err


def test_bsgm_trace_round_trip(tmp_path):
    """BSGM through solve returns a Trace with λ as x (x[0] the start)."""
    tr = execute(RunSpec("bsgm", "linear-contraction", T=5, replicas=2))
    d = load_trace(save_trace(tr, tmp_path / "bsgm.npz"))
    assert type(d) is Trace and tr.x.shape == (6, 2, 2)
    np.testing.assert_array_equal(d.x, tr.x)
    np.testing.assert_array_equal(tr.x[0], np.tile([0.5, -0.3], (2, 1)))
    np.testing.assert_array_equal(d.counts["samples"], tr.counts["samples"])
    with pytest.raises(ValueError, match=r"\.npz"):
        save_trace(tr, tmp_path / "bsgm.json")


def test_max_relative_difference_flags_differences_and_divergence_patterns():
    a = np.array([[1.0, -2.0], [4.0, np.nan]])
    assert max_relative_difference(a, a.copy()) == 0.0
    b = a.copy()
    b[0, 0] += 4e-11  # 1e-11 relative to max |a| = 4
    assert max_relative_difference(a, b) == pytest.approx(1e-11)
    row = ComparisonRow("x", "numba", "numpy", 1.0, 1.0, 0.0, 1e-11, True, True)
    assert not row.ok  # the parity contract is 1e-12
    c = a.copy()
    c[1, 1] = 1.0  # finite where the reference diverged
    assert max_relative_difference(a, c) == float("inf")


@pytest.mark.numba
@pytest.mark.parametrize("algorithm", ["soba", "borep", "bsgm", "fmbo"])
def test_compare_backends_parity_rows(algorithm):
    rows = compare(algorithm, ("numpy", "numba"), T=60, replicas=2)
    assert len(rows) == 1 and rows[0].ok, rows
    assert rows[0].max_rel_dx <= 1e-12


@pytest.mark.numba
def test_compare_backends_command_prints_the_table(capsys):
    assert main(["compare-backends", "soba", "ttsa", "--T", "40", "--replicas", "2"]) == 0
    out = capsys.readouterr().out
    assert "| soba | numba vs numpy |" in out and "| ttsa | numba vs numpy |" in out
    assert main(["compare-backends", "soba", "--backends", "numpy"]) == 2
    assert main(["compare-backends", "nope", "--T", "5"]) == 2


def test_default_specs_exist_for_every_registered_algorithm():
    from refbilevel.backends import implementations

    for name in implementations("algorithm"):
        assert default_spec(name, T=10).algorithm == name
