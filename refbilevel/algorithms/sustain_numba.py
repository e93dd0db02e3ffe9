"""SUSTAIN on the Numba backend (docs/baselines.rst §14): the MRBO/SUSTAIN kernel of
:mod:`refbilevel.algorithms.mrbo_numba` with the randomized Neumann series; same arguments,
random numbers and Trace as :func:`refbilevel.algorithms.sustain.run_sustain`."""

from __future__ import annotations

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.mrbo_numba import run_recursive_momentum_numba
from refbilevel.algorithms.sustain import sustain_setup
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register


@register("algorithm", "sustain", "numba")
def run_sustain_numba(oracle, x0, y0, *, T: int, step_size: float = 0.1,
                      outer_ratio: float = 1.0, offset: float = 0.0, momentum_x: float = 0.5,
                      momentum_y: float = 0.5, neumann_step: float = 0.1, n_hia_steps: int = 10,
                      n_hia_draws: int = 1, record_every: int = 1,
                      seed: int | None = None) -> Trace:
    """Numba twin of :func:`refbilevel.algorithms.sustain.run_sustain`."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    series, sched, params = sustain_setup(T, step_size, outer_ratio, offset, momentum_x,
                                          momentum_y, neumann_step, n_hia_steps, n_hia_draws)
    return run_recursive_momentum_numba(oracle, x0, y0, T=T, series=series, sched=sched,
                                        params=params, name="sustain",
                                        record_every=record_every, seed=seed)
