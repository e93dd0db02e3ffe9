"""PZOBO — Partial Zeroth-Order based Bilevel Optimizer (Sow, Ji, Liang, NeurIPS 2022, "On the
convergence theory for Hessian-free bilevel algorithms"; docs/baselines.rst §16). NumPy
reference, batched over replicas.

Hessian-free: only the response Jacobian J_N(x) = ∂y^N(x)/∂x of the N-step lower-level solver
is estimated, by differences of a perturbed and the unperturbed lower-level gradient path
along Gaussian directions; the rest of the hypergradient is exact first order. Per outer
iteration k = 1..T:

    y^0 = y_{k−1}^N (warm start);  u_j ~ N(0, I_{d_x}), j = 1..Q
    main path:      y^t = y^{t−1} − α ∇_y G(x_k, y^{t−1}; S_t),                       t = 1..N
    perturbed path: y_j^t = y_j^{t−1} − α ∇_y G(x_k + μ u_j, y_j^{t−1}; S_t),  y_j^0 = y^0
    δ_j = (y_j^N − y^N)/μ
    ĥ_k = ∇_x F(x_k, y^N; D) + (1/Q) Σ_j ⟨δ_j, ∇_y F(x_k, y^N; D)⟩ u_j
    x_{k+1} = x_k − β_k ĥ_k

(the deterministic algorithm of §16; PZOBO-S with minibatches: one lower-level sample S_t per
step t, shared by the main path and all Q perturbed paths — the authors' code and the
reference implementation of §16 — and one outer sample D for ∇_x F and ∇_y F). Directions
are unnormalised Gaussian vectors and every perturbed path starts from y^0: the
benchmark's in-place quirk of §16 (path j starting where path j − 1 ended) is not inherited.
With a GaussianOracle the shared sample is the shared noise block (``sample=``), which
cancels in δ_j as a shared minibatch's sampling error nearly does.

Oracle calls per iteration (X3; docs/baselines.rst §16, PAPER = CODE): grad_y_g N(Q + 1),
grad_y_f 1, grad_x_f 1 — no HVP, no JVP, no function value. Random-number order per
iteration: the directions (one ``rng.standard_normal((Q, R, d_x))``), then per lower-level
step t one sample (``oracle.draw("grad_y_g", (R,))``, shared by the Q + 1 paths), then the
outer sample(s) for ∇_y F, ∇_x F (``_baselines.outer_gradients``).

Modes:

- ``"tuned"`` (benchmark_bilevel CODE, §16): constant α = s, β = s/r; defaults s = 0.1,
  r = 1, μ = 0.1, N = 10, Q = 1 (numba era). ``outer_exponent`` e > 0 makes the outer step
  β_k = (s/r)/(1 + (k − 1)/k_0)^e (an option of this implementation, used by the
  "default" mode below; the benchmark has e = 0).
- ``"theory"``: deterministic PZOBO's rate and every theoretical choice of N, Q, μ, α, β are
  NOT RECOVERED (§16), so there is no theory schedule; ``mode="theory"`` raises and says so.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def pzobo_params(mode, step_size, outer_ratio, n_inner_steps, n_directions, smoothing,
                 outer_exponent, outer_decay_start):
    """The validated params record of a run (both backends)."""
    B.require_mode(mode)
    if mode == "theory":
        raise ValueError(
            "PZOBO mode='theory': deterministic PZOBO's rate and the theoretical choices of "
            "N, Q, μ, α, β are NOT RECOVERED (docs/baselines.rst §16); use mode='tuned' "
            "(or solve(..., mode='default'))")
    s = B.positive("step_size", step_size)
    r = B.positive("outer_ratio", outer_ratio)
    N = require_int("n_inner_steps", n_inner_steps, low=1)
    Q = require_int("n_directions", n_directions, low=1)
    mu = B.positive("smoothing", smoothing)
    e = B.exponent("outer_exponent", outer_exponent)
    k0 = B.positive("outer_decay_start", outer_decay_start)
    return {"mode": mode, "step_size": s, "outer_ratio": r, "n_inner_steps": N,
            "n_directions": Q, "smoothing": mu, "outer_exponent": e,
            "outer_decay_start": k0, "lower_level_gradients": N * (Q + 1)}


def outer_step(params, k: int) -> float:
    """β_k = (s/r)/(1 + (k − 1)/k_0)^e, k = 1, 2, ... (constant for e = 0)."""
    beta = params["step_size"] / params["outer_ratio"]
    e = params["outer_exponent"]
    return beta if e == 0.0 else beta / (1.0 + (k - 1) / params["outer_decay_start"]) ** e


@register("algorithm", "pzobo", "numpy")
def run_pzobo(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
              outer_ratio: float = 1.0, n_inner_steps: int = 10, n_directions: int = 1,
              smoothing: float = 0.1, outer_exponent: float = 0.0,
              outer_decay_start: float = 1.0, record_every: int = 1,
              seed: int | None = None) -> Trace:
    """Run PZOBO for T outer iterations from (x0, y0) (R replicas); see the module docstring.

    Parameters
    ----------
    oracle : GaussianOracle or FiniteSumOracle (its Generator supplies every random number).
    x0, y0 : (R, d_x), (R, d_y) start points, one row per replica.
    T : outer iterations (>= 0).
    step_size, outer_ratio : s (the lower-level step α) and r (β = s/r).
    n_inner_steps : N, lower-level gradient steps per path.
    n_directions : Q, Gaussian directions (perturbed paths) per outer iteration.
    smoothing : μ > 0, the perturbation size of x along each direction.
    outer_exponent, outer_decay_start : e >= 0 and k_0 > 0 of β_k (constant for e = 0).
    record_every : record the trace every this many iterations (and at T).
    seed : recorded in the trace only (randomness comes from ``oracle.rng``).
    """
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = pzobo_params(mode, step_size, outer_ratio, n_inner_steps, n_directions,
                          smoothing, outer_exponent, outer_decay_start)
    alpha, N, Q, mu = (params["step_size"], params["n_inner_steps"], params["n_directions"],
                       params["smoothing"])
    x, y, R = B.start_points(oracle, x0, y0)
    dx = x.shape[1]
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            U = oracle.rng.standard_normal((Q, R, dx))
            xs = [x + mu * U[j] for j in range(Q)]
            ym = y
            yp = [y] * Q
            for _ in range(N):
                s = oracle.draw("grad_y_g", (R,))
                ym = B.guard(ym - alpha * oracle.grad_y_g(x, ym, sample=s), bad)
                yp = [B.guard(yp[j] - alpha * oracle.grad_y_g(xs[j], yp[j], sample=s), bad)
                      for j in range(Q)]
            fy, fx = B.outer_gradients(oracle, x, ym, R)
            h = fx.copy()
            for j in range(Q):
                coef = np.sum((yp[j] - ym) / mu * fy, axis=1)
                h += coef[:, None] * U[j] / Q
            xn = x - outer_step(params, t) * h
            x, y = B.freeze(rec, t, (xn, ym), (x, y), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("pzobo", "numpy", params, seed)


# ---- solver record ------------------------------------------------------------------------------
#: the Jacobian bias of the N-step solver, (1 − μ/L_y)^N ≤ DEFAULT_BIAS (see _default_options)
DEFAULT_BIAS = 1e-3
#: directions per iteration of the default: the estimator's relative error variance (p + 1)/Q
DEFAULT_DIRECTIONS = 10


def _default_options(sc):
    """PZOBO "default" (docs/baselines.rst §16; the paper's choices of N, Q, μ, α, β are NOT
    RECOVERED, these are ours). Constants: μ, L_y, L_φ, m_φ of the problem (global;
    :class:`~refbilevel.solver_record.StepConstants`).

    * α = 1/L_y: each lower-level path contracts by 1 − μ/L_y per step;
    * N = ⌈κ ln(1/DEFAULT_BIAS)⌉: the ITD Jacobian J_N differs from the implicit one by the
      factor (I − αA)^N, so the ITD hypergradient's bias at the solution is at most
      (1 − 1/κ)^N ≤ 1e-3 of ||J*ᵀ∇_y f|| (DERIVED from the affine path of §16's checks);
    * μ = 1e-3: on the quadratic the difference is exact for every μ (§16 checks); elsewhere
      the forward difference has an O(μ) bias;
    * Q = DEFAULT_DIRECTIONS Gaussian directions: the estimate of J_Nᵀw has error variance
      (p + 1)||J_Nᵀw||²/Q (§16 checks), which does not vanish at the solution (∇_y f ≠ 0
      there), so a constant outer step leaves a floor on ||∇φ||;
    * β_k = β/(1 + (k − 1)/k_0) with β = 1/(2L_φ) (gradient descent on φ with an unbiased
      estimate, below 1/L_φ) and k_0 = 1/(β m_φ): constant for the deterministic phase of
      ln-many contractions, then the 1/k decay of SGD on a strongly convex function
      (β_k m_φ k → 1), which removes the variance floor at rate O(1/k).
    """
    beta = 0.5 / sc.L_phi
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 2.0 * sc.L_phi / sc.L_y,
            "n_inner_steps": int(math.ceil(sc.kappa * math.log(1.0 / DEFAULT_BIAS))),
            "n_directions": DEFAULT_DIRECTIONS, "smoothing": 1e-3,
            "outer_exponent": 1.0, "outer_decay_start": 1.0 / (beta * sc.m_phi)}


def _horizon(sc, options):
    """ln(1e3)/(β m_φ) for the deterministic phase, times 10 for the 1/k phase (whose
    variance term falls as k_0/k)."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi, scale=10.0)


SOLVER = B.baseline_record("pzobo", run_pzobo, "docs/baselines.rst §16", _default_options,
                           _horizon)
