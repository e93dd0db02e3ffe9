"""FMBO, Numba backend (docs/fdehbo.rst §4): the FdeHBO kernel of
:mod:`refbilevel.algorithms.fdehbo_numba` with the exact HVP/JVP oracles in place of the
finite differences (same random-number order as :func:`refbilevel.algorithms.fmbo.fmbo`)."""

from __future__ import annotations

from refbilevel.algorithms.fdehbo import StormSchedule
from refbilevel.algorithms.fdehbo_numba import storm_bilevel_numba
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle

__all__ = ["fmbo_numba"]


@register("algorithm", "fmbo", "numba")
def fmbo_numba(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *, T: int,
               schedule: StormSchedule | None = None, r_v: float | None = None, v0=None,
               record_every: int = 1, seed: int | None = None,
               diagnostics: bool = False) -> Trace:
    """FMBO, Numba backend (see :func:`~refbilevel.algorithms.fdehbo_numba.storm_bilevel_numba`)."""
    return storm_bilevel_numba(oracle, x0, y0, T=T, schedule=schedule or StormSchedule.tuned(),
                               variant="fmbo", r_v=r_v, v0=v0, record_every=record_every,
                               seed=seed, diagnostics=diagnostics)
