"""The public problem registry: register / registered, the entry-point group, ``--import`` on
every command, and the problem-generic checks' ``--problem`` (refbilevel.problems.registry,
refbilevel.checks.problem_selection)."""

import json

import numpy as np
import pytest

import tests.user_problem as user
from refbilevel.cli import main
from refbilevel.problems import (
    make_problem,
    problem_names,
    register,
    registered,
    unregister,
)
from refbilevel.problems.registry import ENTRY_POINT_GROUP, reload_entry_points


def test_user_problem_is_listed_with_its_description_and_parameters():
    entry = {e.name: e for e in registered()}[user.NAME]
    assert entry.origin == "user"
    assert entry.description.startswith("½||y||² − s<sin x, y> below")
    assert [str(p) for p in entry.parameters] == ["d=2", "scale=1.0"]
    P = make_problem(user.NAME, d=3, scale=2.0)
    x = np.array([0.3, -1.0, 2.0])
    np.testing.assert_allclose(P.y_star(x), 2.0 * np.sin(x), rtol=0, atol=0)


def test_register_refuses_a_second_registration_and_bad_factories():
    with pytest.raises(ValueError, match="already registered .*replace=True"):
        register(user.NAME, user.scaled_sine)
    with pytest.raises(ValueError, match="factory must be a callable or 'module:attribute'"):
        register("test-bad", 3)
    with pytest.raises(ValueError, match="factory must be a callable or 'module:attribute'"):
        register("test-bad", "no_colon_here")
    with pytest.raises(ValueError, match="problem name must be a non-empty string"):
        register(" ", user.scaled_sine)


def test_register_replace_and_unregister():
    register("test-temporary", "tests.user_problem:scaled_sine", description="lazy one")
    try:
        assert "test-temporary" in problem_names()
        assert {e.name: e for e in registered()}["test-temporary"].description == "lazy one"
        register("test-temporary", lambda: make_problem(user.NAME, d=1), replace=True)
        assert make_problem("test-temporary").d_x == 1
    finally:
        unregister("test-temporary")
    assert "test-temporary" not in problem_names()
    with pytest.raises(ValueError, match="unknown problem 'test-temporary'.*--import MODULE"):
        make_problem("test-temporary")


