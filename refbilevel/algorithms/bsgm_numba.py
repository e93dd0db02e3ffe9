"""BSGM, Numba backend (docs/sid_bsgm.rst §5): the reference loop of
:mod:`refbilevel.algorithms.bsgm` with every SID call made by SID's Numba kernel
(:mod:`refbilevel.estimators.sid_numba`).

Why the outer loop stays in Python: one outer iteration is one SID call (t_s + k_s + 2J_s
oracle steps, all inside the compiled kernel) plus a projection and the exact diagnostics
(||G_α||², ||Δ_s||², f) for the record; the Python part is O(1) NumPy calls per outer
iteration, negligible once t_s ≥ a few dozen. The SID kernel draws the same random numbers
in the same order as the NumPy SID, so both backends give the same path to rounding (X4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refbilevel.algorithms.bsgm import BSGMTrace, run_bsgm
from refbilevel.backends import register
from refbilevel.oracles.contraction import ContractionOracle

__all__ = ["bsgm_numba"]


@register("algorithm", "bsgm", "numba")
def bsgm_numba(oracle: ContractionOracle, lam0, T: int, *, alpha: float | None = None,
               schedule: str | Callable = "finite", steps: Any = None, constraint=None,
               w0=None, replicas: int | None = None, seed: int | None = None) -> BSGMTrace:
    """BSGM with the Numba SID kernel; same arguments and result as
    :func:`refbilevel.algorithms.bsgm.bsgm`."""
    return run_bsgm(oracle, lam0, T, alpha=alpha, schedule=schedule, steps=steps,
                    constraint=constraint, w0=w0, replicas=replicas, seed=seed,
                    sid_backend="numba")
