"""AmIGO — Amortized Implicit Gradient Optimization (Arbel & Mairal, ICLR 2022; spec
docs/baselines.rst §7). NumPy reference, batched over replicas, "+z" convention.

Per outer iteration k (warm starts for both y and z):

1. y_k = ``n_inner_steps`` SGD steps on g(x_k, ·) from y_{k−1} (step α, fresh sample each);
2. one outer sample: w_k = ∇_y F(x_k, y_k), u_k = ∇_x F(x_k, y_k);
3. z_k = ``n_z_steps`` SGD steps on ½ zᵀ∇²_yy g z − zᵀw_k from z_{k−1}:
   z ← z − β (∇²_yy G(x_k, y_k; fresh) z − w_k)  (w_k fixed during the block);
4. x_{k+1} = x_k − γ (u_k − ∇²_xy G(x_k, y_k; fresh) z_k).

z_0 = 0 (benchmark_bilevel CODE: "v" initialised at 0).

Oracle calls per iteration (X3; docs/baselines.rst §0.2 "(21, 2)" for 10 + 10 steps): grad_y_g
n_inner_steps, hvp n_z_steps, jvp 1, grad_y_f 1, grad_x_f 1. GaussianOracle draw order (the
Numba kernel reproduces it): n × ∇_y G, ∇_y F, ∇_x F, m × HVP, JVP.

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §7): constant α = β = s, γ = s/r; defaults s = 0.1,
  r = 1, n_inner_steps = 10 and n_z_steps = n_inner_steps (the benchmark uses the same
  count). (The benchmark's best quadratic setting is s = 0.01, r = 0.1.)
- ``"theory"``: the spec gives no step sizes for AmIGO (PAPER §7: only T, M = O(κ log κ)):
  NOT RECOVERED, ``mode="theory"`` raises ValueError.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int


def amigo_params(oracle, mode, step_size, outer_ratio, n_inner_steps, n_z_steps):
    """(alpha, beta, gamma, n, m, params) for both backends."""
    B.require_mode(mode)
    if mode == "theory":
        raise ValueError(
            "AmIGO mode='theory': the paper's step sizes are NOT RECOVERED (docs/baselines.rst "
            "§7 gives only T, M = O(κ log κ)); use mode='tuned' with explicit step_size and "
            "outer_ratio"
        )
    s = B.positive("step_size", step_size)
    r = B.positive("outer_ratio", outer_ratio)
    n = require_int("n_inner_steps", n_inner_steps, low=0)
    m = n if n_z_steps is None else require_int("n_z_steps", n_z_steps, low=0)
    params = {"mode": mode, "step_size": s, "outer_ratio": r, "n_inner_steps": n,
              "n_z_steps": m}
    return s, s, s / r, n, m, params


@register("algorithm", "amigo", "numpy")
def run_amigo(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
              outer_ratio: float = 1.0, n_inner_steps: int = 10, n_z_steps: int | None = None,
              record_every: int = 1, seed: int | None = None) -> Trace:
    """Run AmIGO for T outer iterations from (x0, y0) (R replicas); see the module
    docstring. The final z is returned in ``trace.extra["z"]``."""
    B.require_oracle(oracle)
    alpha, beta, gamma, n, m, params = amigo_params(oracle, mode, step_size, outer_ratio,
                                                    n_inner_steps, n_z_steps)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = np.zeros((R, oracle.problem.d_y))
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            yn = B.sgd_block(oracle, x, y, n, alpha, bad)
            w, u = B.outer_gradients(oracle, x, yn, R)
            zn = z
            for _ in range(m):
                zn = B.guard(zn - beta * (oracle.hvp_yy_g(x, yn, zn) - w), bad)
            xn = x - gamma * (u - oracle.jvp_xy_g(x, yn, zn))
            x, y, z = B.freeze(rec, t, (xn, yn, zn), (x, y, z), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("amigo", "numpy", params, seed, z=z)


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """AmIGO "default" (docs/baselines.rst §7, PAPER): warm-started inner loops of T = M = ⌈κ⌉
    SGD steps with step 1/L_y on y and on z (the warm starts make O(κ)-type counts
    independent of ε suffice), outer step γ = 1/L_φ (outer_ratio = L_φ/L_y). Constants μ,
    L_y, L_φ global."""
    n = int(math.ceil(sc.kappa))
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": sc.L_phi / sc.L_y, "n_inner_steps": n,
            "n_z_steps": n}


def _horizon(sc, options):
    """ln(1e3) L_φ/m_φ: gradient descent with step 1/L_φ."""
    from refbilevel.solver_record import horizon

    return horizon(sc.m_phi / sc.L_phi)


SOLVER = B.baseline_record("amigo", run_amigo, "docs/baselines.rst §7", _default_options, _horizon)
