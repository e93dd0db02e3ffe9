"""FMBO: fully single-loop momentum bilevel method (Yang, Xiao, Ji, NeurIPS 2023,
Algorithm 2; docs/fdehbo.rst §4), NumPy reference.

Identical to FdeHBO (:mod:`refbilevel.algorithms.fdehbo`) except that the exact stochastic
second-order products replace the finite differences (eqs. (12), (13)):

    h^R_t = η^R_t ∇_v R(·_t;ψ_t) + (1-η^R_t)(h^R_{t-1} + ∇_v R(·_t;ψ_t) − ∇_v R(·_{t-1};ψ_t))
    h^f_t = η^f_t ∇̄f(·_t;ξ̄_t) + (1-η^f_t)(h^f_{t-1} + ∇̄f(·_t;ξ̄_t) − ∇̄f(·_{t-1};ξ̄_t))

with ·_t = (x_t, y_t, v_t).

(the printed (12) has h^g_{t-1} in the momentum term: a typo for h^R_{t-1}, docs/fdehbo.rst §4).
Per iteration t ≥ 1: 2 ∇_y G, 2 HVP, 2 JVP, 2 ∇_y F, 2 ∇_x F and no Neumann/CG inner loop.
For g quadratic in y FdeHBO and FMBO give the same iterates on the same samples, up to the
finite-difference rounding eps/δ (docs/fdehbo.rst §4 remark, §10.1).
"""

from __future__ import annotations

from refbilevel.algorithms.fdehbo import StormSchedule, storm_bilevel, storm_record
from refbilevel.algorithms.trace import Trace
from refbilevel.backends import register
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle

__all__ = ["fmbo"]


@register("algorithm", "fmbo", "numpy")
def fmbo(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *, T: int,
         schedule: StormSchedule | None = None,
         r_v: float | None = None, v0=None, record_every: int = 1,
         seed: int | None = None, diagnostics: bool = False) -> Trace:
    """FMBO (Algorithm 2; docs/fdehbo.rst §4). ``schedule`` defaults to
    :meth:`StormSchedule.tuned`; see :func:`~refbilevel.algorithms.fdehbo.storm_bilevel`
    (``diagnostics``: the estimators' exact errors, claim F4)."""
    return storm_bilevel(oracle, x0, y0, T=T, schedule=schedule or StormSchedule.tuned(),
                         variant="fmbo", r_v=r_v, v0=v0, record_every=record_every,
                         seed=seed, diagnostics=diagnostics)


SOLVER = storm_record("fmbo", fmbo, "docs/fdehbo.rst §4")
