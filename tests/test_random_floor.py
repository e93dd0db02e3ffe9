"""benchmarks/random_floor.py: every way of drawing the floor's numbers draws exactly the
numbers a kernel would (same count from the same stream), so the floor is a like-for-like
lower bound for the kernels' time."""

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from random_floor import CHUNK, floor_methods, normal_floor  # noqa: E402


@pytest.mark.parametrize("n", [1, 1000, CHUNK + 7])
def test_every_floor_method_consumes_the_same_stream(n):
    nxt = {}
    for name in ("bulk", "chunked", "numba"):
        rng = np.random.default_rng(42)
        floor_methods(rng, n)[name]()
        nxt[name] = rng.standard_normal(3)
    ref = np.random.default_rng(42)
    ref.standard_normal(n)
    expected = ref.standard_normal(3)
    for name, v in nxt.items():
        np.testing.assert_array_equal(v, expected, err_msg=name)


def test_normal_floor_names_its_method():
    seconds, how = normal_floor(np.random.default_rng(0), 10_000, repeats=1)
    assert seconds > 0 and how in ("bulk", "chunked", "numba")
