"""ALSET — ALternating Stochastic gradient dEscenT (Chen, Sun, Yin, NeurIPS 2021, "Closing the
gap: tighter analysis of alternating stochastic gradient methods for bilevel problems";
docs/baselines.rst §17). NumPy reference, batched over replicas, "+z" convention.

Plain SGD on both levels, alternating, the lower level warm-started, single timescale:

    y^{k,0} = y^k;  y^{k,t+1} = y^{k,t} − β ∇_y G(x^k, y^{k,t}; φ^{k,t}),  t = 0..T_ll − 1
    y^{k+1} = y^{k,T_ll}
    x^{k+1} = x^k − α h^k,  h^k = ∇_x F(x^k, y^{k+1}; ξ^k) − ∇²_xy G(x^k, y^{k+1}; φ_0^k) z^k

with z^k the Neumann estimate of [∇²_yy G]^{-1} ∇_y F(x^k, y^{k+1}; ξ^k), step η:

- ``neumann="randomized"`` (PAPER, §17): z = N η Π_{n=1}^{N'} (I − η ∇²_yy G(·; φ_n)) ∇_y F
  with N' ~ Uniform{0, ..., N − 1} (the convention of GW18's estimator, §1: the paper's range
  of N' is NOT RECOVERED, {0..N−1} is our choice, as the §17 reference implementation
  says); realized N' in ``trace.extra["hia_p"]``;
- ``neumann="fixed"``: z = η Σ_{q=0}^{N−1} (I − η ∇²_yy G(·; φ_q)) ⋯ ∇_y F (stocBiO's NS_{N−1},
  N − 1 HVPs on fresh samples), the expectation of the randomized estimate at full batch
  (check (ii) of §17) — the fixed-length linear-system solve of the BSGM authors' ALSET
  baseline, with stocBiO's start (§17 CODE starts their SGD at ∇_y F).

Every sample is independent (φ's, ξ; ξ shared by ∇_x F and ∇_y F); no projection. With
T_ll = 1, constant steps and ``neumann="randomized"`` this is TTSA's iteration (§3) with
constant single-timescale steps (check (i) of §17; tested against
:func:`refbilevel.algorithms.ttsa.run_ttsa` on a GaussianOracle, where TTSA draws every sample
fresh too).

Oracle calls per iteration (X3; §17): grad_y_g T_ll, grad_y_f 1, grad_x_f 1, jvp 1, hvp N'
(randomized; max over the replicas of a batched run, as TTSA) or N − 1 (fixed).
Random-number order: the T_ll lower-level samples, the outer sample(s) (∇_y F, ∇_x F),
N' (one ``rng.integers(0, N, R)``; randomized only), the HVP samples, the JVP sample.

Modes:

- ``"tuned"``: constant β = s, α = s/r, η = ``neumann_step`` (default 1/ℓ_{g,1} = 1/L_y of
  the problem, the paper's choice); ALSET is not in benchmark_bilevel and the paper's
  constants are NOT RECOVERED, so the defaults s = 0.1, r = 1, T_ll = 1, N = 10 are
  TTSA's benchmark values (§3);
- ``"theory"`` (PAPER, §17, recalled): α = c_alpha/√K, β = c_beta α (same order),
  N = max(1, ⌈c_N ln(K + 1)⌉) over a run of K = T iterations, η = 1/L_y; the constants
  are NOT RECOVERED: pass ``theory_constants={"c_alpha": ..., "c_beta": ..., "c_N": ...}``.
"""

from __future__ import annotations

import math

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register
from refbilevel.validation import require_int

NEUMANN = ("randomized", "fixed")


def alset_params(oracle, mode, T, step_size, outer_ratio, n_inner_steps, n_hia_steps,
                 neumann_step, neumann, theory_constants):
    """The validated params record of a run (both backends): β ``lower_step``, α
    ``outer_step``, η ``eta``, N ``n_hia_steps``."""
    B.require_mode(mode)
    if neumann not in NEUMANN:
        raise ValueError(f"neumann must be one of {', '.join(map(repr, NEUMANN))}; "
                         f"got {neumann!r}")
    T_ll = require_int("n_inner_steps", n_inner_steps, low=1)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        N = require_int("n_hia_steps", n_hia_steps, low=1)
        eta = (B.problem_constant(oracle, "L_y", "ALSET", "§17") ** -1 if neumann_step is None
               else B.positive("neumann_step", neumann_step))
        params = {"mode": mode, "step_size": s, "outer_ratio": r, "lower_step": s,
                  "outer_step": s / r}
    else:
        c = B.theory_constants("ALSET", "§17", theory_constants, ("c_alpha", "c_beta", "c_N"))
        K = max(T, 1)
        alpha = c["c_alpha"] / math.sqrt(K)
        N = max(1, math.ceil(c["c_N"] * math.log(K + 1)))
        eta = 1.0 / B.problem_constant(oracle, "L_y", "ALSET", "§17")
        params = {"mode": mode, **c, "lower_step": c["c_beta"] * alpha, "outer_step": alpha}
    randomized = neumann == "randomized"
    params.update({"n_inner_steps": T_ll, "n_hia_steps": N, "eta": eta, "neumann": neumann,
                   "randomized_neumann": randomized,
                   "fixed_neumann_hvps": 0 if randomized else N - 1})
    return params


