"""X2: every stochastic oracle is unbiased with the configured variance (docs/checks.rst X2;
oracle assumptions: docs/unibio.rst §2.3 (Assumption 3.4), docs/borep.rst §8, docs/fdehbo.rst §5,
§10.1,
docs/sid_bsgm.rst §4.1, §14.1, docs/baselines.rst §0.2, §10.2).

Oracles and what "configured" means for each (exact values, no estimation):

- GaussianOracle (refbilevel/oracles/gaussian.py), every kind (∇_x f, ∇_y f, ∇_x g, ∇_y g,
  HVP, JVP, f_u, H v and Hᵀ v), each with its own std σ_k: exact value + N(0, σ_k² I);
- FiniteSumOracle (refbilevel/oracles/finite_sum.py), every kind, three samplers: B indices
  i.i.d. uniform with replacement (covariance Σ_pop / B, Σ_pop the population covariance of
  the per-sample quantities, computed exactly from all n of them), one contiguous batch with
  a uniform id (draw_batch, SABA's units), and the first batch of a shuffled pass (both:
  the population covariance of the n/B batch means); the mean is the full-data quantity;
- ContractionOracle (refbilevel/oracles/contraction.py, SID's oracle, docs/sid_bsgm.rst §14.1):
  Φ(w, λ; ζ) with covariance (s_Z²||w||² + s_Y²||λ||² + s_ε²) I, ∂₁Φᵀv: s_Z²||v||² I,
  ∂₂Φᵀv: s_Y²||v||² I, (∇₁E, ∇₂E)(ξ): Σ_ξ (identity, and a correlated Σ_ξ);
- MatrixNoiseOracle (refbilevel/oracles/matrix_noise.py, docs/fdehbo.rst §10.1), every kind: the
  covariances of its module docstring, e.g. (s²/2)(||v||² I + v vᵀ) for the HVP.

Test (per oracle output, R i.i.d. replicas at a fixed point; R = 2e4 quick, 2e5 full):
- mean, per coordinate: |mean - exact| <= c SE, SE = sample sd / √R (the sample SE, so the
  mean test does not assume the variance claim);
- variance, per coordinate: Gaussian-noise oracles (Gaussian, contraction, matrix noise: the
  noise is linear in Gaussian draws, so each coordinate is exactly normal) use the exact
  chi-square band (R-1)s²/σ² ∈ [χ²_{α/2}, χ²_{1-α/2}] on R-1 degrees of freedom (the SE of
  s² is σ²√(2/(R-1)), ~1% at R = 2e4); the finite-sum outputs are discrete, not normal, so
  their s² is compared with σ² at c standard errors, SE(s²) = sd((x - x̄)²)/√R;
- covariance, each off-diagonal entry: the mean of (x_a - x̄_a)(x_b - x̄_b) at c SE.
False-positive rate: with K comparisons in all (reported; ~450 quick, ~600 full), each is
made at level α = 1e-3/K (Bonferroni) and c = max(4.5, t_{R-1} quantile at 1 - α/2)
(≈ 4.7-4.8): the family-wise false-positive rate is <= 1e-3. The mean tests are Student-t
(exact for the normal outputs), the chi-square bands exact; the remaining z-tests are
two-sided normal approximations at R >= 2e4, where the O(R^{-1/2}) skewness terms of the
Edgeworth expansion cancel between the two tails and the O(1/R) remainder is a few percent
of α. The intervals the verdict reports (mean ± c SE, the variance-ratio intervals) are
therefore simultaneous 99.9% intervals.

Negative controls (same test, same c and α; each must be rejected):
- a GaussianOracle subclass whose ∇_y g adds a bias of (c + 3.1) SE per coordinate (so each
  coordinate alone is rejected with probability >= 0.999; 5 SE would not be reliable at
  c ≈ 4.7);
- the ∇_y g noise std misconfigured by a factor 1.5 (variance ratio 2.25);
- a FiniteSumOracle that never samples the last quarter of the data (biased);
- a FiniteSumOracle that samples each minibatch without replacement (variance Σ_pop/B times
  (n - B)/(n - 1) = 0.89, not the configured Σ_pop/B);
- the contraction oracle with s_ε misconfigured by a factor 1.5;
- a MatrixNoiseOracle that does not symmetrize E_ζ (HVP noise E v instead of ½(E + Eᵀ)v).

The ``backend`` argument is recorded only: the oracles are NumPy objects; the noise drawn
inside the Numba/CuPy kernels is compared with them in claim X4.

Problem-generic (refbilevel.checks.problem_selection): the GaussianOracle cases above also run
over the default instance of every other registered BilevelProblem with d_x, d_y <= 20 (the
covariance test makes d² comparisons per output), a user's included; ``--problem NAME`` runs
the GaussianOracle cases on the named problems instead of every claim case (the negative
controls always run, on their own instances).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import chdtri

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import t_quantile
from refbilevel.checks.problem_selection import Selection, is_bilevel, select_problems
from refbilevel.oracles import GaussianOracle, MatrixNoiseOracle, NoiseConfig
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.oracles.finite_sum import KIND_LEVEL, FiniteSumOracle
from refbilevel.problems.contraction import LinearContraction, golden_instance
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.progress import track
from refbilevel.randomness import named_stream

CLAIM = ClaimInfo(
    id="X2",
    claim="every stochastic oracle (Gaussian, finite-sum minibatch, SID contraction, matrix "
          "noise) is unbiased with the configured (co)variance",
    source="docs/checks.rst X2; docs/unibio.rst §2.3; docs/sid_bsgm.rst §4.1, §14.1; "
        "docs/fdehbo.rst §10.1; "
           "docs/baselines.rst §0.2, §10.2",
    evidence=(Evidence("statistical", "family-wise over all comparisons", fpr=1e-3),),
)

FWER = 1e-3
Z_MIN = 4.5
ESCAPE_Z = 3.1  # P(N(0, 1) < -3.1) < 1e-3: the bias control's per-coordinate miss rate
STD_FACTOR = 1.5
R_QUICK, R_FULL = 20_000, 200_000

# per-kind stds of the Gaussian oracle (distinct, so a kind using another's std is caught)
GAUSSIAN_STD = NoiseConfig(grad_x_f=0.3, grad_y_f=0.5, grad_x_g=0.7, grad_y_g=0.9, hvp=1.1,
                           jvp=1.3, gen_hvp=0.6, f_u=0.4)


# ---- statistics ---------------------------------------------------------------------------------
@dataclass
class Case:
    """R i.i.d. outputs of one oracle call at a fixed point and what they should be."""

    oracle: str
    name: str
    samples: np.ndarray  # (R, m)
    mean: np.ndarray  # (m,) exact value
    cov: np.ndarray  # (m, m) configured covariance
    gaussian: bool  # each coordinate exactly normal (chi-square variance band)

    @property
    def n_comparisons(self) -> int:
        m = self.mean.size
        return m + m + m * (m - 1) // 2


def thresholds(K: int, R: int) -> tuple[float, float]:
    """(alpha per comparison, critical value c) for K comparisons at family-wise FWER."""
    alpha = FWER / K
    return alpha, max(Z_MIN, float(t_quantile(1.0 - alpha, R - 1)))


def evaluate(case: Case, alpha: float, c: float) -> dict:
    """The mean, variance and covariance comparisons of one case (module docstring)."""
    X = np.asarray(case.samples, dtype=np.float64)
    R, m = X.shape
    xbar = X.mean(axis=0)
    dev = X - xbar
    s2 = np.sum(dev * dev, axis=0) / (R - 1)
    se = np.sqrt(s2 / R)
    bias = xbar - case.mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z_mean = np.where(se > 0, bias / np.where(se > 0, se, 1.0),
                          np.where(bias == 0, 0.0, np.inf))
    sig2 = np.diagonal(case.cov).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sig2 > 0, s2 / np.where(sig2 > 0, sig2, 1.0),
                         np.where(s2 == 0, 1.0, np.inf))
    if case.gaussian:
        lo = float(chdtri(R - 1, 1.0 - alpha / 2) / (R - 1))
        hi = float(chdtri(R - 1, alpha / 2) / (R - 1))
        var_ok = (ratio >= lo) & (ratio <= hi)
        ratio_ci = np.stack([ratio / hi, ratio / lo], axis=-1)
        var_stat = {"method": "chi-square band", "band": [lo, hi]}
    else:
        q = dev * dev
        se_var = q.std(axis=0, ddof=1) / np.sqrt(R)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_var = np.where(se_var > 0, (s2 - sig2) / np.where(se_var > 0, se_var, 1.0),
                             np.where(s2 == sig2, 0.0, np.inf))
        var_ok = np.abs(z_var) <= c
        half = c * se_var / np.where(sig2 > 0, sig2, 1.0)
        ratio_ci = np.stack([ratio - half, ratio + half], axis=-1)
        var_stat = {"method": "z-test, SE(s²) = sd((x - x̄)²)/√R",
                    "max_abs_z": float(np.max(np.abs(z_var)))}
    iu = np.triu_indices(m, 1)
    if iu[0].size:
        prods = dev[:, iu[0]] * dev[:, iu[1]]
        est = prods.sum(axis=0) / (R - 1)
        se_c = prods.std(axis=0, ddof=1) / np.sqrt(R)
        diff = est - case.cov[iu]
        with np.errstate(divide="ignore", invalid="ignore"):
            z_cov = np.where(se_c > 0, diff / np.where(se_c > 0, se_c, 1.0),
                             np.where(np.abs(diff) <= 1e-15, 0.0, np.inf))
        max_z_cov = float(np.max(np.abs(z_cov)))
    else:
        max_z_cov = 0.0
    mean_ok = bool(np.all(np.abs(z_mean) <= c))
    variance_ok = bool(np.all(var_ok))
    cov_ok = max_z_cov <= c
    return {
        "oracle": case.oracle, "case": case.name, "dim": m, "R": R,
        "comparisons": case.n_comparisons,
        "max_abs_mean_z": float(np.max(np.abs(z_mean))),
        "mean_bias": bias.tolist(), "mean_ci": np.stack([bias - c * se, bias + c * se],
                                                        axis=-1).tolist(),
        "variance_ratio": ratio.tolist(), "variance_ratio_ci": ratio_ci.tolist(),
        "variance_test": var_stat, "max_abs_cov_z": max_z_cov,
        "mean_ok": mean_ok, "variance_ok": variance_ok, "covariance_ok": bool(cov_ok),
        "passed": mean_ok and variance_ok and bool(cov_ok),
    }


def _tile(a, R):
    return np.broadcast_to(np.asarray(a, dtype=np.float64), (R, np.size(a)))


# ---- Gaussian oracle --------------------------------------------------------------------------
GAUSSIAN_CALLS: dict[str, tuple[str, Callable]] = {
    # method -> (noise kind, call(oracle or problem, x, y, v))
    "grad_x_f": ("grad_x_f", lambda o, x, y, v: o.grad_x_f(x, y)),
    "grad_y_f": ("grad_y_f", lambda o, x, y, v: o.grad_y_f(x, y)),
    "grad_x_g": ("grad_x_g", lambda o, x, y, v: o.grad_x_g(x, y)),
    "grad_y_g": ("grad_y_g", lambda o, x, y, v: o.grad_y_g(x, y)),
    "hvp_yy_g": ("hvp", lambda o, x, y, v: o.hvp_yy_g(x, y, v)),
    "jvp_xy_g": ("jvp", lambda o, x, y, v: o.jvp_xy_g(x, y, v)),
    "f_u": ("f_u", lambda o, x, y, v: o.f_u(x, y)),
    "gen_hvp": ("gen_hvp", lambda o, x, y, v: o.gen_hvp(x, y, v)),
    "gen_hvp_T": ("gen_hvp", lambda o, x, y, v: o.gen_hvp_T(x, y, v)),
}


class BiasedGaussianOracle(GaussianOracle):
    """Negative control: ∇_y g carries a deterministic bias ``bias`` (per coordinate)."""

    def __init__(self, problem, noise, rng, bias: float):
        super().__init__(problem, noise, rng)
        self.bias = bias

    def grad_y_g(self, x, y, sample=None):
        return super().grad_y_g(x, y, sample) + self.bias


def _gaussian_point(P, rng):
    x = rng.uniform(-1, 1, P.d_x)
    y = rng.choice([-1.0, 1.0], P.d_y) * rng.uniform(0.3, 1.0, P.d_y)
    return x, y, rng.standard_normal(P.d_y)


def gaussian_cases(P, label, seed, R) -> list[Case]:
    x, y, v = _gaussian_point(P, named_stream(seed, f"X2/gaussian-point/{label}"))
    X, Y, V = _tile(x, R), _tile(y, R), _tile(v, R)
    out = []
    for method, (kind, call) in GAUSSIAN_CALLS.items():
        o = GaussianOracle(P, GAUSSIAN_STD, named_stream(seed, f"X2/gaussian/{label}/{method}"))
        exact = np.asarray(call(P, x, y, v), dtype=np.float64)
        std = getattr(GAUSSIAN_STD, kind)
        out.append(Case("GaussianOracle", f"{label}: {method}", call(o, X, Y, V), exact,
                        std**2 * np.eye(exact.size), True))
    return out


# ---- finite-sum oracle ------------------------------------------------------------------------
FS_CALLS: dict[str, tuple[str, Callable]] = {
    # kind -> (problem batch method, call(oracle, x, y, v, sample))
    "grad_x_f": ("grad_x_f_batch", lambda o, x, y, v, s: o.grad_x_f(x, y, sample=s)),
    "grad_y_f": ("grad_y_f_batch", lambda o, x, y, v, s: o.grad_y_f(x, y, sample=s)),
    "f_u": ("grad_y_f_batch", lambda o, x, y, v, s: o.f_u(x, y, sample=s)),
    "grad_x_g": ("grad_x_g_batch", lambda o, x, y, v, s: o.grad_x_g(x, y, sample=s)),
    "grad_y_g": ("grad_y_g_batch", lambda o, x, y, v, s: o.grad_y_g(x, y, sample=s)),
    "hvp": ("hvp_yy_g_batch", lambda o, x, y, v, s: o.hvp_yy_g(x, y, v, sample=s)),
    "jvp": ("jvp_xy_g_batch", lambda o, x, y, v, s: o.jvp_xy_g(x, y, v, sample=s)),
    "gen_hvp": ("hvp_yy_g_batch", lambda o, x, y, v, s: o.gen_hvp(x, y, v, sample=s)),
}
FS_FULL = {"grad_x_f": "grad_x_f", "grad_y_f": "grad_y_f", "f_u": "f_u", "grad_x_g": "grad_x_g",
           "grad_y_g": "grad_y_g", "hvp": "hvp_yy_g", "jvp": "jvp_xy_g", "gen_hvp": "gen_hvp"}
FS_BATCH = 8


def finite_sum_problem() -> FiniteSumQuadratic:
    return FiniteSumQuadratic(n_inner=64, n_outer=48, d_inner=3, d_outer=2, seed=3)


def _per_sample(P, kind, x, y, v) -> np.ndarray:
    """Every per-sample quantity q_i of ``kind`` at (x, y, v), shape (n, m)."""
    method = getattr(P, FS_CALLS[kind][0])
    n = P.n_inner if KIND_LEVEL[kind] == "inner" else P.n_outer
    idx = np.arange(n)[:, None]
    args = (x, y, v) if kind in ("hvp", "jvp", "gen_hvp") else (x, y)
    return method(*(np.broadcast_to(a, (n, a.size)) for a in args), idx)


def _population_cov(q: np.ndarray) -> np.ndarray:
    dev = q - q.mean(axis=0)
    return dev.T @ dev / q.shape[0]


class DroppingFiniteSumOracle(FiniteSumOracle):
    """Negative control: minibatch indices never reach the last quarter of the data."""

    def draw(self, kind, batch_shape):
        self.counts.add("samples")
        n = self.n[KIND_LEVEL[kind]]
        return self.rng.integers(0, n - n // 4, size=tuple(batch_shape) + (self.batch_size,))


class WithoutReplacementFiniteSumOracle(FiniteSumOracle):
    """Negative control: each minibatch has B distinct indices (variance ×(n-B)/(n-1))."""

    def draw(self, kind, batch_shape):
        self.counts.add("samples")
        n = self.n[KIND_LEVEL[kind]]
        keys = self.rng.random(tuple(batch_shape) + (n,))
        return np.argpartition(keys, self.batch_size, axis=-1)[..., :self.batch_size]


def finite_sum_cases(seed, R, kinds=tuple(FS_CALLS), samplers=("uniform", "unit", "shuffled"),
                     oracle_cls=FiniteSumOracle, label="FiniteSumOracle") -> list[Case]:
    P = finite_sum_problem()
    rng = named_stream(seed, "X2/finite-sum-point")
    x, y, v = rng.uniform(-1, 1, P.d_x), rng.uniform(-1, 1, P.d_y), rng.standard_normal(P.d_y)
    X, Y, V = _tile(x, R), _tile(y, R), _tile(v, R)
    B = FS_BATCH
    out = []
    for kind in kinds:
        q = _per_sample(P, kind, x, y, v)
        full_method = getattr(P, FS_FULL[kind])
        exact = np.asarray(full_method(x, y, v) if kind in ("hvp", "jvp", "gen_hvp")
                           else full_method(x, y))
        units = q.reshape(-1, B, q.shape[-1]).mean(axis=1)  # contiguous batch means
        for sampler in samplers:
            o = oracle_cls(P, B, named_stream(seed, f"X2/{label}/{sampler}/{kind}"),
                           sampler="shuffled" if sampler == "shuffled" else "uniform")
            if sampler == "uniform":
                sample, cov = None, _population_cov(q) / B
            else:
                sample = o.draw_batch(KIND_LEVEL[kind], (R,))
                cov = _population_cov(units)
            out.append(Case(label, f"{sampler}: {kind}", FS_CALLS[kind][1](o, X, Y, V, sample),
                            exact, cov, False))
    return out


# ---- contraction oracle -----------------------------------------------------------------------
def contraction_problems() -> list[tuple[str, LinearContraction]]:
    g = golden_instance().problem
    L = np.array([[1.0, 0, 0, 0, 0], [0.5, 0.8, 0, 0, 0], [-0.3, 0.2, 0.6, 0, 0],
                  [0.4, 0, -0.5, 0.7, 0], [0, 0.3, 0.2, -0.4, 0.5]])
    corr = LinearContraction(g.A, g.B, g.c, g.P, g.Q, g.S, g.p, g.s, s_Z=g.s_Z, s_Y=g.s_Y,
                             s_eps=g.s_eps, Sigma_xi=L @ L.T)
    return [("golden", g), ("golden, correlated Σ_ξ", corr)]


def contraction_cases(prob, label, seed, R, configured=None) -> list[Case]:
    """``configured``: the problem whose noise levels the outputs are compared with (the
    oracle's own problem unless a control misconfigures it)."""
    cfg = prob if configured is None else configured
    rng = named_stream(seed, f"X2/contraction-point/{label}")
    d, n = prob.d, prob.n
    w, lam, v = rng.standard_normal(d), rng.uniform(-1, 1, n), rng.standard_normal(d)
    W, Lam, V = _tile(w, R), _tile(lam, R), _tile(v, R)
    o = ContractionOracle(prob, named_stream(seed, f"X2/contraction/{label}"))
    e1, e2 = prob.grad_E(w, lam)
    phi_var = cfg.s_Z**2 * (w @ w) + cfg.s_Y**2 * (lam @ lam) + cfg.s_eps**2
    g1, g2 = o.grad_E(W, Lam, o.draw_xi(R))
    return [
        Case("ContractionOracle", f"{label}: Φ(w, λ; ζ)", o.phi_map(W, Lam, o.draw_zeta(R)),
             prob.phi_map(w, lam), phi_var * np.eye(d), True),
        Case("ContractionOracle", f"{label}: ∂₁Φᵀv", o.vjp_w(W, Lam, V, o.draw_zeta(R, "Z")),
             prob.vjp_w(w, lam, v), cfg.s_Z**2 * (v @ v) * np.eye(d), True),
        Case("ContractionOracle", f"{label}: ∂₂Φᵀv", o.vjp_lam(W, Lam, V, o.draw_zeta(R, "Y")),
             prob.vjp_lam(w, lam, v), cfg.s_Y**2 * (v @ v) * np.eye(n), True),
        Case("ContractionOracle", f"{label}: (∇₁E, ∇₂E)(ξ)", np.concatenate([g1, g2], axis=1),
             np.concatenate([e1, e2]), cfg.Sigma_xi, True),
    ]


# ---- matrix-noise oracle ----------------------------------------------------------------------
MN_S, MN_SIGMA_U = 0.4, 0.7


def matrix_noise_problem() -> StronglyConvexQuadratic:
    return StronglyConvexQuadratic(d_x=3, d_y=4, mu=0.5, L=2.0, seed=3, k_range=(0.2, 1.0),
                                   f_range=(0.3, 1.0), rho=0.5)


def _sym_cov(a, s):
    """Cov(½(E + Eᵀ) a) with E_ij ~ N(0, s²): (s²/2)(||a||² I + a aᵀ)."""
    return 0.5 * s**2 * (a @ a * np.eye(a.size) + np.outer(a, a))


class UnsymmetrizedMatrixNoiseOracle(MatrixNoiseOracle):
    """Negative control: the lower-level noise matrix is E_ζ, not ½(E_ζ + E_ζᵀ)."""

    @staticmethod
    def _sym_apply(E, v):
        return np.einsum("...ij,...j->...i", E, v)


def matrix_noise_cases(seed, R, oracle_cls=MatrixNoiseOracle, methods=None,
                       label="MatrixNoiseOracle") -> list[Case]:
    P = matrix_noise_problem()
    rng = named_stream(seed, "X2/matrix-noise-point")
    x, y, v = rng.uniform(-1, 1, P.d_x), rng.uniform(-1, 1, P.d_y), rng.standard_normal(P.d_y)
    X, Y, V = _tile(x, R), _tile(y, R), _tile(v, R)
    s, su = MN_S, MN_SIGMA_U
    dx, dy = P.d_x, P.d_y
    cov = {"grad_x_f": su**2 * np.eye(dx), "grad_y_f": su**2 * np.eye(dy),
           "f_u": su**2 * np.eye(dy), "grad_x_g": s**2 * (y @ y) * np.eye(dx),
           "grad_y_g": _sym_cov(y, s) + s**2 * (x @ x) * np.eye(dy),
           "hvp_yy_g": _sym_cov(v, s), "jvp_xy_g": s**2 * (v @ v) * np.eye(dx),
           "gen_hvp": _sym_cov(v, s), "gen_hvp_T": _sym_cov(v, s)}
    out = []
    for method in (methods or GAUSSIAN_CALLS):
        call = GAUSSIAN_CALLS[method][1]
        o = oracle_cls(P, s, su, named_stream(seed, f"X2/{label}/{method}"))
        out.append(Case(label, method, call(o, X, Y, V),
                        np.asarray(call(P, x, y, v), dtype=np.float64), cov[method], True))
    return out


# ---- measure ----------------------------------------------------------------------------------
PROBLEM_GENERIC = True
#: registry problems with a case of their own above (their own oracle, or the table)
COVERED = ("uniformly-convex-nonseparable", "finite-sum-quadratic", "linear-contraction",
           "ridge-contraction")
MAX_D = 20


def applies(problem) -> str | None:
    reason = is_bilevel(problem)
    if reason is None and max(problem.d_x, problem.d_y) > MAX_D:
        reason = (f"dimension {max(problem.d_x, problem.d_y)} > {MAX_D} (d² covariance "
                  "comparisons per output)")
    return reason


def claim_cases(mode: str, seed: int, R: int,
                problems: list[str] | None = None) -> tuple[list[Case], Selection]:
    sel = select_problems("X2", problems, applies, covered=COVERED)
    gauss = [] if sel.explicit else [("non-separable d_y=3 d_x=2 p=4",
                                      NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=1))]
    if mode == "full" and not sel.explicit:
        gauss += [("Example 3 p=4", UniBiOExample3(4)),
                  ("separable d=4 p=2.5", SeparableUniformlyConvex(d=4, p=2.5))]
    gauss += [(label, P) for _, label, P in sel.instances]
    stages: list[tuple[str, Callable[[], list[Case]]]] = [
        (f"Gaussian {lab}", lambda P=P, lab=lab: gaussian_cases(P, lab, seed, R))
        for lab, P in gauss]
    if not sel.explicit:
        stages.append(("finite-sum", lambda: finite_sum_cases(seed, R)))
        stages += [(f"contraction {lab}", lambda P=P, lab=lab: contraction_cases(P, lab, seed,
                                                                                R))
                   for lab, P in contraction_problems()]
        stages.append(("matrix noise", lambda: matrix_noise_cases(seed, R)))
    cases: list[Case] = []
    for _, make in track(stages, "X2 oracles", note=lambda s: s[0]):
        cases += make()
    return cases, sel


