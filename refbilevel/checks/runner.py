"""Discover, run and report theory checks (``refbilevel check``; docs/checks.rst).

Checks live in the ``theory_checks`` package, one module per claim, named by the claim's id
(``u1_holder_continuity.py`` holds claim U1).

Checks report progress on stderr through :func:`refbilevel.progress.track` / ``bar``, one bar
per stage labelled with the check's id ("S1 Monte Carlo", "U7 runs (p, budget)"); stages
shorter than half a second print nothing. ``--no-progress`` (or ``run_checks(...,
progress=False)``, or ``REFBILEVEL_PROGRESS=0``) turns them off; inside pytest they are off
unless a test turns them on.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pkgutil
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

from refbilevel.backends.registry import recording_backends
from refbilevel.checks.figure_style import apply_house_style
from refbilevel.checks.problem_selection import ProblemSelectionError
from refbilevel.checks.report import summary_table, write_report
from refbilevel.checks.verdict import Verdict, source_revision, versions
from refbilevel.progress import progress_switch
from refbilevel.validation import int_argument

MODES = ("quick", "full")


def discover() -> dict[str, ModuleType]:
    """{claim id: module} for every module of the theory_checks package."""
    import theory_checks

    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(theory_checks.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"theory_checks.{info.name}")
        claim = getattr(mod, "CLAIM", None)
        if claim is not None:
            found[claim.id] = mod
    return found


def problem_generic(module: ModuleType) -> bool:
    """The check takes ``problems=`` (``--problem NAME``; refbilevel.checks.problem_selection)."""
    return bool(getattr(module, "PROBLEM_GENERIC", False))


def run_check(module: ModuleType, *, mode: str, seed: int, backend: str, out: Path,
              problems: list[str] | None = None) -> Verdict:
    """Run one check; write ``<id>.json`` and ``<id>.png`` under ``out``. ``problems``:
    registered problem names for a problem-generic check (None: its default selection)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    claim = module.CLAIM
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with recording_backends() as looked_up:
        try:
            kwargs = {"problems": problems} if problems is not None else {}
            m = module.measure(mode=mode, seed=seed, backend=backend, **kwargs)
            error = None
        except ProblemSelectionError:  # bad --problem input, not a failed check
            raise
        except Exception as exc:  # a crashing check is reported as failed, with its traceback
            m, error = None, "".join(traceback.format_exception(exc))
    elapsed = time.perf_counter() - t0
    if m is not None and m.counterexample is not None and claim.counterexample_to is None:
        error = (f"{claim.id} returned a counterexample but registered none "
                 "(ClaimInfo.counterexample_to): only pre-registered probes may fail")
    used, ran_on, note = backend_record(backend, set(looked_up) | set(m.backends_used if m
                                                                       else ()))
    commit, dirty = source_revision()
    verdict = Verdict(
        id=claim.id, claim=claim.claim, source=claim.source,
        passed=bool(m and m.passed), control_rejected=bool(m and m.control_rejected),
        measured=m.measured if m else {}, bound=m.bound if m else {},
        control=m.control if m else {}, seed=seed, backend=ran_on, mode=mode,
        elapsed_s=round(elapsed, 3), versions=versions(), notes=m.notes if m else [],
        error=error, evidence=[asdict(e) for e in claim.evidence],
        counterexample_to=claim.counterexample_to, counterexample=m.counterexample if m else None,
        backend_requested=backend, backends_used=used, backend_note=note,
        git_commit=commit, git_dirty=dirty,
    )
    verdict.outcome = verdict.outcome_of()
    if m is not None:
        verdict.figure = _figure(module, m, out / f"{claim.id}.png")
    verdict.write(out / f"{claim.id}.json")
    return verdict


def backend_record(requested: str, used: set[str]) -> tuple[list[str], str, str | None]:
    """(backends used, the backend to record, a note or None) for a check asked to run on
    ``requested`` that looked up implementations on ``used`` (plus the kernels it declared).
    A check that looked up none ran the NumPy reference code. When ``requested`` is not
    among them the check could not honour ``--backend``: the verdict records what it ran on
    and says so, instead of recording the request as if it had been honoured."""
    ran = sorted(used) or ["numpy"]
    if requested in ran:
        return ran, requested, None
    return ran, ", ".join(ran), (f"--backend {requested} not honoured: this check ran on "
                                 f"{', '.join(ran)}")


