"""The special-function counts of benchmarks/bench_oracles.py (``LIBM``, the ``x floor+libm``
ratio of `refbilevel bench oracles`) are those of the NumPy reference: each primitive of each
benchmarked instance is evaluated at one point with np.sin, np.cos, np.tanh and np.sinh
counting their elements. A family missing from the table, a misspelled primitive or a wrong
count would otherwise change the ratio silently."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_oracles  # noqa: E402

from refbilevel.backends.numba_problems import family_of  # noqa: E402

#: the Numba primitive -> the NumPy method it mirrors (v has the primitive's input size)
METHODS = {"grad_x_f": "grad_x_f", "grad_y_f": "grad_y_f", "grad_x_g": "grad_x_g",
           "grad_y_g": "grad_y_g", "hvp": "hvp_yy_g", "jvp": "jvp_xy_g"}


def _counted(monkeypatch, P, method, x, y, v):
    counts = dict.fromkeys(bench_oracles.LIBM_FUNCTIONS, 0)
    for name in counts:
        ufunc = getattr(np, name)

        def counting(a, *args, _u=ufunc, _n=name, **kw):
            counts[_n] += np.size(a)
            return _u(a, *args, **kw)
        monkeypatch.setattr(np, name, counting)
    args = (x, y) if v is None else (x, y, v)
    getattr(P, method)(*args)
    monkeypatch.undo()
    return {k: n for k, n in counts.items() if n}


@pytest.mark.parametrize("P", [P for P, _ in bench_oracles._problems(full=False)],
                         ids=lambda P: f"{family_of(P).name}-{P.d_y}")
def test_libm_table_counts_the_reference_evaluations(monkeypatch, P):
    x, y = (a[0] for a in bench_oracles._start(P))
    table = bench_oracles.LIBM.get(family_of(P).name, lambda P: {})(P)
    assert set(table) <= set(METHODS)
    for prim, method in METHODS.items():
        v = y if prim in ("hvp", "jvp") else None
        assert _counted(monkeypatch, P, method, x, y, v) == table.get(prim, {}), prim


def test_libm_seconds_times_every_function_of_the_table():
    t = bench_oracles.libm_seconds(n=1000, repeat=2)
    assert set(t) == set(bench_oracles.LIBM_FUNCTIONS)
    assert all(0.0 < s < 1e-5 for s in t.values())
