"""SABA — Stochastic Average Bilevel Algorithm (Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022;
docs/baselines.rst §5). NumPy reference, batched over replicas.

SOBA (§4) with each of its five stochastic directions replaced by a SAGA estimator over the
finite sums. Following benchmark_bilevel (§5 CODE) the SAGA units are the contiguous
minibatches of a :class:`~refbilevel.oracles.finite_sum.FiniteSumOracle` (``draw_batch``:
indices, batch id u, weight w_u = B/n). Per family φ ∈ {∇_y G, ∇²_yy G z, ∇²_xy G z}
(inner batch id) and {∇_y F, ∇_x F} (outer batch id) a table M[u] (one row per batch and
replica) and its weighted mean M̄ = Σ_u w_u M[u] are kept:

    given fresh φ_u:  dir = φ_u − M[u] + M̄;   M̄ ← M̄ + w_u (φ_u − M[u]);   M[u] ← φ_u

then y ← y − ρ dir_gy, z ← z − ρ (dir_hvp − dir_fy), x ← x − γ (dir_fx − dir_cross).
With the "uniform" sampler (units drawn uniformly) the direction is unbiased; with
"shuffled" (the benchmark's) batches are visited without replacement within each pass.

Sign convention: the paper and the benchmark write v = −z (v ← v − ρ(dir_hvp(v) + dir_fy));
the HVP and cross products are linear in v, so the +z tables here hold the negatives of the
benchmark's and the iterates x, y are the same. ``v0`` is given in the paper's convention
(default 0) and the final v = −z is returned in ``trace.extra["v"]``.

Memory initialisation ``init_memory`` (§5 CODE ``mode_init_memory``): "zero" (default;
tables and means start at 0) or "full" (one pass over every batch at (x_0, y_0, z_0); those
n_inner/B × 3 + n_outer/B × 2 calls are counted by the oracle, with no new samples). Memory:
(#batches + 1) rows per family and replica.

Oracle calls per iteration (X3; §0.2 "SABA (3, 2)"): grad_y_g 1, hvp 1, jvp 1 (one inner
batch), grad_y_f 1, grad_x_f 1 (one outer batch); 2 samples.

Modes:
- ``"tuned"`` (benchmark_bilevel CODE, §5): constant ρ = s, γ = s/r; defaults s = 0.1, r = 1.
- ``"theory"`` (PAPER §5, recalled): ρ = c_rho (n + m)^{-2/3}, γ = c_gamma (n + m)^{-2/3} with
  n = n_inner, m = n_outer samples. The constants c_rho, c_gamma are NOT RECOVERED: pass them
  in ``theory_constants``.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms import _baselines as B
from refbilevel.algorithms.soba import initial_z
from refbilevel.algorithms.trace import Trace
from refbilevel.backends.registry import register

INIT_MEMORY = ("zero", "full")


def saba_params(oracle, mode, step_size, outer_ratio, theory_constants):
    B.require_mode(mode)
    if mode == "tuned":
        s = B.positive("step_size", step_size)
        r = B.positive("outer_ratio", outer_ratio)
        return s, s / r, {"mode": mode, "step_size": s, "outer_ratio": r}
    c = B.theory_constants("SABA", "§5", theory_constants, ("c_rho", "c_gamma"))
    scale = float(oracle.problem.n_inner + oracle.problem.n_outer) ** (-2.0 / 3.0)
    rho, gamma = c["c_rho"] * scale, c["c_gamma"] * scale
    return rho, gamma, {"mode": mode, **c, "rho": rho, "gamma": gamma}


class _Saga:
    """One SAGA family: table (R, n_units, d), mean (R, d)."""

    def __init__(self, R: int, n_units: int, d: int):
        self.M = np.zeros((R, n_units, d))
        self.mean = np.zeros((R, d))
        self.rows = np.arange(R)

    def direction(self, phi, mb):
        """(dir, new mean) for fresh φ on the minibatch ``mb`` (tables not yet written)."""
        old = self.M[self.rows, mb.unit]
        diff = phi - old
        return diff + self.mean, self.mean + mb.weight[:, None] * diff

    def commit(self, phi, mb, new_mean, active):
        """Write φ and the new mean for the active (non-diverged) replicas only."""
        r = self.rows[active]
        self.M[r, mb.unit[active]] = phi[active]
        self.mean = np.where(active[:, None], new_mean, self.mean)


def check_saba_inputs(oracle, init_memory: str) -> None:
    """The input checks every SABA backend makes first, in this order (same messages)."""
    B.require_oracle(oracle)
    if not hasattr(oracle, "draw_batch"):
        raise ValueError(
            "SABA needs a finite-sum oracle with per-batch access (FiniteSumOracle.draw_batch: "
            f"indices, batch id and weight; docs/baselines.rst §5); got {type(oracle).__name__}"
        )
    if init_memory not in INIT_MEMORY:
        raise ValueError(f"init_memory must be one of {', '.join(map(repr, INIT_MEMORY))}; "
                         f"got {init_memory!r}")


@register("algorithm", "saba", "numpy")
def run_saba(oracle, x0, y0, *, T: int, mode: str = "tuned", step_size: float = 0.1,
             outer_ratio: float = 1.0, init_memory: str = "zero", v0=None,
             theory_constants: dict | None = None, record_every: int = 1,
             seed: int | None = None) -> Trace:
    """Run SABA for T iterations from (x0, y0) (R replicas) with a FiniteSumOracle; see the
    module docstring."""
    check_saba_inputs(oracle, init_memory)
    rho, gamma, params = saba_params(oracle, mode, step_size, outer_ratio, theory_constants)
    params["init_memory"] = init_memory
    T = B.iterations(T)
    x, y, R = B.start_points(oracle, x0, y0)
    z = initial_z(oracle, v0, R)
    P = oracle.problem
    nin, nout = oracle.n_units("inner"), oracle.n_units("outer")
    gy_t, hv_t, cr_t = _Saga(R, nin, P.d_y), _Saga(R, nin, P.d_y), _Saga(R, nin, P.d_x)
    fy_t, fx_t = _Saga(R, nout, P.d_y), _Saga(R, nout, P.d_x)
    if init_memory == "full":
        _fill(oracle, x, y, z, R, (gy_t, hv_t, cr_t), (fy_t, fx_t))
    rec = B.recorder(oracle, R, record_every)
    rec.record(0, x, y, oracle.counts, force=True)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, T + 1):
            mi = oracle.draw_batch("inner", (R,))
            phis = {"gy": oracle.grad_y_g(x, y, sample=mi),
                    "hv": oracle.hvp_yy_g(x, y, z, sample=mi),
                    "cr": oracle.jvp_xy_g(x, y, z, sample=mi)}
            mo = oracle.draw_batch("outer", (R,))
            phis["fy"] = oracle.grad_y_f(x, y, sample=mo)
            phis["fx"] = oracle.grad_x_f(x, y, sample=mo)
            tables = {"gy": (gy_t, mi), "hv": (hv_t, mi), "cr": (cr_t, mi), "fy": (fy_t, mo),
                      "fx": (fx_t, mo)}
            dirs, means = {}, {}
            for k, (tab, mb) in tables.items():
                dirs[k], means[k] = tab.direction(phis[k], mb)
            new = (x - gamma * (dirs["fx"] - dirs["cr"]), y - rho * dirs["gy"],
                   z - rho * (dirs["hv"] - dirs["fy"]))
            x, y, z = B.freeze(rec, t, new + tuple(phis.values()), (x, y, z) + tuple(
                phis.values()))[:3]
            act = rec.active
            for k, (tab, mb) in tables.items():
                tab.commit(phis[k], mb, means[k], act)
            rec.record(t, x, y, oracle.counts, force=t == T)
        # metrics of huge-but-finite iterates may overflow to inf (not NaN): no warning
        return rec.finish("saba", "numpy", params, seed, v=-z)


def _fill(oracle, x, y, z, R, inner, outer):
    """init_memory="full": one pass over every batch at (x_0, y_0, z_0) (§5 CODE)."""
    for level, tabs in (("inner", inner), ("outer", outer)):
        for u in range(oracle.n_units(level)):
            mb = oracle.unit_batch(level, np.full(R, u))
            if level == "inner":
                phis = (oracle.grad_y_g(x, y, sample=mb), oracle.hvp_yy_g(x, y, z, sample=mb),
                        oracle.jvp_xy_g(x, y, z, sample=mb))
            else:
                phis = (oracle.grad_y_f(x, y, sample=mb), oracle.grad_x_f(x, y, sample=mb))
            for tab, phi in zip(tabs, phis, strict=True):
                tab.M[:, u] = phi
                tab.mean = tab.mean + mb.weight[:, None] * phi


# ---- solver record ------------------------------------------------------------------------------
def _default_options(sc):
    """SABA "default" (docs/baselines.rst §5): the paper's constant steps ρ, γ with the values of
    SOBA's default (ρ = 1/L_y, γ = min(ρμ/L_φ, 1/(4L_φ)); the SAGA directions are unbiased, so the
    single-loop two-timescale condition is SOBA's); ``init_memory="full"`` so that no early
    direction is biased by zero memory. Constants: μ, L_y, L_φ of the finite-sum problem
    (global)."""
    gamma = B.single_loop_outer_step(sc)
    return {"step_size": 1.0 / sc.L_y, "outer_ratio": 1.0 / (sc.L_y * gamma),
            "init_memory": "full"}


def _horizon(sc, options):
    """ln(1e3)/(γ m_φ) (SABA converges linearly under a PL condition, §5)."""
    from refbilevel.solver_record import horizon

    return horizon(options["step_size"] / options["outer_ratio"] * sc.m_phi)


def _finite_sum():
    from refbilevel.solver_record import FINITE_SUM

    return (FINITE_SUM,)


SOLVER = B.baseline_record("saba", run_saba, "docs/baselines.rst §5", _default_options, _horizon,
                           assumptions_extra=_finite_sum(), parity=B.PARITY_FINITE_SUM)
