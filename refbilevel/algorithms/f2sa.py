"""F2SA — Fully First-order Stochastic Approximation (Kwon, Kwon, Wright, Nowak, ICML 2023;
docs/baselines.rst §8). NumPy reference, batched over replicas. Gradients only (no HVP/JVP).

Penalty reformulation L_λ(x, y) = f(x, y) + λ (g(x, y) − g*(x)); with z ≈ y*(x) ("inner
approx star") and y ≈ argmin_y L_λ(x, ·), per outer iteration k:

    for t = 1..n_inner_steps:
        y ← y − a_k (λ_k ∇_y G(x, y; b_1) + ∇_y F(x, y; b'))
        z ← z − c_k ∇_y G(x, z; b_2)
    x ← x − ξ_k (∇_x F(x, y; b') + λ_k (∇_x G(x, y; b_3) − ∇_x G(x, z; b_4)))
    λ_{k+1} = λ_k + δ_k

The trace reports z as the inner variable (benchmark_bilevel's metric, §8 CODE: "the inner
variable reported to the metrics is z"); the final y, z and λ are in ``trace.extra``.

Oracle calls per iteration (X3): grad_y_g 2 n, grad_y_f n, grad_x_f 1, grad_x_g 2, with
n = n_inner_steps. GaussianOracle draw order: per inner step ∇_y G(y), ∇_y F(y), ∇_y G(z);
then ∇_x F, ∇_x G(y), ∇_x G(z).

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §8): a_k = s/k^{5/7}, c_k = s/k^{4/7},
  ξ_k = (s/r)/k^{4/7}, δ_k = Δλ/k^{1/7} (exponents [5/7, 4/7, 4/7, 1/7]), λ_1 = lmbda0; every
  call on its own fresh sample (the benchmark uses different batches for the two ∇_x G
  terms). Defaults s = 0.01, r = 1, Δλ = 0.1, λ_0 = 1, n_inner_steps = 10. (Deviations from
  the paper listed in §8: λ_k grows like (7/6)Δλ k^{6/7}; the x-step decays as k^{-4/7}.)
- ``"theory"`` (PAPER §8, recalled): a_k = c_alpha (k + k0)^{-5/7}, c_k = c_gamma
  (k + k0)^{-4/7}, λ_k = c_lambda (k + k0)^{1/7}, x-step xi · a_k, k = 0..T−1, and the two
  ∇_x G terms share one sample φ_x where the oracle shares samples. The constants c_alpha,
  c_gamma, c_lambda, xi and k0 are NOT RECOVERED: pass them in ``theory_constants`` (the
  paper needs a_k λ_k ≲ 1/l_{g,1}; a violation shows up as divergence, which is detected).
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def f2sa_params(oracle, mode, step_size, outer_ratio, delta_lambda, lmbda0, n_inner_steps,
                theory_constants):
    """A schedule k -> (a_k, c_k, xstep_k, λ_k) (k = 1..T), n and the params record."""
    B.require_mode(mode)
    n = require_int("n_inner_steps", n_inner_steps, low=0)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        dl = B.require_range("delta_lambda", delta_lambda, low=0.0)
        l0 = B.require_range("lmbda0", lmbda0, low=0.0)
        lam = [l0]  # λ_k, accumulated as the benchmark does

        def schedule(k):
            while len(lam) < k:  # λ_{j+1} = λ_j + Δλ/j^{1/7}
                j = len(lam)
                lam.append(lam[-1] + B.decay(dl, 1.0 / 7.0, j))
            return (B.decay(s, 5.0 / 7.0, k), B.decay(s, 4.0 / 7.0, k),
                    B.decay(s / r, 4.0 / 7.0, k), lam[k - 1])

        params = {"mode": mode, "step_size": s, "outer_ratio": r, "delta_lambda": dl,
                  "lmbda0": l0, "n_inner_steps": n}
        return schedule, n, params
    c = B.theory_constants("F2SA", "§8", theory_constants,
                           ("c_alpha", "c_gamma", "c_lambda", "xi", "k0"))

    def schedule(k):
        kk = k - 1 + c["k0"]
        a = c["c_alpha"] * kk ** (-5.0 / 7.0)
        return a, c["c_gamma"] * kk ** (-4.0 / 7.0), c["xi"] * a, c["c_lambda"] * kk ** (1 / 7)

    params = {"mode": mode, **c, "n_inner_steps": n}
    return schedule, n, params


@register("algorithm", "f2sa", "numpy")
def run_f2sa(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.01,
             outer_ratio: float = 1.0, delta_lambda: float = 0.1, lmbda0: float = 1.0,
             n_inner_steps: int = 10, z0=None, theory_constants: dict | None = None,
             record_every: int = 1, seed: int | None = None) -> Trace:
    """Run F2SA for T outer iterations from (x0, y0) (R replicas); z starts at ``z0``
    (default y0). See the module docstring."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    schedule, n, params = f2sa_params(oracle, mode, step_size, outer_ratio, delta_lambda,
                                      lmbda0, n_inner_steps, theory_constants)
    x, y, R = B.start_points(oracle, x0, y0)
    z = y.copy() if z0 is None else B.start_points(oracle, x, z0)[1]
    share_x = mode == "theory"
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, z, oracle.counts, force=True)
    lam = None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            a, c, xs, lam = schedule(t)
            bad = np.zeros(R, dtype=bool)
            yn, zn = y, z
            for _ in range(n):
                gy = oracle.grad_y_g(x, yn)
                yn = B.guard(yn - a * (lam * gy + oracle.grad_y_f(x, yn)), bad)
                zn = B.guard(zn - c * oracle.grad_y_g(x, zn), bad)
            fx = oracle.grad_x_f(x, yn)
            b = B.shared_sample(oracle, "grad_x_g", R) if share_x else None
            gx = oracle.grad_x_g(x, yn, sample=b) - oracle.grad_x_g(x, zn, sample=b)
            xn = x - xs * (fx + lam * gx)
            x, y, z = B.freeze(rec, t, (xn, yn, zn), (x, y, z), bad)
            rec.record(t, x, z, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("f2sa", "numpy", params, seed, y=y, z=z, lmbda=lam)


# ---- solver record ------------------------------------------------------------------------------
#: the theory schedule's offset k0 in the default mode: over a default horizon (T << k0) the
#: steps and λ_k stay within 1% of their start values
DEFAULT_K0 = 1e6


def _default_options(sc, l_f2: float = 1.0):
    """F2SA "default" (docs/baselines.rst §8, PAPER schedule, ``mode="theory"``): λ_k =
    c_λ (k+k0)^{1/7}, α_k = c_α (k+k0)^{-5/7}, γ_k = c_γ (k+k0)^{-4/7}, x-step ξ α_k, with
    k0 = 1e6 so that over the horizon they are the values at k = 0:

    * λ = 100 max(1, l_f2)/μ: the penalty reformulation's hypergradient bias is O(l_f/(μλ))
      (Kwon et al., Lemma 3.1), two decades under the start scale;
    * α = 1/(λ L_y + l_f2): the y-step on f + λg, whose Hessian is bounded by λL_y + l_f2
      (the paper's α_k λ_k ≲ 1/l_{g,1}), contracting by 1 − αλμ ≈ 1 − μ/L_y per step;
    * γ = 1/L_y for z (plain gradient descent on g);
    * x-step ξα = 1/(4 L_φ) (∇L*_λ is L_φ + O(1/λ) Lipschitz);
    * n_inner_steps = ⌈κ ln 1e4⌉ warm-started steps: the y and z errors are multiplied by λ
      in the x-direction, so they must shrink 1e4-fold per outer step.

    Constants: μ, L_y, L_φ (global) and l_f2 (the Lipschitz constant of ∇_y f)."""
    lam = 100.0 * max(1.0, l_f2) / sc.mu
    a = 1.0 / (lam * sc.L_y + l_f2)
    k0 = DEFAULT_K0
    x_step = 0.25 / sc.L_phi
    return {"mode": "theory",
            "theory_constants": {"c_alpha": a * k0 ** (5 / 7), "c_gamma": k0 ** (4 / 7) / sc.L_y,
                                 "c_lambda": lam / k0 ** (1 / 7), "xi": x_step / a, "k0": k0},
            "n_inner_steps": int(math.ceil(sc.kappa * math.log(1e4)))}


def _horizon(sc, options):
    """ln(1e3)/(ξα m_φ): three decades at the x-step 1/(4 L_φ)."""
    from refbilevel.solver_record import horizon

    return horizon(0.25 / sc.L_phi * sc.m_phi)


SOLVER = B.baseline_record("f2sa", run_f2sa, "docs/baselines.rst §8", _default_options, _horizon,
                           step_options=())