def test_entry_point_group_registers_an_installed_distributions_problem(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring the group (its dist-info entry_points.txt,
    what `pip install` writes from setup.cfg), read lazily by the registry."""
    info = tmp_path / "refbilevel_user_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: refbilevel-user-dist\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntest-entry-point-sine = tests.user_problem:scaled_sine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reload_entry_points()
    try:
        entry = {e.name: e for e in registered()}["test-entry-point-sine"]
        assert entry.origin == "entry-point"
        assert make_problem("test-entry-point-sine", d=4).d_y == 4
    finally:
        monkeypatch.undo()
        reload_entry_points()
    assert "test-entry-point-sine" not in problem_names()


def test_cli_run_list_and_checks_name_an_imported_problem(tmp_path, capsys):
    """`refbilevel run --import tests.user_problem ...`, `list`, and U1 / X1 by name."""
    out = tmp_path / "trace.npz"
    rc = main(["run", "--import", "tests.user_problem", "soba", "--problem", user.NAME,
               "--T", "20", "--replicas", "2", "--noise", "0", "--out", str(out)])
    assert rc == 0 and out.exists()
    assert main(["--import", "tests.user_problem", "list"]) == 0
    assert f"{user.NAME}" in capsys.readouterr().out
    rc = main(["--import", "tests.user_problem", "check", "U1", "X1", "--problem", user.NAME,
               "--out", str(tmp_path / "checks"), "--no-progress"])
    assert rc == 0
    u1 = json.loads((tmp_path / "checks" / "U1.json").read_text())
    assert u1["measured"]["registry"]["registry_instances"] == [f"{user.NAME} (registry default)"]
    assert [r["problem"] for r in u1["measured"]["per_problem"]] == [
        "Example 3, p=4 (control instance)", f"{user.NAME} (registry default)"]
    assert u1["control_rejected"]
    x1 = json.loads((tmp_path / "checks" / "X1.json").read_text())
    rows = x1["measured"]["per_problem"]
    assert [r["registry"] for r in rows] == [user.NAME] and rows[0]["passed"]


def test_cli_refuses_bad_imports_and_problem_options(tmp_path, capsys):
    assert main(["--import", "no_such_module_here", "list"]) == 2
    assert "--import no_such_module_here: cannot import it" in capsys.readouterr().err
    args = ["--out", str(tmp_path), "--no-progress"]
    assert main(["check", "U1", "--problem", "no-such-problem", *args]) == 2
    assert "unknown problem 'no-such-problem'" in capsys.readouterr().err
    assert main(["check", "S1", "--problem", user.NAME, *args]) == 2
    assert "--problem applies to the problem-generic checks" in capsys.readouterr().err
    assert main(["check", "U4", "--problem", "linear-contraction", *args]) == 2
    assert "U4 applies to none of the problems" in capsys.readouterr().err


def test_default_selection_adds_registered_problems_and_says_what_it_skipped():
    """Without --problem a generic check runs its table plus every registered problem it
    applies to (the user's included) and lists the others with the reason."""
    from refbilevel.checks.problem_selection import needs_constants, select_problems

    register("test-needs-a-parameter", lambda scale: user.scaled_sine(scale=scale))
    try:
        sel = select_problems("U1", None, needs_constants("l_p"),
                              covered=("unibio-example3",))
    finally:
        unregister("test-needs-a-parameter")
    labels = [label for _, label, _ in sel.instances]
    assert f"{user.NAME} (registry default)" in labels
    assert "unibio-example3 (registry default)" not in labels
    skipped = {s.name: s.reason for s in sel.skipped}
    assert skipped["lp-hypercleaning"] == "constants l_p not stated (None)"
    assert skipped["linear-contraction"].startswith("LinearContraction is not a BilevelProblem")
    assert skipped["test-needs-a-parameter"].startswith("no default instance: ValueError: "
                                                        "problem 'test-needs-a-parameter' "
                                                        "needs parameter scale")


def test_sweep_workers_import_the_registering_modules(tmp_path):
    """The cells run in worker processes, which have not run the parent's --import: run_sweep
    imports the modules there first (the cell function's own module does not register it).
    A spawned worker starts from scratch, as a Dask worker does (a forked one would inherit
    the parent's registry and prove nothing)."""
    import concurrent.futures as cf
    import multiprocessing

    from refbilevel.sweeps import run_sweep
    from tests.sweep_cells import registered_problem_cell

    cells = [{"problem": user.NAME, "d": 3}]
    for imports, expect_error in (((), True), (("tests.user_problem",), False)):
        with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
            path = tmp_path / f"r{len(imports)}.jsonl"
            if expect_error:
                with pytest.raises(ValueError, match=f"unknown problem '{user.NAME}'"):
                    run_sweep(registered_problem_cell, cells, path, executor=ex,
                              progress=False, imports=imports)
            else:
                rows = run_sweep(registered_problem_cell, cells, path, executor=ex,
                                 progress=False, imports=imports)
                assert rows[0]["values"] == {"d_x": 3}


def test_solve_runs_a_registered_user_problem_by_name_on_numpy():
    """refbilevel.solve names the user's problem like a library one; SOBA with exact oracles
    drives ||∇φ|| down (φ = (s²/2)||sin x||², smooth with L_phi2 = s²)."""
    import refbilevel

    trace = refbilevel.solve(user.NAME, "soba", T=300, noise=0.0, replicas=2,
                             problem_params={"d": 3}, x0=1.0)
    assert trace.x.shape[-1] == 3
    g0, gT = trace.grad_phi_norm[0], trace.grad_phi_norm[-1]
    # from x0 = 1 (||∇φ|| = √3 sin 1 cos 1 = 0.79), descent reaches a stationary point
    assert np.all(gT < 1e-2 * g0), (g0, gT)
