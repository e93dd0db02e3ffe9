"""Progress bars of the theory checks (refbilevel.progress.track / bar, `--no-progress`) and
the interval helpers of the verdicts (refbilevel.checks.intervals)."""

import inspect
import io

import numpy as np
import pytest

from refbilevel import progress
from refbilevel.checks import intervals, runner
from refbilevel.cli import main


@pytest.fixture(autouse=True)
def _default_switch(monkeypatch):
    """Every test starts from (and leaves) the default switch, without the env override."""
    monkeypatch.delenv("REFBILEVEL_PROGRESS", raising=False)
    progress.set_progress(None)
    yield
    progress.set_progress(None)


def _lines(text, label):
    return [ln for ln in text.splitlines() if ln.startswith(label)]


def test_track_yields_everything_and_reports_when_on():
    out = io.StringIO()
    with progress.progress_switch(True):
        items = list(progress.track(range(20), "X1 stage", stream=out, delay=0,
                                    note=lambda i: f"item {i}"))
    assert items == list(range(20))
    lines = _lines(out.getvalue(), "X1 stage")
    assert 2 <= len(lines) <= 11  # one line per 10% off a terminal
    assert "20/20" in lines[-1] and "item 19" in lines[-1]


def test_track_is_silent_when_off_and_for_short_stages():
    out = io.StringIO()
    with progress.progress_switch(False):
        assert list(progress.track([1, 2, 3], "X1 off", stream=out, delay=0)) == [1, 2, 3]
    with progress.progress_switch(True):  # a stage shorter than the delay prints nothing
        assert list(progress.track(iter([1, 2]), "X1 fast", stream=out, delay=60)) == [1, 2]
    assert out.getvalue() == ""


def test_switch_default_env_and_pytest(monkeypatch):
    assert not progress.progress_enabled()  # automatic: off inside a pytest test
    monkeypatch.setenv("REFBILEVEL_PROGRESS", "1")
    assert progress.progress_enabled()
    monkeypatch.setenv("REFBILEVEL_PROGRESS", "off")
    assert not progress.progress_enabled()
    with progress.progress_switch(True):
        assert progress.progress_enabled()
    assert not progress.progress_enabled()


def test_check_progress_on_stderr_only_when_enabled(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # U2 is fast: show even an instant stage
    runner.run_checks(["U2"], mode="quick", seed=1, backend="numpy", out=tmp_path,
                      progress=True)
    cap = capsys.readouterr()
    assert _lines(cap.err, "U2 problems"), cap.err
    assert "U2 problems" not in cap.out  # bars go to stderr, the table to stdout
    assert "| U2 | yes | yes | PASS |" in cap.out
    runner.run_checks(["U2"], mode="quick", seed=1, backend="numpy", out=tmp_path,
                      progress=False)
    assert "U2 problems" not in capsys.readouterr().err
    assert main(["check", "U2", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "U2 problems" not in capsys.readouterr().err


def test_every_check_tracks_progress_and_states_uncertainty():
    """Static guard (running all checks is too slow for a unit test): every check reports
    progress through refbilevel.progress and says which values are exact and which carry an
    interval (measured["uncertainty"])."""
    for cid, mod in runner.discover().items():
        src = inspect.getsource(mod)
        assert "from refbilevel.progress import" in src, cid
        assert f'"{cid} ' in src, f"{cid}: progress labels start with the check id"
        assert '"uncertainty"' in src, cid


def test_binomial_and_mean_intervals():
    ci = intervals.binomial_ci(0, 1000)
    assert ci["ci"][0] == 0.0 and ci["ci"][1] == pytest.approx(1 - 0.0005 ** (1 / 1000))
    lo, hi = intervals.binomial_ci(50, 100)["ci"]
    assert lo < 0.5 < hi and hi - 0.5 == pytest.approx(0.5 - lo)
    m = intervals.mean_ci(np.r_[np.arange(10.0), np.nan])
    assert m["n"] == 10 and m["non_finite"] == 1 and m["mean"] == 4.5
    # the t quantile on 9 degrees of freedom, not the normal one
    assert (m["ci"][1] - m["mean"]) / m["se"] == pytest.approx(4.780912585933285)
    assert intervals.z_quantile(0.999) == pytest.approx(3.2905267)
    b = intervals.bootstrap_ci(np.arange(100.0), np.mean, np.random.default_rng(0), n_boot=500)
    assert b["ci"][0] < 49.5 < b["ci"][1]
