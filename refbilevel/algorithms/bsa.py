"""BSA — Bilevel Stochastic Approximation (Ghadimi & Wang 2018, arXiv 1802.02246; spec
docs/baselines.rst §1). NumPy reference, batched over replicas, "+z" convention.

Per outer iteration k = 1..T:

1. lower level: n_k warm-started SGD steps y ← y − β ∇_y G(x_k, y; fresh sample);
2. one outer sample: (∇_y F, ∇_x F) at (x_k, y_{k+1});
3. Ghadimi–Wang's randomized Neumann estimate ("HIA", §1 PAPER): p ~ Uniform{0..N−1},
   z = N η Π_{i=1}^{p} (I − η ∇²_yy G(x_k, y_{k+1}; ζ_i)) ∇_y F, each HVP on a fresh sample;
   E over p of N η Π = η Σ_{q<N} (I − ηH)^q → H^{-1}, bias (1 − ημ)^N. With
   ``n_hia_draws`` = B > 1 (the "default" mode; §1 "Averaged draws") the average of the B
   estimates of p_1..p_B on ONE chain, z = N η (1/B) Σ_b Π_{i≤p_b}(...) ∇_y F: unbiased,
   the variance due to p divided by B, max_b p_b HVPs;
4. x_{k+1} = x_k − α_k (∇_x F − ∇²_xy G(x_k, y_{k+1}; ζ_0) z).

The lower level runs before the hypergradient (the paper's order; benchmark_bilevel's numba
era runs a warm-up block and then [hypergradient, x-step, SGD block], the same sequence
shifted by one block, so the LL step of our block k is the benchmark's s/√k of block k−1).
The realized chain length of every iteration and replica (p, or max_b p_b for B draws) is
returned in ``trace.extra["hia_p"]`` (shape (T, R)).

Oracle calls per iteration (X3): grad_y_g n_k, grad_y_f 1, grad_x_f 1, jvp 1, and hvp
max_r p_r — the realized number of products (p_r the replica's chain length), i.e. exactly
p for R = 1 and one draw (GW18 draws p + 1
inner samples ζ_0..ζ_p; benchmark_bilevel's plots count the budget N instead, §0.2
"(21, 2)" = 10 SGD + N = 10 HIA + 1 cross). GaussianOracle draw order: n_k × ∇_y G, ∇_y F,
∇_x F, the lengths (:func:`~refbilevel.algorithms._baselines.hia_draws`), HVPs, JVP.

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §1): inner β = s/k^{e0}, Neumann η = s, outer
  α = (s/r)/k^{e2} with exponents (0.5, 0, 0.5) (the middle one, η's, fixed to 0); defaults
  s = 0.1, r = 1, n_inner_steps = 10, n_hia_steps N = 10.
- ``"theory"`` (PAPER, §1, "recalled — verify constants"): η = 1/L_g, n_k = ⌈c_t √k⌉
  SGD steps with β_j = c_beta/(μ j) (j = 1..n_k, restarting in each block), α_k = c_alpha/√T
  (constant over the run of T iterations), N = n_hia_steps. The constants c_t, c_beta,
  c_alpha are NOT RECOVERED: pass them in ``theory_constants``.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def bsa_params(oracle, mode, T, step_size, outer_ratio, exponents, n_inner_steps,
               n_hia_steps, theory_constants, n_hia_draws=1):
    """A schedule function k -> (n_k, [β_1..β_{n_k}], α_k), η, N and the params record
    (which holds ``n_hia_draws``, the number B of averaged HIA draws)."""
    B.require_mode(mode)
    N = require_int("n_hia_steps", n_hia_steps, low=1)
    n_draws = B.hia_draws_option(n_hia_draws)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        n = require_int("n_inner_steps", n_inner_steps, low=0)
        e_in, e_out = B.exponent_pair(exponents)

        def schedule(k):
            return n, [B.decay(s, e_in, k)] * n, B.decay(s / r, e_out, k)

        params = {"mode": mode, "step_size": s, "outer_ratio": r, "exponents": (e_in, e_out),
                  "n_inner_steps": n, "n_hia_steps": N, "n_hia_draws": n_draws}
        return schedule, s, N, params
    c = B.theory_constants("BSA", "§1", theory_constants, ("c_t", "c_beta", "c_alpha"))
    mu = B.problem_constant(oracle, "mu", "BSA", "§1")
    L = B.problem_constant(oracle, "L_y", "BSA", "§1")
    alpha = c["c_alpha"] / math.sqrt(max(T, 1))

    def schedule(k):
        nk = math.ceil(c["c_t"] * math.sqrt(k))
        return nk, [c["c_beta"] / (mu * j) for j in range(1, nk + 1)], alpha

    params = {"mode": mode, **c, "eta": 1.0 / L, "alpha": alpha, "n_hia_steps": N,
              "n_hia_draws": n_draws}
    return schedule, 1.0 / L, N, params


@register("algorithm", "bsa", "numpy")
def run_bsa(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
            outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
            n_inner_steps: int = 10, n_hia_steps: int = 10, n_hia_draws: int = 1,
            theory_constants: dict | None = None, record_every: int = 1,
            seed: int | None = None) -> Trace:
    """Run BSA for T outer iterations from (x0, y0) (R replicas); see the module docstring.
    ``exponents`` = (e_inner, e_outer) of the tuned schedule (η's exponent is 0)."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, eta, N, params = bsa_params(oracle, mode, T, step_size, outer_ratio, exponents,
                                          n_inner_steps, n_hia_steps, theory_constants,
                                          n_hia_draws)
    x, y, R = B.start_points(oracle, x0, y0)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    ps = np.zeros((T, R), dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            _, betas, alpha = schedule(t)
            bad = np.zeros(R, dtype=bool)
            yn = y
            for beta in betas:
                yn = B.guard(yn - beta * oracle.grad_y_g(x, yn), bad)
            fy, fx = B.outer_gradients(oracle, x, yn, R)
            z, ps[t - 1] = B.hia(oracle, x, yn, fy, N, eta, R, bad, params["n_hia_draws"])
            xn = x - alpha * (fx - oracle.jvp_xy_g(x, yn, B.guard(z, bad)))
            x, y = B.freeze(rec, t, (xn, yn), (x, y), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("bsa", "numpy", params, seed, hia_p=ps)


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """BSA "default" (docs/baselines.rst §1, PAPER, with the averaged estimate of §1
    "Averaged draws"): η = 1/L_y (η = 1/L_g), ⌈κ⌉ warm-started LL steps of 1/L_y, HIA length
    N = ⌈κ ln 1e2⌉ (bias (1 − 1/κ)^N ≤ 1e-2), a constant outer step α = 1/(4 L_φ) (the paper's
    α ∝ 1/√K is constant over a run; a quarter of gradient descent's 1/L_φ, as
    :func:`~refbilevel.algorithms._baselines.single_loop_outer_step` caps it) and
    B = ⌈α L_φ (N − 1)/v⋆⌉ averaged draws of p
    (:func:`~refbilevel.algorithms._baselines.default_hia_draws`): with one draw the
    randomized estimate keeps a variance proportional to ||∇_y f||² at the solution even
    with exact oracles (measured floor with the earlier α_k = 1/(L_φ √k): 1.0e-2 of
    ||∇φ(x_0)|| after 2e5 iterations on the default ``quadratic``); the average divides it
    by B at no extra HVP. ``mode="paper"`` keeps the paper's single draw."""
    N = int(math.ceil(sc.kappa * math.log(1e2)))
    alpha = 0.25 / sc.L_phi
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * alpha),
            "exponents": (0.0, 0.0), "n_inner_steps": int(math.ceil(sc.kappa)),
            "n_hia_steps": N, "n_hia_draws": B.default_hia_draws(alpha, sc.L_phi, N)}


def _horizon(sc, options):
    """ln(1e4)/(α m_φ): gradient descent's horizon for 1e-4 with the constant step, so that
    the deterministic error is below the estimate's noise floor."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi, scale=4.0 / 3.0)


SOLVER = B.baseline_record("bsa", run_bsa, "docs/baselines.rst §1", _default_options, _horizon)
