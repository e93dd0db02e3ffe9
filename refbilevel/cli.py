"""The ``refbilevel`` command line: ``check`` (theory checks), ``list``, ``sweep``, ``bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from refbilevel.checks import runner


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        verdicts = runner.run_checks(args.ids or None, mode=args.mode, seed=args.seed,
                                     backend=args.backend, out=args.out)
    except ValueError as exc:
        print(f"refbilevel check: {exc}", file=sys.stderr)
        return 2
    failed = [v.id for v in verdicts if not v.ok]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(verdicts)} checks passed, every negative control rejected")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from refbilevel.backends import backend_status, implementations
    from refbilevel.problems import problem_class, problem_names

    print("problems:")
    for name in problem_names():
        try:
            doc = (problem_class(name).__doc__ or "").strip().splitlines()[0]
        except (ImportError, AttributeError) as exc:
            doc = f"(unavailable: {exc})"
        print(f"  {name:32s} {doc}")
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
    import json

    from refbilevel.sweeps import grid, resolve_cell_function, run_sweep

    try:
        spec = json.loads(args.spec.read_text())
        fn = resolve_cell_function(spec["cell"])
        cells = grid(**spec["grid"])
    except (OSError, KeyError, ValueError, ImportError) as exc:
        print(f"refbilevel sweep: bad spec {args.spec}: {exc!r} (expected JSON "
              '{"cell": "module:function", "grid": {"axis": [values, ...]}})', file=sys.stderr)
        return 2
    rows = run_sweep(fn, cells, args.out, dask_address=args.dask, max_workers=args.workers)
    print(f"{len(rows)} cells in {args.out}")
    return 0


BENCHES = {"estimators": ("bench_estimators.py", "bench_sid.py"),
           "algorithms": ("bench_unibio.py", "bench_baselines.py")}


def _cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark scripts of the checkout's benchmarks/ folder (they are not part of
    the installed package: benchmarks time a checkout, as the README says)."""
    import runpy

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = BENCHES[args.which]
    missing = [s for s in scripts if not (folder / s).exists()]
    if missing:
        print(f"refbilevel bench: {', '.join(missing)} not found under {folder}; run from an "
              "editable install of a refbilevel checkout (pip install -e .)", file=sys.stderr)
        return 2
    for s in scripts:
        print(f"== {s}", flush=True)
        argv, sys.argv = sys.argv, [str(folder / s)]
        try:
            runpy.run_path(str(folder / s), run_name="__main__")
        finally:
            sys.argv = argv
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="refbilevel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_check = sub.add_parser("check", help="run theory checks (spec claims.md)")
    p_check.add_argument("ids", nargs="*", help="claim ids (U1, U2, ...); default: all")
    runner.add_check_arguments(p_check)
    p_check.set_defaults(func=_cmd_check)
    p_list = sub.add_parser("list", help="list problems, estimators, algorithms, backends, checks")
    p_list.set_defaults(func=_cmd_list)
    p_sweep = sub.add_parser("sweep", help="run a parameter grid; resumes where it stopped")
    p_sweep.add_argument("spec", type=Path,
                         help='JSON: {"cell": "module:function", "grid": {axis: [values]}}')
    p_sweep.add_argument("--out", type=Path, default=Path("sweep-results/results.jsonl"))
    p_sweep.add_argument("--dask", metavar="ADDRESS", default=None,
                         help="Dask scheduler address, e.g. tcp://10.0.0.1:8786")
    p_sweep.add_argument("--workers", type=int, default=None, help="local worker processes")
    p_sweep.set_defaults(func=_cmd_sweep)
    p_bench = sub.add_parser("bench", help="timing tables (ratios from one run)")
    p_bench.add_argument("which", choices=sorted(BENCHES))
    p_bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
