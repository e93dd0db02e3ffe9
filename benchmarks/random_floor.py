"""The random-number floor of the benchmarks: the least time in which this machine can draw
a given count of standard normals from a NumPy ``Generator`` (PCG64, ziggurat), over the
three ways a program can get them. A kernel that draws the same numbers cannot beat it, so
``kernel time / floor`` says how much of a kernel's time is not random-number generation.

- ``bulk``: one ``Generator.standard_normal(n)`` call. For large n this also allocates and
  first-touches n doubles (page faults): measured at 29 ns per number for 2e7 numbers on
  the 2-core development machine, against 17 ns in chunks. It overstates the floor there.
- ``chunked``: ``standard_normal(out=buffer)`` into one reused 65536-double buffer.
- ``numba``: a compiled loop of scalar ``rng.standard_normal()`` calls, the way the kernels
  draw (14 ns per number on the same machine).

The floor is the minimum of the three; the benchmarks print which one it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from numba import njit

CHUNK = 1 << 16


@njit(cache=True)
def _scalar_draws(rng, n):
    acc = 0.0
    for _ in range(n):
        acc += rng.standard_normal()
    return acc


def floor_methods(rng: np.random.Generator, n: int) -> dict[str, Callable[[], object]]:
    """The three ways to draw n standard normals from ``rng``, as zero-argument callables."""
    buf = np.empty(min(n, CHUNK))

    def chunked():
        left = n
        while left > 0:
            m = min(left, buf.size)
            rng.standard_normal(out=buf[:m])
            left -= m

    _scalar_draws(np.random.default_rng(0), 1)  # compile or cache-load, outside timings
    return {"bulk": lambda: rng.standard_normal(n), "chunked": chunked,
            "numba": lambda: _scalar_draws(rng, n)}


def normal_floor(rng: np.random.Generator, n: int, repeats: int = 3) -> tuple[float, str]:
    """(seconds, method): the fastest of :func:`floor_methods`, best of ``repeats`` each."""
    best = (float("inf"), "")
    for name, fn in floor_methods(rng, n).items():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - t0, name))
    return best
