"""`refbilevel check` / `list`, the verdict JSON schema, scripts run alone, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from refbilevel.checks import ClaimInfo, Measurement, runner
from refbilevel.cli import main

REQUIRED = {"id", "claim", "source", "passed", "control_rejected", "measured", "bound",
            "seed", "backend", "elapsed_s", "mode", "versions", "control"}


def test_check_writes_verdicts_and_report(tmp_path, capsys):
    assert main(["check", "U1", "U2", "--out", str(tmp_path)]) == 0
    for cid in ("U1", "U2"):
        data = json.loads((tmp_path / f"{cid}.json").read_text())
        assert REQUIRED <= set(data)
        assert data["id"] == cid and data["passed"] and data["control_rejected"]
        assert (tmp_path / f"{cid}.png").stat().st_size > 1000
    assert "U1" in (tmp_path / "report.md").read_text()
    assert "| U2 | yes | yes | PASS |" in capsys.readouterr().out


def test_unknown_check_id_is_a_clear_error(tmp_path, capsys):
    assert main(["check", "Z9", "--out", str(tmp_path)]) == 2
    assert "unknown check id(s) Z9" in capsys.readouterr().err


class _FakeCheck:
    """A check whose control is NOT rejected must make `refbilevel check` fail."""

    CLAIM = ClaimInfo(id="ZZ", claim="fake", source="test")

    @staticmethod
    def measure(mode, seed, backend):
        return Measurement(passed=True, control_rejected=False, measured={}, bound={},
                           control={"description": "never rejected"})

    @staticmethod
    def plot(m, fig):
        fig.subplots().plot([0, 1])


def test_unrejected_control_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "discover", lambda: {"ZZ": _FakeCheck})
    assert main(["check", "--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "ZZ.json").read_text())["control_rejected"] is False


def test_script_runs_alone(tmp_path):
    script = Path(__file__).parents[1] / "theory_checks" / "u2_generalized_hessian.py"
    res = subprocess.run([sys.executable, str(script), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "U2.json").read_text())["passed"] is True


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("problems:", "unibio-example3", "estimators:", "algorithms:", "backends:",
                 "numba", "checks:", "U1", "U2"):
        assert word in out


def test_bench_names_its_scripts():
    from refbilevel.cli import BENCHES

    root = Path(__file__).parents[1] / "benchmarks"
    assert all((root / s).exists() for scripts in BENCHES.values() for s in scripts)


def test_bench_runs_every_script_of_its_group_and_reports_a_failure(tmp_path, monkeypatch,
                                                                    capsys):
    """A benchmark script ends with sys.exit; run in the CLI's process, the first script's
    exit had ended `refbilevel bench algorithms` before bench_replicas.py ran."""
    import argparse

    from refbilevel import cli

    (tmp_path / "first.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "second.py").write_text(
        "from pathlib import Path\nPath(__file__).with_name('ran').write_text('yes')\n")
    monkeypatch.setitem(cli.BENCHES, "oracles", ("first.py", "second.py"))
    rc = cli._cmd_bench(argparse.Namespace(which="oracles"), folder=tmp_path)
    assert rc == 1
    assert (tmp_path / "ran").read_text() == "yes"
    assert "first.py (exit status 3)" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["gpu", "jax"])
def test_unknown_backend_rejected(backend):
    from refbilevel.backends import require_backend

    with pytest.raises(ValueError, match="backend must be one of numpy, numba, cupy"):
        require_backend(backend)