def control_cases(seed: int, R: int, alpha: float, c: float) -> list[tuple[str, Case]]:
    P = NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0, seed=1)
    x, y, v = _gaussian_point(P, named_stream(seed, "X2/control-point"))
    X, Y = _tile(x, R), _tile(y, R)
    std = GAUSSIAN_STD.grad_y_g
    exact = P.grad_y_g(x, y)
    bias = (c + ESCAPE_Z) * std / np.sqrt(R)
    biased = BiasedGaussianOracle(P, GAUSSIAN_STD, named_stream(seed, "X2/control/bias"), bias)
    wide = GaussianOracle(P, NoiseConfig(grad_y_g=STD_FACTOR * std),
                          named_stream(seed, "X2/control/std"))
    g = golden_instance().problem
    g_wrong = LinearContraction(g.A, g.B, g.c, g.P, g.Q, g.S, g.p, g.s, s_Z=g.s_Z, s_Y=g.s_Y,
                                s_eps=STD_FACTOR * g.s_eps, Sigma_xi=g.Sigma_xi)
    out = [
        (f"GaussianOracle ∇_y g with a bias of (c + {ESCAPE_Z}) SE = {bias:.3g} per coordinate",
         Case("GaussianOracle", "biased grad_y_g", biased.grad_y_g(X, Y), exact,
              std**2 * np.eye(exact.size), True)),
        (f"GaussianOracle ∇_y g noise std {STD_FACTOR} × the configured {std}",
         Case("GaussianOracle", "misconfigured std grad_y_g", wide.grad_y_g(X, Y), exact,
              std**2 * np.eye(exact.size), True)),
        ("FiniteSumOracle sampling only the first 3/4 of the data (∇_y g)",
         finite_sum_cases(seed, R, kinds=("grad_y_g",), samplers=("uniform",),
                          oracle_cls=DroppingFiniteSumOracle, label="control dropping")[0]),
        ("FiniteSumOracle sampling minibatches without replacement (∇_y g)",
         finite_sum_cases(seed, R, kinds=("grad_y_g",), samplers=("uniform",),
                          oracle_cls=WithoutReplacementFiniteSumOracle,
                          label="control no replacement")[0]),
        (f"ContractionOracle with s_ε {STD_FACTOR} × the configured (Φ(w, λ; ζ))",
         contraction_cases(g_wrong, "control s_eps", seed, R, configured=g)[0]),
        ("MatrixNoiseOracle without symmetrizing E_ζ (HVP)",
         matrix_noise_cases(seed, R, UnsymmetrizedMatrixNoiseOracle, ("hvp_yy_g",),
                            label="control unsymmetrized")[0]),
    ]
    return out


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy",
            problems: list[str] | None = None) -> Measurement:
    R = R_FULL if mode == "full" else R_QUICK
    cases, selection = claim_cases(mode, seed, R, problems)
    K = sum(cs.n_comparisons for cs in cases)
    alpha, c = thresholds(K, R)
    rows = [evaluate(cs, alpha, c) for cs in track(cases, "X2 tests", note=lambda cs: cs.name)]
    ctrl_rows = []
    for label, cs in track(control_cases(seed, R_QUICK, *thresholds(K, R_QUICK)),
                           "X2 controls", note=lambda t: t[0]):
        r = evaluate(cs, *thresholds(K, R_QUICK))
        ctrl_rows.append({"control": label, "rejected": not r["passed"], **{
            k: r[k] for k in ("max_abs_mean_z", "variance_ratio", "variance_ratio_ci",
                              "max_abs_cov_z", "mean_ok", "variance_ok", "covariance_ok")}})
    per_oracle: dict[str, dict] = {}
    for r in rows:
        agg = per_oracle.setdefault(r["oracle"], {"cases": 0, "comparisons": 0,
                                                  "max_abs_mean_z": 0.0, "variance_ratio": [
                                                      np.inf, -np.inf], "max_abs_cov_z": 0.0,
                                                  "failed": []})
        agg["cases"] += 1
        agg["comparisons"] += r["comparisons"]
        agg["max_abs_mean_z"] = max(agg["max_abs_mean_z"], r["max_abs_mean_z"])
        agg["max_abs_cov_z"] = max(agg["max_abs_cov_z"], r["max_abs_cov_z"])
        agg["variance_ratio"] = [min(agg["variance_ratio"][0], min(r["variance_ratio"])),
                                 max(agg["variance_ratio"][1], max(r["variance_ratio"]))]
        if not r["passed"]:
            agg["failed"].append(r["case"])
    return Measurement(
        passed=all(r["passed"] for r in rows),
        control_rejected=bool(ctrl_rows) and all(cr["rejected"] for cr in ctrl_rows),
        measured={
            "per_oracle": per_oracle,
            "per_case": rows, "registry": selection.report(),
            "replicas": R, "comparisons": K, "alpha_per_comparison": alpha,
            "critical_value": c,
            "uncertainty": {
                "mean_bias, mean_ci": f"per coordinate mean - exact with the simultaneous "
                                      f"interval ± c SE (c = {c:.3f}, Student-t on R - 1 = "
                                      f"{R - 1} df at level 1 - α, α = {alpha:.2e} = "
                                      f"{FWER:g}/K): all intervals hold jointly with "
                                      f"probability >= {1 - FWER:.1%}",
                "variance_ratio, variance_ratio_ci": "s²/σ²_configured per coordinate; "
                                                     "interval for σ²_true/σ²_configured "
                                                     "from the chi-square law (normal "
                                                     "outputs) or ± c SE(s²) (finite-sum), "
                                                     "simultaneous at the same level",
                "max_abs_mean_z, max_abs_cov_z": "test statistics (in standard errors); the "
                                                 "decision compares them with c",
                "exact values and configured covariances": "exact (closed forms, and the "
                                                           "full population for the "
                                                           "finite-sum oracle)"}},
        bound={"mean": f"|mean - exact| <= c SE per coordinate, c = {c:.3f}",
               "variance": "chi-square band at level α (normal outputs), |s² - σ²| <= c "
                           "SE(s²) (finite-sum)",
               "covariance": "|cov_ab - Σ_ab| <= c SE per off-diagonal entry",
               "family_wise_false_positive_rate": f"<= {FWER:g} (Bonferroni over K = {K})"},
        control={"description": "biased ∇_y g, noise std × 1.5, a finite-sum sampler that "
                                "drops data, sampling without replacement, s_ε × 1.5 in the "
                                "contraction oracle, unsymmetrized matrix noise: each must be "
                                "rejected by the same test (R = 2e4, same α and c)",
                 "per_control": ctrl_rows},
        notes=[f"R = {R} replicas per case (controls: {R_QUICK})",
               "gen_hvp_T of FiniteSumOracle is gen_hvp (H symmetric at p = 2): one case",
               f"backend {backend!r} recorded only: the oracles are NumPy objects; kernel "
               "noise is claim X4"],
        figure_data={"rows": rows, "controls": ctrl_rows, "c": c},
    )


