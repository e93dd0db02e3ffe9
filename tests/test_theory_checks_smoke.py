"""Every theory check (theory_checks/, docs/checks.rst) is imported and run end to end by
pytest: measure on a tiny instance, the verdict JSON, the figure (docs/checks.rst).

The quick mode of several checks takes 10-45 s; here their sample sizes and horizons are cut
by wrapping the module's own sizing function (``SHRINK``), so the whole file takes seconds
and exercises the same code path: measurement, negative control, verdict, figure. At these
sizes a statistical claim may lose its power, so only the checks that stay exact at any size
(``EXACT_AT_ANY_SIZE``) must pass here; the others' verdicts at full strength are the job of
``refbilevel check``. The checks whose quick mode already runs in another test file
(``RUN_ELSEWHERE``) are not run twice: the test verifies that file calls their
``measure``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from refbilevel.checks import runner

CHECKS = runner.discover()
TESTS = Path(__file__).parent

#: checks whose quick-mode measure() another test runs (the file named)
RUN_ELSEWHERE = {"S4": "test_checks_s4_x34.py", "X3": "test_checks_s4_x34.py",
                 "X4": "test_checks_s4_x34.py", "X1": "test_checks_x12.py",
                 "X2": "test_checks_x12.py", "F4": "test_checks_f3_f4_b4_b5_s6.py",
                 "S6": "test_checks_f3_f4_b4_b5_s6.py", "U11": "test_checks_u9_u13.py",
                 "U13": "test_checks_u9_u13.py"}
#: deterministic checks (closed forms, exact accounting): they must hold and reject their
#: control whatever the size
EXACT_AT_ANY_SIZE = {"B3", "S3", "U1", "U2", "U3", "U4", "U5"}
NEEDS_NUMBA = {"U7", "U8"}  # scalar Epoch-SGD and UniBiO kernels imported directly


def _cap(fn, **caps):
    """``fn`` with the keyword or positional arguments named in ``caps`` capped."""
    import inspect

    names = list(inspect.signature(fn).parameters)

    def wrapped(*args, **kwargs):
        args = list(args)
        for name, cap in caps.items():
            i = names.index(name)
            if i < len(args):
                args[i] = min(args[i], cap)
            elif name in kwargs:
                kwargs[name] = min(kwargs[name], cap)
        return fn(*args, **kwargs)

    return wrapped


def _shrink_u8(mod, monkeypatch):
    from refbilevel.problems.unibio_example3 import UniBiOExample3

    tuned = mod.tuned_params
    monkeypatch.setattr(mod, "tuned_params", lambda p, **kw: tuned(p, **{"T": 60, **kw}))
    monkeypatch.setattr(mod, "EMPIRICAL_CASES", {
        "quick": [("Example 3", lambda: UniBiOExample3(2), 3.0, 0.9, 2)]})
    monkeypatch.setattr(mod, "N_RECORDS", 100)
    run = mod._bracketed_run
    monkeypatch.setattr(mod, "_bracketed_run", lambda problem, X0, prm, n, rng: run(
        problem, X0, dataclasses.replace(prm, T=min(prm.T, 3000)), n, rng))


def _shrink_x5(mod, monkeypatch):
    """Two short cells of the method × problem matrix instead of all of them at full T."""
    pairs = [("soba", "quadratic"), ("stocbio", "quadratic")]
    monkeypatch.setattr(mod, "cells", lambda backend, replicas, seed: [
        mod.run_cell(m, p, backend=backend, replicas=replicas, seed=seed, T=200)
        for m, p in pairs])


# check id -> how to make it tiny (monkeypatch of its own sizing functions)
SHRINK = {
    "F3": lambda m, mp: mp.setattr(m, "run", _cap(m.run, R=8, T=300)),
    "U10": lambda m, mp: (mp.setattr(m, "R_PATHS", {"quick": 10, "full": 10}),
                          mp.setattr(m, "lemma_c6", _cap(m.lemma_c6, R=10)),
                          mp.setattr(m, "unibio_iterates", _cap(m.unibio_iterates, R=4))),
    "X5": _shrink_x5,
    "B2": lambda m, mp: mp.setattr(m, "run_all", _cap(m.run_all, R=2, T=300)),
    "F2": lambda m, mp: mp.setattr(m, "rate_slope", _cap(m.rate_slope, R=8, T=300)),
    "S1": lambda m, mp: mp.setattr(m, "mc_mse", _cap(m.mc_mse, R=300)),
    "S2": lambda m, mp: (mp.setattr(m, "mc_mse", _cap(m.mc_mse, R=200)),
                         mp.setattr(m, "t_grid", lambda n: np.array([8, 16, 32, 64]))),
    "S3": lambda m, mp: mp.setattr(m, "error_grid", _cap(m.error_grid, T=8)),
    "S5": lambda m, mp: mp.setattr(m, "run_paths", _cap(m.run_paths, T=20, R=3)),
    "U7": lambda m, mp: mp.setattr(m, "_run", _cap(m._run, R=20)),
    "U8": _shrink_u8,
}


def _params():
    for cid in CHECKS:
        marks = [pytest.mark.numba] if cid in NEEDS_NUMBA else []
        yield pytest.param(cid, id=cid, marks=marks)


@pytest.mark.parametrize("cid", list(_params()))
def test_every_check_runs_on_a_tiny_instance(cid, tmp_path, monkeypatch):
    module = CHECKS[cid]
    assert callable(module.measure) and callable(module.plot)
    assert module.CLAIM.id == cid and module.CLAIM.source
    if cid in RUN_ELSEWHERE:
        text = (TESTS / RUN_ELSEWHERE[cid]).read_text()
        name = module.__name__.rsplit(".", 1)[1]
        alias = cid.lower()  # the files import the module as its id (``as u11``)
        assert f"{name}.measure(" in text or f"{alias}.measure(" in text, \
            f"{cid}: {RUN_ELSEWHERE[cid]} no longer runs it"
        return
    if cid in SHRINK:
        SHRINK[cid](module, monkeypatch)
    drawn = []
    draw = runner.draw_figure
    monkeypatch.setattr(runner, "draw_figure", lambda mod, m: drawn.append(draw(mod, m))
                        or drawn[-1])
    v = runner.run_check(module, mode="quick", seed=0, backend="numpy", out=tmp_path)
    assert v.error is None, v.error
    data = json.loads((tmp_path / f"{cid}.json").read_text())
    assert data["control"].get("description"), "every check describes its negative control"
    assert data["measured"] and data["bound"]
    assert (tmp_path / f"{cid}.png").stat().st_size > 5_000  # the figure was drawn
    if cid in EXACT_AT_ANY_SIZE:
        assert v.passed and v.control_rejected
    assert_house_style(drawn[0])


def assert_house_style(fig):
    """Legends readable (>= 8 pt); reference lines (dashed/dotted) drawn over the data."""
    from refbilevel.checks.figure_style import MIN_LEGEND_PT, is_reference_line

    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for legend in legends:
        assert min(t.get_fontsize() for t in legend.get_texts()) >= MIN_LEGEND_PT
    for ax in fig.axes:
        refs = [ln.get_zorder() for ln in ax.get_lines() if is_reference_line(ln)]
        data = ([ln.get_zorder() for ln in ax.get_lines() if not is_reference_line(ln)]
                + [c.get_zorder() for c in ax.collections])
        if refs and data:
            assert min(refs) >= max(data), ax.get_title()


def test_every_module_is_covered():
    """A new check module must be added to one of the lists above (or run as is)."""
    import pkgutil

    import theory_checks

    modules = [m.name for m in pkgutil.iter_modules(theory_checks.__path__)
               if not m.name.startswith("_")]
    assert len(modules) == len(CHECKS)  # every module defines a CLAIM
    assert set(SHRINK) | set(RUN_ELSEWHERE) | EXACT_AT_ANY_SIZE <= set(CHECKS)