def draw_figure(module: ModuleType, m) -> Any:
    """The check's figure: its ``plot`` on an 11 × 4.2 in figure, the claim as title, then
    the house style (:func:`refbilevel.checks.figure_style.apply_house_style`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.2))
    try:
        module.plot(m, fig)
        fig.suptitle(f"{module.CLAIM.id}: {module.CLAIM.claim}", fontsize=9)
        apply_house_style(fig)
        fig.tight_layout()
    except Exception:
        plt.close(fig)
        raise
    return fig


def _figure(module: ModuleType, m, path: Path) -> str | None:
    import matplotlib.pyplot as plt

    fig = draw_figure(module, m)
    try:
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
    return path.name


def run_checks(ids: list[str] | None, *, mode: str, seed: int, backend: str, out: Path,
               stream=None, progress: bool | None = None,
               problems: list[str] | None = None) -> list[Verdict]:
    """Run the checks ``ids`` (default: all), print one line per check and the summary table
    on ``stream`` (stdout) and write the report. The checks' progress bars go to stderr;
    ``progress`` turns them on or off for this call (``None``: the process-wide switch of
    :mod:`refbilevel.progress`; ``--no-progress`` passes False). ``problems`` (``--problem``)
    restricts the problem-generic checks to those registered problems; without ``ids`` it
    selects every problem-generic check, and it is a ValueError with any other check."""
    switch = (progress_switch(progress) if progress is not None
              else contextlib.nullcontext())
    with switch:
        return _run_checks(ids, mode=mode, seed=seed, backend=backend, out=out,
                           stream=sys.stdout if stream is None else stream, problems=problems)


def _run_checks(ids, *, mode, seed, backend, out, stream, problems=None) -> list[Verdict]:
    checks = discover()
    generic = [cid for cid, mod in checks.items() if problem_generic(mod)]
    if ids:
        wanted = [i.upper() for i in ids]
    else:
        wanted = generic if problems else list(checks)
        if mode == "quick":
            for cid in list(wanted):
                why = checks[cid].CLAIM.quick_suite_exclusion
                if why:
                    wanted.remove(cid)
                    print(f"{cid} is not in the default quick suite ({why}); run "
                          f"`refbilevel check {cid}` or --full", file=stream, flush=True)
    unknown = [i for i in wanted if i not in checks]
    if unknown:
        raise ValueError(f"unknown check id(s) {', '.join(unknown)}; available: "
                         f"{', '.join(checks)}")
    if problems:
        other = [i for i in wanted if i not in generic]
        if other:
            raise ValueError(f"--problem applies to the problem-generic checks "
                             f"{', '.join(generic)}, not to {', '.join(other)}")
    verdicts = []
    for i, cid in enumerate(wanted, 1):
        print(f"[{i}/{len(wanted)}] {cid} ({mode}) ...", file=stream, flush=True)
        v = run_check(checks[cid], mode=mode, seed=seed, backend=backend, out=out,
                      problems=problems or None)
        print(f"    {'PASS' if v.ok else 'FAIL'} ({v.outcome}): claim held={v.passed}, "
              f"control rejected={v.control_rejected}, {v.elapsed_s:.1f}s", file=stream,
              flush=True)
        verdicts.append(v)
    print("\n" + summary_table(verdicts), file=stream)
    md, page = write_report(verdicts, out, mode)
    print(f"\nreport: {md} and {page}", file=stream)
    return verdicts


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="minutes on 2 cores (default)")
    g.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="the statistical power each claim deserves (long)")
    parser.set_defaults(mode="quick")
    parser.add_argument("--out", type=Path, default=Path("check-results"),
                        help="directory for <id>.json, <id>.png, report.md and report.html")
    parser.add_argument("--seed", type=int_argument("seed", low=0), default=20261123,
                        help="root seed (an integer >= 0, as numpy's SeedSequence needs)")
    parser.add_argument("--backend", default="numpy", choices=("numpy", "numba", "cupy"))
    parser.add_argument("--problem", dest="problems", action="append", default=None,
                        metavar="NAME", help="a registered problem (refbilevel list; "
                        "repeatable) for the problem-generic checks U1-U5, X1, X2; default: "
                        "their own instances plus every registered problem they apply to")
    parser.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                        default=None, help="no progress bars on stderr (they are on by "
                        "default, off inside pytest; env REFBILEVEL_PROGRESS=0/1 overrides)")


def main_for_script(module_name: str, argv: list[str] | None = None) -> int:
    """Entry point of ``python theory_checks/<name>.py``: run that one check."""
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(description=f"{module.CLAIM.id}: {module.CLAIM.claim}")
    add_check_arguments(parser)
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help="import a module that registers problems")
    args = parser.parse_args(argv)
    from refbilevel.problems import import_problem_modules

    import_problem_modules(args.imports)
    verdicts = run_checks([module.CLAIM.id], mode=args.mode, seed=args.seed,
                          backend=args.backend, out=args.out, progress=args.progress,
                          problems=args.problems)
    return 0 if all(v.ok for v in verdicts) else 1
