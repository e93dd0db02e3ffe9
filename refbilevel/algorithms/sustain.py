"""SUSTAIN — single-timescale double-momentum stochastic approximation (Khanduri, Zeng, Hong,
Wai, Wang, Yang, NeurIPS 2021; docs/baselines.rst §14). NumPy reference, batched over replicas,
"+z" convention (§0.1).

The loop of MRBO (:mod:`refbilevel.algorithms.mrbo`: STORM trackers for the lower-level
gradient and the hypergradient, coupled pairs, simultaneous steps, plain estimators at the
first iteration) with Ghadimi–Wang's randomized Neumann estimator RN_N in ĥ
(docs/baselines.rst §11, §14):

    h̄(x, y; ξ̄) = ∇_x F(ξ) − ∇²_xy G(ζ_0) · N η Π_{i=1}^{p} (I − η ∇²_yy G(ζ_i)) · ∇_y F(ξ),
    p ~ U{0, …, N − 1},

one p and the same ζ_i at z_t and z_{t−1} (a coupled pair). With ``n_hia_draws`` = B > 1
(the "default" mode; docs/baselines.rst §1 "Averaged draws") the estimate is the average of
those of p_1..p_B on one HVP chain, the same draws and samples at both points. The paper
moves then estimates; this loop estimates then moves, the same sequence after re-indexing
(§14). Single timescale: the y step s η_t and the x step (s/r) η_t share
η_t = ((m + 1)/(m + t))^{1/3} (the paper's α_t = κ̄/(w + t)^{1/3}, β_t = c_β α_t, normalized
to η_1 = 1), momentum weights η^f_{t+1} = c_f α_t², η^g_{t+1} = c_g α_t² as
``momentum_x``·η_t², ``momentum_y``·η_t².

Choices where §14 says "recalled" or NOT RECOVERED (docs/baselines.rst §14 "Reference
choices"): the PAPER form (plain estimators at t = 1, not the benchmark's zero-memory start);
the Neumann step is an option (the paper's 1/L_g; the benchmark ties it to the LL step s);
the JVP sample ζ_0 is fresh; no ``mode="theory"`` (constants NOT RECOVERED).

Oracle calls per iteration (§14 PAPER = CODE, audit-corrected): t ≥ 2: ∇_y G 2, ∇_y F 2,
∇_x F 2, JVP 2, HVP 2p_t (p_t the realized chain length, max_b of the draws, max over the
replicas of a batched run, exactly p_t for R = 1; E p_t = (N − 1)/2 for one draw, → N − 1
for many); t = 1 half. The realized p_t are in ``trace.extra["hia_p"]`` (shape (T, R)).
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.coupled_hypergradient import NeumannSeries
from refbilevel.algorithms.mrbo import (
    momentum_record,
    momentum_schedule,
    recursive_momentum_bilevel,
    recursive_momentum_counts,
)
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register


def sustain_series(neumann_step, n_hia_steps, n_hia_draws=1) -> NeumannSeries:
    """RN_N with step ``neumann_step``, averaged over ``n_hia_draws`` lengths (docs/baselines.rst
    §1, §14)."""
    return NeumannSeries("randomized", n_hia_steps, neumann_step, n_hia_draws)


def sustain_setup(T, step_size, outer_ratio, offset, momentum_x, momentum_y, neumann_step,
                  n_hia_steps, n_hia_draws):
    """The validated (series, schedule, params record) of a SUSTAIN run, shared by the NumPy
    reference and the Numba twin."""
    series = sustain_series(neumann_step, n_hia_steps, n_hia_draws)
    sched, params = momentum_schedule(T, step_size, outer_ratio, offset, momentum_x,
                                      momentum_y)
    params.update(neumann_step=series.eta, n_hia_steps=series.length,
                  n_hia_draws=series.draws)
    return series, sched, params


@register("algorithm", "sustain", "numpy")
def run_sustain(oracle, x0, y0, *, T: int, step_size: float = 0.1, outer_ratio: float = 1.0,
                offset: float = 0.0, momentum_x: float = 0.5, momentum_y: float = 0.5,
                neumann_step: float = 0.1, n_hia_steps: int = 10, n_hia_draws: int = 1,
                record_every: int = 1, seed: int | None = None) -> Trace:
    """Run SUSTAIN for T iterations from (x0, y0) (R replicas); see the module docstring.
    Defaults: benchmark_bilevel's (docs/baselines.rst §14 CODE: s = 0.1, r = 1, eta = 0.5,
    N = 10, Neumann step tied to s, offset 0)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    series, sched, params = sustain_setup(T, step_size, outer_ratio, offset, momentum_x,
                                          momentum_y, neumann_step, n_hia_steps, n_hia_draws)
    return recursive_momentum_bilevel(oracle, x0, y0, T=T, series=series, sched=sched,
                                      params=params, name="sustain",
                                      record_every=record_every, seed=seed)


