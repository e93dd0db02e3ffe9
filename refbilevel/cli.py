"""The ``refbilevel`` command line: ``check`` (theory checks), ``claims`` (the claims ledger
with the latest verdicts), ``run`` (one algorithm, trace to a file), ``plot`` (curves of saved
traces), ``compare-backends`` (parity and timing table), ``list``, ``sweep``, ``bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refbilevel.checks import runner
from refbilevel.validation import int_argument


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        verdicts = runner.run_checks(args.ids or None, mode=args.mode, seed=args.seed,
                                     backend=args.backend, out=args.out,
                                     progress=args.progress, problems=args.problems)
    except ValueError as exc:
        print(f"refbilevel check: {exc}", file=sys.stderr)
        return 2
    failed = [v.id for v in verdicts if not v.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(verdicts)} checks passed, every negative control rejected")
    return 0


# a check's latest verdict as `refbilevel check` prints it (a pre-registered counterexample is a
# passing check; which entry it refutes is the entry's own outcome)
STATUS_WORDS = {"verified": "PASS", "counterexample": "PASS (counterexample)", "failed": "FAIL",
                "error": "ERROR"}


def _coverage_text(c: dict) -> str:
    part = f" {c['part']}" if c["part"] != "all" else ""
    latest = f" [{STATUS_WORDS.get(c['latest'], c['latest'])}]" if c["latest"] else ""
    return f"{c['check']}{part}{latest}"


def _cmd_claims(args: argparse.Namespace) -> int:
    """The claims ledger (docs/claims.rst) with the latest verdicts found under ``--results``."""
    import json

    from refbilevel import claims_ledger as ledger

    verdicts = ledger.latest_verdicts(args.results)
    records = ledger.as_records(verdicts)
    if args.json:
        print(json.dumps(records, indent=2, ensure_ascii=False))
        return 0
    source = (f"latest check verdicts (in brackets) from {args.results}" if verdicts
              else f"no verdicts under {args.results} (run `refbilevel check` first)")
    print(f"claims ledger: {len(records)} statements; {source}")
    for paper in ledger.PAPERS:
        print(f"\n{paper}")
        for r in records:
            if r["paper"] != paper:
                continue
            checks = ", ".join(_coverage_text(c) for c in r["checks"])
            outcome = f" ({r['outcome']})" if r["outcome"] else ""
            print(f"  {r['status'] + outcome:24s} {r['number']}: {r['statement']}")
            if checks:
                print(f"  {'':24s}   checks: {checks}")
    print("\n| paper | " + " | ".join(ledger.STATUSES) + " |")
    print("|---|" + "---|" * len(ledger.STATUSES))
    for paper, row in ledger.counts().items():
        print(f"| {paper} | " + " | ".join(str(row[s]) for s in ledger.STATUSES) + " |")
    return 0


def _problem_doc(name: str) -> str:
    from refbilevel.problems.registry import problem_entry

    try:
        return problem_entry(name).description
    except (ImportError, AttributeError) as exc:
        return f"(unavailable: {exc})"


def _problem_parameters(name: str) -> dict:
    """Constructor parameters and their defaults (JSON-able; repr where not)."""
    import inspect
    import json

    from refbilevel.problems import problem_class

    try:
        sig = inspect.signature(problem_class(name))
    except (ImportError, AttributeError, TypeError, ValueError):
        return {}
    out = {}
    for pname, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        try:
            json.dumps(default)
        except TypeError:
            default = repr(default)
        out[pname] = {"default": default, "required": p.default is p.empty}
    return out


def list_json() -> dict:
    """What ``refbilevel list --json`` prints (for scripts)."""
    from refbilevel.backends import implementations
    from refbilevel.problems import registered
    from refbilevel.solver_record import solver_record

    algs = implementations("algorithm")
    return {
        "problems": [{"name": e.name, "description": _problem_doc(e.name),
                      "parameters": _problem_parameters(e.name), "origin": e.origin}
                     for e in registered()],
        "algorithms": [{"name": n, "backends": list(b),
                        "assumptions": [a.text for a in solver_record(n).assumptions],
                        "options": list(solver_record(n).options)}
                       for n, b in algs.items()],
        "estimators": [{"name": n, "backends": list(b)}
                       for n, b in implementations("estimator").items()],
        "checks": [{"id": cid, "claim": mod.CLAIM.claim, "source": mod.CLAIM.source}
                   for cid, mod in runner.discover().items()],
    }


def _cmd_list(args: argparse.Namespace) -> int:
    from refbilevel.backends import backend_status, implementations
    from refbilevel.problems import registered

    if args.json:
        import json

        print(json.dumps(list_json(), indent=1, default=str))
        return 0
    print("problems:")
    for entry in registered():
        try:
            doc, params = entry.description, ", ".join(map(str, entry.parameters))
        except (ImportError, AttributeError) as exc:
            doc, params = f"(unavailable: {exc})", ""
        origin = "" if entry.origin == "builtin" else f" [{entry.origin}]"
        print(f"  {entry.name:32s} {doc}{origin}")
        if params:
            print(f"  {'':32s}   parameters: {params}")
    for category in ("estimator", "algorithm"):
        print(f"{category}s:")
        impls = implementations(category)
        if not impls:
            print("  (none yet)")
        for name, backends in impls.items():
            print(f"  {name:32s} backends: {', '.join(backends)}")
    print("backends:")
    for b in ("numpy", "numba", "cupy"):
        ok, reason = backend_status(b)
        print(f"  {b:8s} {'available' if ok else 'unavailable'}: {reason}")
    print("checks:")
    for cid, mod in runner.discover().items():
        print(f"  {cid:4s} {mod.CLAIM.claim}  [{mod.CLAIM.source}]")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from refbilevel.sweeps import load_spec, run_sweep

    try:
        spec = load_spec(args.spec)
    except ValueError as exc:
        print(f"refbilevel sweep: bad spec {args.spec}: {exc}", file=sys.stderr)
        return 2
    try:
        rows = run_sweep(spec.fn, spec.cells, args.out, dask_address=args.dask,
                         max_workers=args.workers, imports=tuple(args.imports))
    except ValueError as exc:  # the cluster cannot be reached or cannot import the cell
        print(f"refbilevel sweep: {exc}", file=sys.stderr)
        return 2
    print(f"{len(rows)} cells in {args.out}")
    if args.table is not None:
        from refbilevel.sweep_cells import sweep_table, write_table

        try:
            path = write_table(sweep_table(rows), args.table)
        except ValueError as exc:
            print(f"refbilevel sweep: {exc}", file=sys.stderr)
            return 2
        print(f"tidy table in {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from refbilevel.algorithms.trace import save_trace
    from refbilevel.runs import RunSpec, execute, parse_assignment

    try:
        spec = RunSpec(
            algorithm=args.algorithm, problem=args.problem,
            problem_params=dict(parse_assignment(a) for a in args.problem_param),
            options=dict(parse_assignment(a) for a in args.set), T=args.T,
            replicas=args.replicas, seed=args.seed, noise=args.noise, batch=args.batch,
            mode=args.mode,
            x0=_number_or_list(args.x0), y0=_number_or_list(args.y0),
            record_every=args.record_every)
        trace = execute(spec, args.backend)
    except (ValueError, LookupError, RuntimeError) as exc:
        # ValueError: bad parameter; LookupError: not on this backend; RuntimeError: the
        # backend cannot run here (each message names the parameter or the reason)
        print(f"refbilevel run: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / (f"{spec.algorithm}-{spec.problem}-seed{spec.seed}-"
                                      f"{args.backend}.npz")
    save_trace(trace, out)
    print(trace.summary())
    print(f"trace written to {out}")
    return 1 if trace.diverged.any() else 0


def _cmd_matrix(args: argparse.Namespace) -> int:
    from refbilevel.backends import backend_status
    from refbilevel.matrix import format_matrix, run_matrix

    try:
        ok, reason = backend_status(args.backend)
        if not ok:
            raise ValueError(f"backend {args.backend!r} is unavailable: {reason}")
        cells = run_matrix(args.backend, methods=args.methods or None,
                           problems=args.problems or None, replicas=args.replicas,
                           seed=args.seed, cell_seconds=args.cell_seconds,
                           progress=lambda c: print(f"{c.method} x {c.problem}: {c.text()} "
                                                    f"({c.seconds:.1f}s)", file=sys.stderr,
                                                    flush=True))
    except ValueError as exc:
        print(f"refbilevel matrix: {exc}", file=sys.stderr)
        return 2
    print(f"||∇φ(x_T)||/||∇φ(x_0)|| (median over {args.replicas} replica(s)), noise 0, "
          f"default parameters and T, backend {args.backend}; fails above 1e-2")
    print(format_matrix(cells))
    failed = [c for c in cells if c.failed]
    if failed:
        print(f"{len(failed)} failing cell(s): "
              + ", ".join(f"{c.method} x {c.problem}" for c in failed), file=sys.stderr)
        return 1
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from refbilevel.algorithms.trace import Trace, load_trace
    from refbilevel.trace_plots import save_plot

    try:
        if args.label and len(args.label) != len(args.traces):
            raise ValueError(f"--label must be given once per trace ({len(args.traces)}), "
                             f"got {len(args.label)}")
        traces = []
        for path in args.traces:
            try:
                tr = load_trace(path)
            except OSError as exc:
                raise ValueError(f"cannot read trace {str(path)!r}: {exc}") from None
            if not isinstance(tr, Trace):
                raise ValueError(f"{str(path)!r} holds a {type(tr).__name__}, not an algorithm "
                                 "Trace with ||∇phi|| and ||y - y*|| records")
            traces.append(tr)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_plot(traces, str(args.out), labels=args.label or None)
    except ValueError as exc:
        print(f"refbilevel plot: {exc}", file=sys.stderr)
        return 2
    print(f"figure written to {args.out}")
    return 0


def _number_or_list(text: str | None) -> float | list[float] | None:
    if text is None:
        return None
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        msg = f"x0/y0 must be a number or comma-separated numbers, got {text!r}"
        raise ValueError(msg) from None
    return parts[0] if len(parts) == 1 else parts


def _cmd_compare_backends(args: argparse.Namespace) -> int:
    from refbilevel.backend_comparison import comparable_algorithms, compare, format_table
    from refbilevel.backends import backend_status

    backends = args.backends.split(",")
    try:
        for b in backends:
            ok, reason = backend_status(b)
            if not ok:
                raise ValueError(f"backend {b!r} is unavailable: {reason}")
        if len(backends) < 2:
            raise ValueError("--backends needs at least two, e.g. numpy,numba")
        names = args.algorithms or comparable_algorithms(backends)
        rows = []
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows += compare(name, backends, T=args.T, replicas=args.replicas, seed=args.seed)
    except (ValueError, LookupError) as exc:
        print(f"refbilevel compare-backends: {exc}", file=sys.stderr)
        return 2
    print(f"same seed on every backend; T = {args.T} (UniBiO: min(T, 500)), "
          f"R = {args.replicas} replicas; setups: refbilevel.backend_comparison.setup")
    print(format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


BENCHES = {"estimators": ("bench_estimators.py", "bench_sid.py"),
           "algorithms": ("bench_unibio.py", "bench_baselines.py", "bench_replicas.py"),
           "oracles": ("bench_oracles.py",)}


def _cmd_bench(args: argparse.Namespace, folder: Path | None = None) -> int:
    """Run the benchmark scripts of the checkout's benchmarks/ folder (they are not part of
    the installed package: benchmarks time a checkout, as the README says), each in its own
    process as ``python benchmarks/<script>``: the scripts end with ``sys.exit`` (run in
    this process, the first one's exit ended the group, and bench_replicas.py never ran
    under ``refbilevel bench algorithms``), two of them set their thread counts before
    NumPy loads BLAS, and one benchmark's state cannot slow the next. Exit status 1 when
    a script fails; every script of the group runs either way."""
    import subprocess

    folder = folder or Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = BENCHES[args.which]
    missing = [s for s in scripts if not (folder / s).exists()]
    if missing:
        print(f"refbilevel bench: {', '.join(missing)} not found under {folder}; run from an "
              "editable install of a refbilevel checkout (pip install -e .)", file=sys.stderr)
        return 2
    failed = []
    for s in scripts:
        print(f"== {s}", flush=True)
        rc = subprocess.run([sys.executable, str(folder / s)], check=False).returncode
        if rc != 0:
            failed.append(f"{s} (exit status {rc})")
    if failed:
        print(f"refbilevel bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _run_description() -> str:
    from refbilevel import runs

    return (runs.__doc__ or "").split("\n\n", 1)[1]


IMPORT_HELP = ("import MODULE first: a module that registers problems with "
               "refbilevel.problems.register (repeatable; before or after the command)")


def _add_import_option(parser: argparse.ArgumentParser, dest: str) -> None:
    parser.add_argument("--import", dest=dest, action="append", default=[], metavar="MODULE",
                        help=IMPORT_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refbilevel", description=__doc__)
    # on the top-level parser (refbilevel --import M run ...) and on every command
    # (refbilevel run --import M ...): a sub-parser's default would overwrite the top-level
    # value of a shared dest, so the two are collected apart and joined in main()
    _add_import_option(parser, "imports_before")
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="run theory checks (docs/checks.rst)")
    p_check.add_argument("ids", nargs="*", help="claim ids (U1, U2, ...); default: all")
    runner.add_check_arguments(p_check)
    p_check.set_defaults(func=_cmd_check)
    p_claims = sub.add_parser("claims", help="the claims ledger with the latest verdicts "
                              "(docs/claims.rst)")
    p_claims.add_argument("--json", action="store_true", help="a JSON list of the entries")
    p_claims.add_argument("--results", type=Path, default=Path("check-results"),
                          help="output folder of the last `refbilevel check` (default "
                          "check-results)")
    p_claims.set_defaults(func=_cmd_claims)
    p_list = sub.add_parser("list", help="list problems, estimators, algorithms, backends, checks")
    p_list.add_argument("--json", action="store_true",
                        help="one JSON object: problems, algorithms, estimators, checks")
    p_list.set_defaults(func=_cmd_list)
    p_mat = sub.add_parser("matrix", help="every (method, problem) pair on the default "
                           "instances, deterministic, default parameters: ||∇φ|| ratio table")
    p_mat.add_argument("--backend", default="numpy", help="numpy, numba or cupy")
    p_mat.add_argument("--methods", nargs="*", default=[], help="default: all")
    p_mat.add_argument("--problems", nargs="*", default=[], help="default: all")
    p_mat.add_argument("--replicas", type=int, default=1)
    p_mat.add_argument("--seed", type=int, default=0)
    p_mat.add_argument("--cell-seconds", type=float, default=None,
                       help="run each cell in a child process killed after this many "
                            "seconds (reported as FAILED: over the budget); default: no "
                            "budget, in this process")
    p_mat.set_defaults(func=_cmd_matrix)
    p_sweep = sub.add_parser("sweep", help="run a parameter grid; resumes where it stopped")
    p_sweep.add_argument("spec", type=Path,
                         help='JSON: {"cell": "module:function", "grid": {axis: [values]}}')
    p_sweep.add_argument("--out", type=Path, default=Path("sweep-results/results.jsonl"))
    p_sweep.add_argument("--dask", metavar="ADDRESS", default=None,
                         help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p_sweep.add_argument("--workers", type=int_argument("workers", low=1), default=None,
                         help="local worker processes (>= 1; default: the CPU count)")
    p_sweep.add_argument("--table", type=Path, default=None,
                         help="also write one tidy table (.csv or .parquet): the cells' "
                              "parameters and values, one row per record × replica for the "
                              "built-in cell refbilevel.sweep_cells:algorithm_run")
    p_sweep.set_defaults(func=_cmd_sweep)
    p_run = sub.add_parser("run", help="run one algorithm on one problem; write its trace",
                           description=_run_description(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p_run.add_argument("algorithm", help="algorithm name (refbilevel list)")
    p_run.add_argument("--problem", required=True, help="problem name (refbilevel list)")
    p_run.add_argument("--problem-param", action="append", default=[], metavar="NAME=VALUE",
                       help="problem constructor argument, e.g. p=6 (repeatable)")
    p_run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="algorithm option, e.g. step_size=0.05 (repeatable)")
    p_run.add_argument("--backend", default="numpy", help="numpy, numba or cupy")
    p_run.add_argument("--T", type=int, default=None, help="iterations (default: the "
                       "method's for the mode, from the problem's constants)")
    p_run.add_argument("--replicas", type=int, default=1)
    p_run.add_argument("--seed", type=int, default=0)
    p_run.add_argument("--noise", type=float, default=None,
                       help="Gaussian oracle standard deviation (every oracle kind; default "
                       "0.1; 0: exact oracles, full batch, exact contraction maps)")
    p_run.add_argument("--batch", type=int, default=None,
                       help="finite-sum minibatch size (default 64, full batch at noise 0)")
    p_run.add_argument("--mode", default="default", choices=("default", "theory", "paper"),
                       help="parameters: from the problem's constants (default), the "
                       "theorem's schedule (theory) or the authors' values (paper)")
    p_run.add_argument("--x0", default=None, help="start: a number or comma-separated list")
    p_run.add_argument("--y0", default=None, help="lower-level start (default 0)")
    p_run.add_argument("--record-every", type=int, default=1)
    p_run.add_argument("--out", type=Path, default=None,
                       help="trace file (.npz; default runs/ALGO-PROBLEM-seedS-BACKEND.npz)")
    p_run.set_defaults(func=_cmd_run)
    p_plot = sub.add_parser("plot", help="||∇phi|| and ||y - y*|| of saved traces against "
                            "iterations and oracle calls (median and seed band)")
    p_plot.add_argument("traces", nargs="+", type=Path, help="trace files (.npz) written by "
                        "refbilevel run or Trace.save; several are overlaid")
    p_plot.add_argument("--out", type=Path, default=Path("fig.png"),
                        help="figure file (.png, .pdf, .svg; default fig.png)")
    p_plot.add_argument("--label", action="append", default=[],
                        help="legend label, once per trace in order (default: algorithm, "
                             "backend, seed)")
    p_plot.set_defaults(func=_cmd_plot)
    p_cmp = sub.add_parser("compare-backends", help="parity and timing table, same seed on "
                           "every backend")
    p_cmp.add_argument("algorithms", nargs="*", help="default: every algorithm on all of "
                       "--backends")
    p_cmp.add_argument("--backends", default="numpy,numba",
                       help="comma-separated; the first is the reference")
    p_cmp.add_argument("--T", type=int, default=1000)
    p_cmp.add_argument("--replicas", type=int, default=4)
    p_cmp.add_argument("--seed", type=int, default=0)
    p_cmp.set_defaults(func=_cmd_compare_backends)
    p_bench = sub.add_parser("bench", help="timing tables (ratios from one run)")
    p_bench.add_argument("which", choices=sorted(BENCHES))
    p_bench.set_defaults(func=_cmd_bench)
    for command in sub.choices.values():
        _add_import_option(command, "imports_after")
    return parser


def main(argv: list[str] | None = None) -> int:
    from refbilevel.problems import import_problem_modules

    args = build_parser().parse_args(argv)
    args.imports = [*args.imports_before, *args.imports_after]
    try:
        import_problem_modules(args.imports)
    except ValueError as exc:
        print(f"refbilevel: {exc}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