def fixed_neumann(oracle, x, y, w, N: int, eta: float, bad: np.ndarray) -> np.ndarray:
    """NS_{N−1}: η Σ_{q=0}^{N−1} u_q, u_0 = w, u_q = u_{q−1} − η ∇²_yy G(x, y; fresh) u_{q−1}."""
    u = B.guard(w, bad)
    s = u
    for _ in range(N - 1):
        u = B.guard(u - eta * oracle.hvp_yy_g(x, y, u), bad)
        s = s + u
    return B.guard(eta * s, bad)


@register("algorithm", "alset", "numpy")
def run_alset(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
              outer_ratio: float = 1.0, n_inner_steps: int = 1, n_hia_steps: int = 10,
              neumann_step: float | None = None, neumann: str = "randomized",
              theory_constants: dict | None = None, record_every: int = 1,
              seed: int | None = None) -> Trace:
    """Run ALSET for T outer iterations from (x0, y0) (R replicas); see the module docstring.
    ``n_inner_steps`` = T_ll (the paper's T), ``n_hia_steps`` = N, ``neumann_step`` = η."""
    B.require_oracle(oracle)
    T = B.iterations(T)
    params = alset_params(oracle, mode, T, step_size, outer_ratio, n_inner_steps, n_hia_steps,
                          neumann_step, neumann, theory_constants)
    beta, alpha, eta = params["lower_step"], params["outer_step"], params["eta"]
    T_ll, N = params["n_inner_steps"], params["n_hia_steps"]
    x, y, R = B.start_points(oracle, x0, y0)
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    ps = np.zeros((T, R), dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            bad = np.zeros(R, dtype=bool)
            yn = B.sgd_block(oracle, x, y, T_ll, beta, bad)
            fy, fx = B.outer_gradients(oracle, x, yn, R)
            if params["randomized_neumann"]:
                z, ps[t - 1] = B.hia(oracle, x, yn, fy, N, eta, R, bad)
            else:
                z = fixed_neumann(oracle, x, yn, fy, N, eta, bad)
            xn = x - alpha * (fx - oracle.jvp_xy_g(x, yn, B.guard(z, bad)))
            x, y = B.freeze(rec, t, (xn, yn), (x, y), bad)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        extra = {"hia_p": ps} if params["randomized_neumann"] else {}
        return rec.finish("alset", "numpy", params, seed, **extra)


# ---- solver record ------------------------------------------------------------------------------
#: the Neumann truncation bias (1 − μ/L_y)^N of the default (see _default_options)
DEFAULT_BIAS = 1e-3


def _default_options(sc):
    """ALSET "default" (docs/baselines.rst §17; the paper's constants ᾱ_1, ᾱ_2, c are NOT
    RECOVERED). Constants μ, L_y, L_φ, m_φ of the problem (global;
    :class:`~refbilevel.solver_record.StepConstants`).

    * single timescale, constant steps (the deterministic limit of α, β = Θ(1/√K)):
      β = 1/L_y, one lower-level step per iteration (T_ll = 1, allowed by the paper), and
      α = min(βμ/L_φ, 1/(4L_φ)) (:func:`~refbilevel.algorithms._baselines.
      single_loop_outer_step`: β = cα with c = β/α ≥ L_φ/μ, the lower level tracking y*(x)
      faster than x moves);
    * η = 1/L_y (the paper's 1/ℓ_{g,1}) and N = ⌈κ ln 1e3⌉ (N = O(log K) in the paper;
      here the truncation bias (1 − 1/κ)^N ≤ 1e-3);
    * ``neumann="fixed"``: the expectation of the randomized truncation (§17 check (ii)).
      The randomized estimate's variance grows linearly in N (§17 audit of check (iii)) and
      does not vanish at the solution, so with constant steps it leaves a floor on ||∇φ||
      (TTSA's STALLED matrix cells); the paper's estimator is one option away
      (``neumann="randomized"``).
    """
    gamma = B.single_loop_outer_step(sc)
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * gamma),
            "n_inner_steps": 1,
            "n_hia_steps": int(math.ceil(sc.kappa * math.log(1.0 / DEFAULT_BIAS))),
            "neumann_step": 1.0 / sc.L_y, "neumann": "fixed"}


def _horizon(sc, options):
    """ln(1e3)/(α m_φ)."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi)


SOLVER = B.baseline_record("alset", run_alset, "docs/baselines.rst §17", _default_options,
                           _horizon)
