"""Pre-registered counterexamples are results (docs/checks.rst "Counterexamples"): the suite
accepts one when the check's control half holds; any other failing probe is a failure."""

import json

import pytest

from refbilevel.checks import ClaimInfo, Evidence, Measurement, runner
from refbilevel.cli import main


def _fake(cid: str, *, registered: bool, passed: bool = True, control_rejected: bool = True,
          witness: dict | None = None):
    class Fake:
        CLAIM = ClaimInfo(id=cid, claim="fake", source="test",
                          evidence=(Evidence("exact"),),
                          counterexample_to="a printed bound" if registered else None)

        @staticmethod
        def measure(mode, seed, backend):
            return Measurement(passed=passed, control_rejected=control_rejected, measured={},
                               bound={}, control={"description": "c"}, counterexample=witness)

        @staticmethod
        def plot(m, fig):
            fig.subplots().plot([0, 1])

    return Fake


WITNESS = {"instance": {"mu": 20.0}, "left": 0.81, "right": -1.41}


def _run(monkeypatch, tmp_path, fake):
    monkeypatch.setattr(runner, "discover", lambda: {fake.CLAIM.id: fake})
    code = main(["check", "--out", str(tmp_path), "--no-progress"])
    return code, json.loads((tmp_path / f"{fake.CLAIM.id}.json").read_text())


def test_registered_counterexample_with_control_held_passes(tmp_path, monkeypatch):
    code, data = _run(monkeypatch, tmp_path, _fake("ZA", registered=True, witness=WITNESS))
    assert code == 0
    assert data["outcome"] == "counterexample" and data["counterexample"] == WITNESS
    assert data["counterexample_to"] == "a printed bound"
    assert data["evidence"] == [{"kind": "exact", "part": "all", "fpr": None, "note": ""}]
    report = (tmp_path / "report.md").read_text()
    assert "PASS (counterexample)" in report and "Counterexample" in report and "-1.41" in report


@pytest.mark.parametrize("broken", [{"passed": False}, {"control_rejected": False}])
def test_registered_counterexample_needs_the_control_half(tmp_path, monkeypatch, broken):
    code, data = _run(monkeypatch, tmp_path,
                      _fake("ZB", registered=True, witness=WITNESS, **broken))
    assert code == 1 and data["outcome"] == "failed"


def test_unregistered_counterexample_is_an_error(tmp_path, monkeypatch):
    code, data = _run(monkeypatch, tmp_path, _fake("ZC", registered=False, witness=WITNESS))
    assert code == 1 and data["outcome"] == "error"
    assert "registered none" in data["error"]


def test_registered_probe_that_holds_is_verified(tmp_path, monkeypatch):
    code, data = _run(monkeypatch, tmp_path, _fake("ZD", registered=True))
    assert code == 0 and data["outcome"] == "verified" and data["counterexample"] is None


def test_every_registered_check_states_its_evidence():
    for cid, mod in runner.discover().items():
        assert mod.CLAIM.evidence, f"{cid} states no evidence kind"
        for e in mod.CLAIM.evidence:
            assert e.kind != "statistical" or e.fpr is not None or e.note, cid


@pytest.mark.parametrize("kwargs, match", [({"kind": "proof"}, "evidence kind must be one of"),
                                           ({"kind": "statistical", "fpr": 0.05},
                                            "evidence fpr must be in"),
                                           ({"kind": "exact", "fpr": 1e-4},
                                            "for statistical parts only")])
def test_evidence_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Evidence(**kwargs)
