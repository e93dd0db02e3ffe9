"""Every problem-generic check (U1-U5, X1, X2) takes ``--problem NAME`` for a problem
registered from outside the package (issue 14 item 3; tests/user_problem.py), and runs on it
alone; tests/test_problem_registry.py covers U1 and X1 in detail."""

import json

import pytest

from refbilevel.checks import runner
from refbilevel.cli import main
from tests import user_problem as user

GENERIC = ("U1", "U2", "U3", "U4", "U5", "X1", "X2")


def test_the_generic_checks_are_the_ones_that_say_so():
    flagged = {cid for cid, mod in runner.discover().items() if runner.problem_generic(mod)}
    assert flagged == set(GENERIC)


@pytest.mark.parametrize("cid", [c for c in GENERIC if c != "U5"])
def test_generic_check_runs_on_an_imported_problem_by_name(cid, tmp_path):
    rc = main(["--import", "tests.user_problem", "check", cid, "--problem", user.NAME,
               "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / f"{cid}.json").read_text())
    assert data["passed"] and data["control_rejected"]
    assert user.NAME in json.dumps(data["measured"])


def test_u5_names_the_constants_a_problem_lacks_and_runs_on_one_that_states_them(tmp_path,
                                                                                 capsys):
    """U5 needs the ingredients of L̄, which the user's sine problem does not state: exit 2
    with the reason; on the registered bump family it runs by name."""
    args = ["--out", str(tmp_path), "--no-progress"]
    assert main(["--import", "tests.user_problem", "check", "U5", "--problem", user.NAME,
                 *args]) == 2
    assert "its constants do not give L̄" in capsys.readouterr().err
    assert main(["check", "U5", "--problem", "uniformly-convex-bump", *args]) == 0
    data = json.loads((tmp_path / "U5.json").read_text())
    assert data["passed"] and "uniformly-convex-bump" in json.dumps(data["measured"])
