"""The claims ledger (docs/claims.rst) and `refbilevel claims`."""

import json

import pytest

from refbilevel import claims_ledger as ledger
from refbilevel.checks import runner
from refbilevel.cli import main


def test_full_entries_are_covered_by_registered_checks():
    registry = runner.discover()
    for e in ledger.entries():
        for cid in e.check_ids:
            assert cid in registry, f"{e.paper} {e.number}: check {cid} is not registered"
        if e.status == "full":
            assert e.check_ids and e.outcome in ("verified", "counterexample"), e


def test_counterexamples_come_from_pre_registered_checks():
    registry = runner.discover()
    for e in ledger.entries():
        if e.outcome == "counterexample":
            assert any(registry[c].CLAIM.counterexample_to for c in e.check_ids), e


def test_entries_are_unique_and_counted():
    keys = [(e.paper, e.number) for e in ledger.entries()]
    assert len(keys) == len(set(keys))
    c = ledger.counts()
    assert sum(c["total"].values()) == len(keys)
    assert c["total"]["full"] == sum(1 for e in ledger.entries() if e.status == "full")


@pytest.mark.parametrize("kwargs, match", [
    ({"status": "done"}, "status must be one of"),
    ({"provenance": "memory"}, "provenance must be one of"),
    ({"status": "full", "outcome": ""}, "an outcome is recorded exactly for full entries"),
    ({"status": "full", "outcome": "verified"}, "a full entry needs a theory check"),
])
def test_bad_entries_are_rejected(kwargs, match):
    base = {"paper": "UniBiO", "number": "Lemma X", "statement": "s", "provenance": "paper",
            "status": "unchecked"}
    with pytest.raises(ValueError, match=match):
        ledger.LedgerEntry(**{**base, **kwargs})


def test_claims_json_carries_the_latest_verdicts(tmp_path, capsys):
    (tmp_path / "U1.json").write_text(json.dumps(
        {"id": "U1", "passed": True, "control_rejected": True, "error": None,
         "outcome": "verified", "mode": "quick"}))
    (tmp_path / "U3.json").write_text(json.dumps(
        {"id": "U3", "passed": False, "control_rejected": True, "error": None, "mode": "quick"}))
    assert main(["claims", "--json", "--results", str(tmp_path)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(ledger.entries())
    assert {"paper", "statement", "status", "outcome", "checks", "provenance"} <= set(records[0])
    latest = {c["check"]: c["latest"] for r in records for c in r["checks"]}
    assert latest["U1"] == "verified" and latest["U3"] == "failed" and latest["U2"] == ""


def test_claims_table_prints_counts_per_paper(tmp_path, capsys):
    assert main(["claims", "--results", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "no verdicts under" in out
    for paper in ledger.PAPERS:
        assert f"| {paper} |" in out
    assert f"| total | {ledger.counts()['total']['full']} |" in out
