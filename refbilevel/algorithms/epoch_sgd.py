"""Epoch-SGD with shrinking balls: UniBiO's lower-level solver (UniBiO Algorithm 1;
docs/unibio.rst §4.1, schedules §5.1 Lemma C.4 / Theorem C.5).

    tau = 2(p-1)/p,  T_k = T_1 2^{tau(k-1)},  D_k = D_1 2^{-(k-1)/p},  gamma_k = gamma_1 2^{-(k-1)}
    epoch k: T_k projected SGD steps on the ball B(w_1^k, D_k) around the epoch's start;
             the next epoch starts at the epoch average.

Two budget rules (docs/unibio.rst §4.1 and §8 item 3):
- ``"paper"``: the K complete epochs whose integer lengths floor(T_k) sum to <= the budget;
- ``"code"``: the authors' rule, epoch k runs while the real-valued cumulative sum
  Σ_{i<k} T_1 2^{tau i} <= budget, lengths truncated with int(), at most 49 epochs.
For T_1 = 5, budget 100 both give 75, 59, 70, 77 steps for p = 2, 4, 6, 8 (docs/unibio.rst §7.1).

Two averaging sets: ``"pre"`` averages w_1..w_{T_k} (Hazan–Kale, Lemma C.6; the paper),
``"post"`` averages w_2..w_{T_k+1} (the authors' code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from refbilevel.projection import project_ball
from refbilevel.validation import require_choice, require_int, require_range


@dataclass(frozen=True)
class Epoch:
    length: int
    radius: float
    step: float


def epoch_schedule(budget: int, T_1: float, D_1: float, gamma_1: float, p: float,
                   rule: str = "paper") -> list[Epoch]:
    """The epochs Epoch-SGD runs within ``budget`` stochastic gradients (docs/unibio.rst §4.1)."""
    budget = require_int("budget", budget, low=0)
    T_1 = require_range("T_1", T_1, low=1.0)
    D_1 = require_range("D_1", D_1, low=0.0, low_inclusive=False)
    gamma_1 = require_range("gamma_1", gamma_1, low=0.0, low_inclusive=False)
    p = require_range("p", p, low=2.0)
    rule = require_choice("rule", rule, ("paper", "code"))
    tau = 2.0 * (p - 1.0) / p
    epochs: list[Epoch] = []
    used_int, used_real = 0, 0.0
    k = 0
    while True:
        real_len = T_1 * 2.0 ** (tau * k)
        length = int(real_len)
        if rule == "paper":
            if used_int + length > budget:
                break
        else:
            if used_real + real_len > budget or k >= 49:
                break
        epochs.append(Epoch(length, D_1 * 2.0 ** (-k / p), gamma_1 * 2.0 ** (-k)))
        used_int += length
        used_real += real_len
        k += 1
    return epochs


def epoch_sgd(oracle, x: np.ndarray, w_init: np.ndarray, epochs: list[Epoch], *,
              average: str = "pre") -> np.ndarray:
    """Run Epoch-SGD on g(x, ·) from ``w_init`` (shape (R, d_y)); one ∇_y G call per step.

    Returns the average of the last epoch (= w_1^{K+1}); with no epoch, ``w_init``.
    """
    average = require_choice("average", average, ("pre", "post"))
    w = np.array(w_init, dtype=np.float64, copy=True)
    for ep in epochs:
        center = w
        acc = np.zeros_like(w)
        for _ in range(ep.length):
            if average == "pre":
                acc += w
            w = project_ball(w - ep.step * oracle.grad_y_g(x, w), ep.radius, center)
            if average == "post":
                acc += w
        w = acc / ep.length
    return w
