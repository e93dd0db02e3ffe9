"""SOBA — StOchastic Bilevel Algorithm (Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022;
docs/baselines.rst §4). NumPy reference, batched over replicas.

All three directions are evaluated at the same point (x_t, y_t, z_t) (simultaneous update):

    D_y = ∇_y G(x_t, y_t; ζ)
    D_z = ∇²_yy G(x_t, y_t; ζ) z_t − ∇_y F(x_t, y_t; ξ)
    D_x = ∇_x F(x_t, y_t; ξ) − ∇²_xy G(x_t, y_t; ζ) z_t
    y_{t+1} = y_t − ρ_t D_y,   z_{t+1} = z_t − ρ_t D_z,   x_{t+1} = x_t − γ_t D_x

Sign convention: the paper and benchmark_bilevel write v = −z (D_v = ∇²G v + ∇_y F,
D_x = ∇_x F + ∇²_xy G v). Internally this module uses +z (docs/baselines.rst §0.1); the boundary
converts: ``v0`` is given in the paper's convention (default 0) and the final v = −z is
returned in ``trace.extra["v"]``. Both conventions give the same iterates x_t, y_t.

Samples (docs/baselines.rst §4 CODE): one inner sample ζ gives D_y, the HVP and the cross product,
one outer sample ξ gives (∇_y F, ∇_x F). With a FiniteSumOracle these are shared minibatches;
a GaussianOracle has independent noise per kind (one block per call).

Oracle calls per iteration (X3; docs/baselines.rst §0.2 "SOBA = (3, 2)"): grad_y_g 1, hvp 1,
jvp 1 (the 3 inner), grad_y_f 1, grad_x_f 1 (the 2 outer). GaussianOracle draw order (the
Numba kernel reproduces it): ∇_y G, HVP, JVP, ∇_y F, ∇_x F.

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §4): ρ_t = s/t^{e_in}, γ_t = (s/r)/t^{e_out} with the
  benchmark's exponents (0.5, 0.5) and defaults s = 0.1, r = 1.
- ``"theory"`` (PAPER, §4, recalled): ρ_t = ρ̄ t^{-1/2}, γ_t = γ̄ t^{-1/2}. The constants ρ̄, γ̄
  are NOT RECOVERED as functions of the problem constants: pass
  ``theory_constants={"rho_bar": ..., "gamma_bar": ...}``.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import as_vector_batch


def soba_params(oracle, mode, step_size, outer_ratio, exponents, theory_constants):
    """(rho_c, rho_e, gamma_c, gamma_e, params) for both backends."""
    B.require_mode(mode)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        e_in, e_out = B.exponent_pair(exponents)
        params = {"mode": mode, "step_size": s, "outer_ratio": r, "exponents": (e_in, e_out)}
        return s, e_in, s / r, e_out, params
    c = B.theory_constants("SOBA", "§4", theory_constants, ("rho_bar", "gamma_bar"))
    params = {"mode": mode, **c, "exponents": (0.5, 0.5)}
    return c["rho_bar"], 0.5, c["gamma_bar"], 0.5, params


def initial_z(oracle, v0, R):
    """z_0 = −v_0 (the boundary conversion of the v = −z convention)."""
    if v0 is None:
        return np.zeros((R, oracle.problem.d_y))
    v = np.asarray(v0, dtype=np.float64)
    v = np.broadcast_to(as_vector_batch("v0", v, oracle.problem.d_y), (R, oracle.problem.d_y))
    return -v.copy()


@register("algorithm", "soba", "numpy")
def run_soba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
             outer_ratio: float = 1.0, exponents: tuple[float, float] = (0.5, 0.5),
             v0=None, theory_constants: dict | None = None, record_every: int = 1,
             seed: int | None = None) -> Trace:
    """Run SOBA for T iterations from (x0, y0) (R replicas); see the module docstring.

    Parameters
    ----------
    oracle : GaussianOracle or FiniteSumOracle (its Generator supplies every random number).
    x0, y0 : (R, d_x), (R, d_y) start points, one row per replica.
    T : number of iterations (>= 0).
    mode : "tuned" (benchmark schedule) or "theory" (paper schedule; needs theory_constants).
    step_size, outer_ratio, exponents : s, r and (e_inner, e_outer) of the tuned schedule.
    v0 : initial v in the paper's v = −z convention, (d_y,) or (R, d_y); default 0.
    record_every : record the trace every this many iterations (and at T).
    seed : recorded in the trace only (randomness comes from ``oracle.rng``).
    """
    B.require_oracle(oracle)
    rc, re, gc, ge, params = soba_params(oracle, mode, step_size, outer_ratio, exponents,
                                         theory_constants)
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = initial_z(oracle, v0, R)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            rho, gamma = B.decay(rc, re, t), B.decay(gc, ge, t)
            b = B.shared_sample(oracle, "grad_y_g", R)
            dy = oracle.grad_y_g(x, y, sample=b)
            hz = oracle.hvp_yy_g(x, y, z, sample=b)
            cz = oracle.jvp_xy_g(x, y, z, sample=b)
            fy, fx = B.outer_gradients(oracle, x, y, R)
            new = (x - gamma * (fx - cz), y - rho * dy, z - rho * (hz - fy))
            x, y, z = B.freeze(rec, t, new, (x, y, z))
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("soba", "numpy", params, seed, v=-z)


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """SOBA "default" (docs/baselines.rst §4): the paper's steps ρ_t, γ_t taken constant (the
    deterministic limit of ρ̄ t^{-1/2}: with noise the constant steps reach a noise floor
    instead of the O(log T/√T) rate), ρ = 1/L_y (the inner recursions for y and z contract
    by 1 − μ/L_y) and γ = min(ρμ/L_φ, 1/(4L_φ)) (:func:`~refbilevel.algorithms._baselines.
    single_loop_outer_step`); in the benchmark's parametrization step_size = ρ,
    outer_ratio = ρ/γ, exponents (0, 0). Constants: μ, L_y, L_φ of the problem
    (global; :class:`~refbilevel.solver_record.StepConstants`)."""
    gamma = B.single_loop_outer_step(sc)
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * gamma),
            "exponents": (0.0, 0.0)}


def _horizon(sc, options):
    """ln(1e3)/(γ m_φ): three decades of ||∇φ|| at the outer rate γ m_φ."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi)


SOLVER = B.baseline_record("soba", run_soba, "docs/baselines.rst §4", _default_options, _horizon)