def _sustain_counts(trace, problem) -> dict[str, np.ndarray]:
    p = np.asarray(trace.extra["hia_p"], dtype=np.int64)
    return recursive_momentum_counts(trace.iterations, p.reshape(len(p), -1).max(axis=1))


#: the relative variance (N − 1)/B of SUSTAIN's default averaged estimate (see _sustain_defaults)
SUSTAIN_HIA_VARIANCE = 0.05


def _sustain_defaults(sc) -> dict:
    """SUSTAIN's own "default" values on top of MRBO's (:func:`~refbilevel.algorithms.mrbo.
    momentum_defaults`; docs/baselines.rst §14 "Reference choices"):

    * N = ⌈κ ln 1e2⌉: E_p RN_N = η Σ_{q<N} (I − ηH)^q has bias (1 − 1/κ)^N ≤ 1e-2 at
      η = 1/L_y (§14 "Checks"; K = Θ(κ log 1/ε));
    * B = ⌈(N − 1)/0.05⌉ averaged draws of p (docs/baselines.rst §1 "Averaged draws"): the
      relative variance of each estimate along the stiffest direction, (N − 1)/B, is 5%;
      unlike MRBO's, SUSTAIN's estimate is random even with exact oracles (through p), and
      with one draw the ratio ||∇φ(x_T)||/||∇φ(x_0)|| levelled off at 1-3e-2 on the default
      quadratic (κ = 10, noise 0) for every weight c in [1e-3, 1e-2], N in {47, 70, 93} and
      a 4x smaller x step. The STORM tracker averages the estimates over about 1/a
      iterations, so a smaller B than BSA's and TTSA's (which use each estimate once,
      :func:`~refbilevel.algorithms._baselines.default_hia_draws`) suffices: measured there
      (Numba, 5 replicas) median 1.9e-3 with B = 64, 6.0e-4 with B = 1024;
    * momentum weights c = γ m_φ (γ the x step): the tracker averages the randomized
      truncation over 1/a ≈ the x relaxation time 1/(γ m_φ);
    * horizon 3 ln(1e3)/(γ m_φ): the first estimate's error decays like (1 − a)^t.
    ``mode="paper"`` keeps the paper's single draw."""
    from refbilevel.algorithms._baselines import single_loop_outer_step

    c = single_loop_outer_step(sc) * sc.m_phi
    N = int(math.ceil(sc.kappa * math.log(1e2)))
    return {"n_hia_steps": N, "n_hia_draws": int(math.ceil((N - 1) / SUSTAIN_HIA_VARIANCE)),
            "momentum_x": c, "momentum_y": c}


SOLVER = momentum_record(
    "sustain", run_sustain, "docs/baselines.rst §14", _sustain_defaults, _sustain_counts,
    "docs/baselines.rst §14 (PAPER = CODE, audit-corrected: t ≥ 2 ∇_y G 2, ∇_y F 2, ∇_x F 2, "
    "JVP 2, HVP 2p_t with p_t ~ U{0..N−1} realized; t = 1 half)", horizon_scale=3.0)
