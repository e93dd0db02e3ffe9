"""MA-SOBA — Moving-Average SOBA (Chen, Xu, Zhang 2023, "Optimal algorithms for stochastic
bilevel optimization under relaxed smoothness conditions", arXiv 2305.12067; spec
docs/baselines.rst §6). NumPy reference, batched over replicas, "+z" convention (as the paper).

PAPER form (§6, recalled, medium confidence): one inner sample ζ_t and one outer sample ξ_t,
all directions at (x_t, y_t, z_t):

    D_y = ∇_y G(x_t, y_t; ζ_t)
    D_z = ∇²_yy G(x_t, y_t; ζ_t) z_t − ∇_y F(x_t, y_t; ξ_t)
    D_x = ∇_x F(x_t, y_t; ξ_t) − ∇²_xy G(x_t, y_t; ζ_t) z_t
    y_{t+1} = y_t − β D_y
    z_{t+1} = Π_{B(0, ρ)}(z_t − γ D_z)
    x_{t+1} = x_t − α h_t                      (the *previous* average)
    h_{t+1} = h_t + θ (D_x − h_t)

with h_0 = 0 (the spec gives no h_0; 0 is chosen, as the BO-REP group's code initialises
h). ``use_updated_h=True`` is the BO-REP group's code variant (x moves along the
updated h_{t+1}, §6 CODE); the rest of that code's ordering is not reproduced.
The final z and h are returned in ``trace.extra``.

Oracle calls per iteration (X3): grad_y_g 1, hvp 1, jvp 1, grad_y_f 1, grad_x_f 1.
GaussianOracle draw order: ∇_y G, HVP, JVP, ∇_y F, ∇_x F.

Modes:
- ``"tuned"``: MA-SOBA is not in benchmark_bilevel; the defaults are the BO-REP group's
  hyper-cleaning README values (§6, §9): step_y (lr_in) = 0.1, step_x (lr_out) = 0.05,
  step_z (ν) = 0.1, theta = 1 − 0.9 = 0.1; ``z_radius`` None = no projection (as that code).
- ``"theory"`` (PAPER §6): α = c_alpha/√T, β = c_beta α, γ = c_gamma α, θ = c_theta α, and the
  projection radius ρ = C_f/μ (ρ ≥ l_{f,0}/μ with l_{f,0} the bound C_f on ||∇_y f||; no
  projection when the problem states no C_f, e.g. the quadratics). The constants c_alpha,
  c_beta, c_gamma, c_theta are NOT RECOVERED: pass them in ``theory_constants``.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.projection import project_ball


def ma_soba_params(oracle, mode, T, step_y, step_z, step_x, theta, z_radius,
                   theory_constants):
    """(beta, gamma, alpha, theta, radius or None, params)."""
    B.require_mode(mode)
    if mode == "tuned":
        beta, gamma, alpha = (B.positive("step_y", step_y), B.positive("step_z", step_z),
                              B.positive("step_x", step_x))
        th = B.require_range("theta", theta, low=0.0, high=1.0, low_inclusive=False)
        rad = None if z_radius is None else B.positive("z_radius", z_radius)
        params = {"mode": mode, "step_y": beta, "step_z": gamma, "step_x": alpha, "theta": th,
                  "z_radius": rad}
        return beta, gamma, alpha, th, rad, params
    c = B.theory_constants("MA-SOBA", "§6", theory_constants,
                           ("c_alpha", "c_beta", "c_gamma", "c_theta"))
    alpha = c["c_alpha"] / math.sqrt(max(T, 1))
    th = c["c_theta"] * alpha
    if th > 1.0:
        raise ValueError(f"MA-SOBA theory: theta = c_theta * alpha must lie in (0, 1], got "
                         f"{th:g}")
    C_f = oracle.problem.constants.C_f
    rad = None
    if C_f is not None:
        rad = C_f / B.problem_constant(oracle, "mu", "MA-SOBA", "§6")
    params = {"mode": mode, **c, "step_x": alpha, "step_y": c["c_beta"] * alpha,
              "step_z": c["c_gamma"] * alpha, "theta": th, "z_radius": rad}
    return c["c_beta"] * alpha, c["c_gamma"] * alpha, alpha, th, rad, params


@register("algorithm", "ma_soba", "numpy")
def run_ma_soba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_y: float = 0.1,
                step_z: float = 0.1, step_x: float = 0.05, theta: float = 0.1,
                z_radius: float | None = None, use_updated_h: bool = False,
                theory_constants: dict | None = None, record_every: int = 1,
                seed: int | None = None) -> Trace:
    """Run MA-SOBA for T iterations from (x0, y0) (R replicas); see the module docstring."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    beta, gamma, alpha, th, rad, params = ma_soba_params(
        oracle, mode, T, step_y, step_z, step_x, theta, z_radius, theory_constants)
    params["use_updated_h"] = bool(use_updated_h)
    x, y, R = B.start_points(oracle, x0, y0)
    z = np.zeros((R, oracle.problem.d_y))
    h = np.zeros((R, oracle.problem.d_x))
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            b = B.shared_sample(oracle, "grad_y_g", R)
            dy = oracle.grad_y_g(x, y, sample=b)
            hz = oracle.hvp_yy_g(x, y, z, sample=b)
            cz = oracle.jvp_xy_g(x, y, z, sample=b)
            fy, fx = B.outer_gradients(oracle, x, y, R)
            hn = h + th * ((fx - cz) - h)
            xn = x - alpha * (hn if use_updated_h else h)
            zn = z - gamma * (hz - fy)
            if rad is not None:
                zn = project_ball(zn, rad)
            new = (xn, y - beta * dy, zn, hn)
            x, y, z, h = B.freeze(rec, t, new, (x, y, z, h))
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("ma_soba", "numpy", params, seed, z=z, h=h)


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """MA-SOBA "default" (docs/baselines.rst §6): the paper's constant steps with β = γ_z = 1/L_y
    for y and z, α = min(ρ μ/L_φ, 1/(4 L_φ)) for x (SOBA's two-timescale ratio,
    :func:`~refbilevel.algorithms._baselines.single_loop_outer_step`) and θ = 1 (the
    largest admissible averaging weight: x then moves along the previous direction; a small θ
    adds a lag that the fixed α does not tolerate on stiff problems). Constants global."""
    return {"step_y": 1.0 / sc.L_y, "step_z": 1.0 / sc.L_y,
            "step_x": B.single_loop_outer_step(sc), "theta": 1.0}


def _horizon(sc, options):
    """ln(1e3)/(α m_φ)."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_x"] * sc.m_phi)


SOLVER = B.baseline_record("ma_soba", run_ma_soba, "docs/baselines.rst §6", _default_options,
                           _horizon, step_options=("step_y", "step_z", "step_x"))