def plot(m: Measurement, fig) -> None:
    from matplotlib.lines import Line2D

    ax1, ax2 = fig.subplots(1, 2)
    rows, ctrl, c = m.figure_data["rows"], m.figure_data["controls"], m.figure_data["c"]
    # colours per oracle from the default cycle, skipping red: the controls are red crosses
    palette = ["C0", "C1", "C2", "C4", "C5", "C6", "C8", "C9"]
    colors = {o: palette[i % len(palette)]
              for i, o in enumerate(dict.fromkeys(r["oracle"] for r in rows))}
    idx = np.arange(len(rows))
    for o, col in colors.items():
        sel = [i for i, r in enumerate(rows) if r["oracle"] == o]
        ax1.scatter(idx[sel], [rows[i]["max_abs_mean_z"] for i in sel], s=14, color=col,
                    marker="o")
        ax1.scatter(idx[sel], [rows[i]["max_abs_cov_z"] for i in sel], s=40, color=col,
                    marker="+", linewidths=1.2)
    ctrl_mean = [cr["max_abs_mean_z"] for cr in ctrl]
    ax1.scatter(np.full(len(ctrl), len(rows) + 2), ctrl_mean, marker="x", s=40,
                color="tab:red")
    ax1.axhline(c, color="k", ls="--")
    # the legend names the marker shapes (what is measured) and the colours (which oracle)
    handles = ([Line2D([], [], ls="", marker="o", color="gray", label="max |mean z| (dots)"),
                Line2D([], [], ls="", marker="+", ms=8, mew=1.2, color="gray",
                       label="max |cov z| (+)"),
                Line2D([], [], ls="", marker="x", color="tab:red", label="controls, mean z (x)"),
                Line2D([], [], ls="--", color="k", label=f"c = {c:.2f} (FWER 1e-3)")]
               + [Line2D([], [], ls="", marker="s", color=col, label=o)
                  for o, col in colors.items()])
    ax1.set_yscale("log")
    ax1.set_xlabel("case")
    ax1.set_ylabel("standard errors")
    ax1.legend(handles=handles, fontsize=8, ncol=2, loc="lower right")
    for i, r in enumerate(rows):
        ci = np.asarray(r["variance_ratio_ci"])
        ax2.vlines(np.full(len(ci), i), ci[:, 0], ci[:, 1], color=colors[r["oracle"]], lw=0.6)
        ax2.scatter(np.full(len(ci), i), r["variance_ratio"], s=4, color=colors[r["oracle"]])
    for j, cr in enumerate(ctrl):
        ax2.scatter(np.full(len(cr["variance_ratio"]), len(rows) + 2 + j),
                    cr["variance_ratio"], marker="x", color="tab:red",
                    label="controls" if j == 0 else None)
    ax2.axhline(1.0, color="k", ls="--", label="configured")
    ax2.set_xlabel("case (dots and bars: ratio, simultaneous 99.9% interval)")
    ax2.set_ylabel("sample variance / configured variance")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8)

if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.x2_oracle_unbiasedness"))
