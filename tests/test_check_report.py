"""The check report (report.md, self-contained report.html) and the provenance of verdicts:
the backend actually used, the git commit and dirty flag (docs/checks.rst)."""

from __future__ import annotations

import json
import re

import pytest

from refbilevel.backends import implementation
from refbilevel.checks import ClaimInfo, Measurement, runner
from refbilevel.checks.report import leaves
from refbilevel.checks.runner import backend_record
from refbilevel.checks.verdict import Verdict, source_revision


def _check(cid: str, lookup: str | None):
    """A check measuring an interval, a bound and a control, that looks up the estimator
    ``neumann`` on ``lookup`` (``"requested"``: the --backend it was given; None: none)."""

    class Check:
        CLAIM = ClaimInfo(id=cid, claim=f"claim {cid}", source="test")

        @staticmethod
        def measure(mode, seed, backend):
            if lookup is not None:
                implementation("estimator", "neumann",
                               backend if lookup == "requested" else lookup)
            return Measurement(
                passed=True, control_rejected=True,
                measured={"slope": {"estimate": -0.25, "ci": [-0.27, -0.23], "level": 0.999},
                          "per_p": [{"p": 2.0, "ratio_ci999": [0.5, 0.75]}],
                          "uncertainty": {"slope": "normal interval"}},
                bound={"slope_at_most": -0.2}, control={"description": "a faster rate",
                                                        "claimed": -0.5, "rejected": True})

        @staticmethod
        def plot(m, fig):
            fig.subplots().plot([0, 1], [1, 0])

    return Check


@pytest.fixture
def fake_checks(monkeypatch):
    checks = {"ZA": _check("ZA", None), "ZB": _check("ZB", "requested"),
              "ZC": _check("ZC", "numpy")}
    monkeypatch.setattr(runner, "discover", lambda: checks)
    return checks


def test_backend_record_says_when_the_request_was_not_honoured():
    assert backend_record("numba", {"numba", "numpy"}) == (["numba", "numpy"], "numba", None)
    assert backend_record("numpy", set()) == (["numpy"], "numpy", None)
    used, ran, note = backend_record("numba", set())
    assert (used, ran) == (["numpy"], "numpy")
    assert note == "--backend numba not honoured: this check ran on numpy"


def test_verdicts_record_the_backend_used_and_the_source(tmp_path, fake_checks):
    vs = runner.run_checks(None, mode="quick", seed=1, backend="numba", out=tmp_path,
                           progress=False)
    by = {v.id: v for v in vs}
    # no lookup: the reference NumPy code ran, the request is not recorded as honoured
    assert by["ZA"].backend == "numpy" and "not honoured" in by["ZA"].backend_note
    assert by["ZB"].backend == "numba" and by["ZB"].backend_note is None
    assert by["ZC"].backend == "numpy" and by["ZC"].backends_used == ["numpy"]
    data = json.loads((tmp_path / "ZA.json").read_text())
    assert data["backend_requested"] == "numba" and data["backends_used"] == ["numpy"]
    commit, dirty = source_revision()
    assert data["git_commit"] == commit and data["git_dirty"] == dirty
    # run from a checkout: a 40-hex commit and a flag; from an installed wheel: None, None
    assert (commit is None and dirty is None) or (re.fullmatch("[0-9a-f]{40}", commit)
                                                  and isinstance(dirty, bool))
    assert Verdict.read(tmp_path / "ZB.json") == by["ZB"]


def test_report_shows_values_intervals_bounds_controls_and_figures(tmp_path, fake_checks):
    runner.run_checks(None, mode="quick", seed=1, backend="numpy", out=tmp_path,
                      progress=False)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    for text in (md, page):
        assert "-0.25 [-0.27, -0.23] (99.9%)" in text  # value, interval, level
        assert "per_p[p=2].ratio_ci999" in text and "[0.5, 0.75]" in text
        assert "slope_at_most" in text and "a faster rate" in text and "claimed" in text
        assert "PASS" in text
    assert "![ZA](ZA.png)" in md
    # self-contained: every figure embedded, nothing loaded from elsewhere
    assert page.count("src='data:image/png;base64,") == 3
    assert not re.search(r"src=['\"](?!data:)", page) and "<link" not in page


def test_leaves_summarize_long_lists_and_name_rows():
    got = dict((p, v) for p, v, _ in leaves({"xs": list(range(10)),
                                             "rows": [{"problem": "P1", "slope": 4.01}]}))
    assert got == {"xs": "10 values in [0, 9]", "rows[problem=P1].slope": "4.01"}


def test_measured_values_with_integer_keys_are_reported():
    """A check may key its measured values by numbers (e.g. p = 3, 4): the report's walk must
    not assume string keys (it crashed on the full quick suite once)."""
    rows = {path: text for path, text, _ in
            leaves({"by_p": {3: [0.1, 0.2], 4: {"ratio": 0.5}}, "ci": {2: [1.0, 2.0]}})}
    assert rows["by_p.3"] == "[0.1, 0.2]" and rows["by_p.4.ratio"] == "0.5"
    assert rows["ci.2"] == "[1, 2]"
