"""Coupled hypergradient estimates: ĥ(z; B) at one or two points z = (x, y) on ONE sample
bundle B (docs/baselines.rst §11, "Coupled pair"). NumPy reference; the Numba twin is
:mod:`refbilevel.algorithms.coupled_hypergradient_numba`.

    ĥ(x, y; B) = ∇_x F(x, y; b') − ∇²_xy G(x, y; b_c) S(x, y, ∇_y F(x, y; b'))

with S a Neumann approximation of [∇²_yy G]^{-1} ("+z" convention, docs/baselines.rst §0.1):

* ``"truncated"`` — NS_Q(w) = η Σ_{q=0}^{Q} u_q, u_0 = w, u_q = u_{q−1} − η ∇²_yy G(b_q) u_{q−1}
  (stocBiO's series, §2; Q HVPs, Q + 1 terms; MRBO §12 and VRBO §13);
* ``"randomized"`` — RN_N(w) = N η (1/B) Σ_b u_{p_b} with p_1..p_B ~ U{0, …, N − 1} per
  replica (Ghadimi–Wang's estimator, §1, averaged over B = ``draws`` lengths on one chain as
  :func:`refbilevel.algorithms._baselines.hia` does; B = 1 is the paper's; max_b p_b HVPs;
  SUSTAIN §14).

A coupled pair evaluates ĥ at z and z' with the same outer sample b', the same Neumann
samples b_1, b_2, … (and the same p), and the same JVP sample b_c: benchmark_bilevel's
``joint_shia``/``joint_hia`` advance the two recursions in lock-step, one fresh sample per
step used at both points, which is what is done here. STORM/SARAH corrections
ĥ(z_t; B) − ĥ(z_{t−1}; B) are formed from such pairs; independent samples at the two points
would destroy the variance reduction (docs/baselines.rst §11). At z = z' the two estimates
are identical, so the correction is exactly zero.

Sample bundle and its draw order (the parity contract with the Numba twin), for R replicas:

1. the outer sample: one outer minibatch for ∇_y F and ∇_x F when the oracle shares samples
   (:class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`), else a ∇_y F and then a ∇_x F
   noise block (a :class:`~refbilevel.oracles.gaussian.GaussianOracle` has independent noise
   per kind);
2. randomized only: the lengths' counts (:func:`refbilevel.algorithms._baselines.hia_draws`),
   shared by both points;
3. one HVP sample per Neumann step (Q steps; randomized: max_r p_r steps with p_r = max_b
   p_{r,b} the replica's chain length, step j applied to the replicas with p_r ≥ j, as
   :func:`refbilevel.algorithms._baselines.hia` does);
4. the JVP sample.

Counting: every draw is one sample, every evaluation one call of its kind at each point
(``sample=`` passed), so a pair costs per point ∇_y F 1, ∇_x F 1, HVP Q (or max p), JVP 1,
and one bundle of samples.

Full batch (``full_batch=True``, VRBO's checkpoint refresh on S_1 = the whole data set,
docs/baselines.rst §13): on a finite-sum oracle every sample of the bundle is the whole data
set of its level (indices 0..n−1, passed as ``sample=``: calls are counted, no sample is
drawn or counted); an oracle without a data set (Gaussian) draws as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.oracles.finite_sum import KIND_LEVEL
from refbilevel.validation import require_int

NEUMANN_KINDS = ("truncated", "randomized")


@dataclass(frozen=True)
class NeumannSeries:
    """The Neumann approximation S of ĥ (module docstring): ``kind`` "truncated" (NS_Q,
    ``length`` = Q ≥ 0) or "randomized" (RN_N, ``length`` = N ≥ 1, averaged over ``draws``
    = B ≥ 1 truncation lengths), step ``eta`` > 0 (the series converges for η < 2/L_g; the
    papers take η ≤ 1/L_g)."""

    kind: str
    length: int
    eta: float
    draws: int = 1

    def __post_init__(self) -> None:
        if self.kind not in NEUMANN_KINDS:
            raise ValueError(f"Neumann series kind must be one of "
                             f"{', '.join(map(repr, NEUMANN_KINDS))}; got {self.kind!r}")
        low = 1 if self.kind == "randomized" else 0
        name = "n_hia_steps" if self.kind == "randomized" else "n_neumann_steps"
        object.__setattr__(self, "length", require_int(name, self.length, low=low))
        object.__setattr__(self, "eta", B.positive("neumann_step", self.eta))
        object.__setattr__(self, "draws", B.hia_draws_option(self.draws))

    @property
    def randomized(self) -> bool:
        return self.kind == "randomized"


class CoupledEstimate(NamedTuple):
    """ĥ at each point (``h[i]`` of shape (R, d_x)), the realized randomized chain length
    ``p`` (R,) (max over the replica's draws; None for a truncated series) and the HVP calls
    made at each point (``hvp_steps``: Q, or max_r p_r)."""

    h: tuple[np.ndarray, ...]
    p: np.ndarray | None
    hvp_steps: int


def _sampler(oracle, R: int, full_batch: bool):
    """kind -> the sample of one evaluation of kind: a fresh draw, or the whole data set of
    a finite-sum problem (an oracle without indexed samples, e.g. Gaussian noise or row
    weights, gets one ordinary draw)."""
    P = oracle.problem
    if (full_batch and getattr(oracle, "shares_samples", False)
            and hasattr(P, "n_inner") and hasattr(P, "n_outer")):
        full = {level: np.broadcast_to(np.arange(n), (R, n))
                for level, n in (("inner", int(P.n_inner)), ("outer", int(P.n_outer)))}
        return lambda kind: full[KIND_LEVEL[kind]]
    return lambda kind: oracle.draw(kind, (R,))


def coupled_hypergradients(oracle, points: Sequence[tuple[np.ndarray, np.ndarray]],
                           series: NeumannSeries, bad: np.ndarray,
                           full_batch: bool = False) -> CoupledEstimate:
    """ĥ(z_i; B) for every point z_i = (x_i, y_i) (one or two, each (R, d)) on one sample
    bundle B drawn here (module docstring: draw order and counts). ``bad`` (R,) marks the
    replicas whose Neumann terms went non-finite (:func:`~refbilevel.algorithms._baselines.
    guard`); they are declared diverged by the caller."""
    if len(points) not in (1, 2):
        raise ValueError(f"points must hold one or two (x, y) points; got {len(points)}")
    R = points[0][0].shape[0]
    draw = _sampler(oracle, R, full_batch)
    s_fy = draw("grad_y_f")
    s_fx = s_fy if getattr(oracle, "shares_samples", False) else draw("grad_x_f")
    fx = [oracle.grad_x_f(x, y, sample=s_fx) for x, y in points]
    u = [B.guard(oracle.grad_y_f(x, y, sample=s_fy), bad) for x, y in points]
    eta = series.eta
    p = None
    if series.randomized:
        counts = B.hia_draws(oracle.rng, series.length, R, series.draws)
        weights = B.hia_weights(counts, series.draws)
        p = B.hia_lengths(counts)
        steps = int(p.max())
        acc = [weights[:, :1] * ui for ui in u]
        for j in range(1, steps + 1):
            s = draw("hvp")
            on = (p >= j)[:, None]
            u = [B.guard(np.where(on, ui - eta * oracle.hvp_yy_g(x, y, ui, sample=s), ui), bad)
                 for ui, (x, y) in zip(u, points, strict=True)]
            acc = [a + weights[:, j:j + 1] * ui for a, ui in zip(acc, u, strict=True)]
        w = [series.length * eta * a for a in acc]
    else:
        steps = series.length
        acc = list(u)
        for _ in range(steps):
            s = draw("hvp")
            u = [B.guard(ui - eta * oracle.hvp_yy_g(x, y, ui, sample=s), bad)
                 for ui, (x, y) in zip(u, points, strict=True)]
            acc = [a + ui for a, ui in zip(acc, u, strict=True)]
        w = [eta * a for a in acc]
    s_c = draw("jvp")
    h = tuple(f - oracle.jvp_xy_g(x, y, B.guard(wi, bad), sample=s_c)
              for f, wi, (x, y) in zip(fx, w, points, strict=True))
    return CoupledEstimate(h, p, steps)


def coupled_lower_gradients(oracle, points: Sequence[tuple[np.ndarray, np.ndarray]],
                            full_batch: bool = False) -> tuple[np.ndarray, ...]:
    """∇_y G(z_i; b) at one or two points on one fresh inner sample b (the LL tracker's
    coupled pair, docs/baselines.rst §12-§14): one sample, one call per point
    (``full_batch``: as in :func:`coupled_hypergradients`)."""
    R = points[0][0].shape[0]
    s = _sampler(oracle, R, full_batch)("grad_y_g")
    return tuple(oracle.grad_y_g(x, y, sample=s) for x, y in points)
