"""BSGM: bilevel stochastic gradient method with SID hypergradients and no warm start
(Grazzi, Pontil, Salzo, JMLR 2023, Algorithm 2; docs/sid_bsgm.rst §5), NumPy reference
batched over replicas.

    for s = 0..T-1:
        ĝ_s     = SID(λ_s; t_s, k_s, J_s, w_0, η)      fresh independent samples, LL from w_0,
                                                         LS from 0 (no warm start, §4.2, §5)
        λ_{s+1} = P_Λ(λ_s − α ĝ_s)                      projected inexact gradient step (20)

Schedules (§5 table; :func:`bsgm_schedule`):

| ``schedule``      | t_s                           | k_s   | J_s   | default η_i            |
|-------------------|-------------------------------|-------|-------|------------------------|
| ``"finite"``      | T                             | = t_s | = t_s | 3/(3+i) (Theorem S)    |
| ``"increasing"``  | s + 1                         | = t_s | = t_s | 3/(3+i)                |
| ``"deterministic"`` | ⌈log(s+1)/log(1/q)⌉         | = t_s | 1     | 1                      |

α defaults to 1/L_f (``problem.constants.extra["L_f"]``; Corollary 13'). The step sequence
restarts in every SID call (the §14.4 convention). Constraint sets: :class:`Box`,
:class:`Ball` or None (Λ = R^n, where G_α = ∇f).

What is recorded (:class:`BSGMTrace`, the §14.4 test): for every replica and s, the exact
proximal gradient mapping ||G_α(λ_s)||² (Definition 11, from the closed-form ∇f), the
realized error ||Δ_s||² = ||ĝ_s − ∇f(λ_s)||², f(λ_s) and the cumulative sample count
Σ(t_s + k_s + 2J_s) (Definition 15). :meth:`BSGMTrace.corollary13` evaluates the pathwise
Corollary 13' inequality (Theorem 12' with α = 1/L, ε = L/2) on every path.

Random numbers: only through the SID estimator (``refbilevel.estimators.sid``; its own draw
order), one call per outer iteration for all replicas at once. The Numba backend
(:mod:`refbilevel.algorithms.bsgm_numba`) runs the same loop with SID's Numba kernel, which
draws the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refbilevel.backends import register
from refbilevel.backends.registry import implementation
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.sid_moments import StepSchedule
from refbilevel.validation import require_int, require_range, require_vector

__all__ = [
    "Ball",
    "Box",
    "BSGMTrace",
    "bsgm",
    "bsgm_schedule",
    "bsgm_total_samples",
    "constrained_minimum",
    "corollary13",
    "proximal_gradient_mapping",
    "run_bsgm",
]

SCHEDULES = ("finite", "increasing", "deterministic")


# ---- constraint sets --------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """Λ = [low, high] (coordinate-wise; scalars broadcast). P_Λ = clip."""

    low: Any
    high: Any

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.low, dtype=float), np.asarray(self.high, dtype=float)
        if lo.ndim > 1 or hi.ndim > 1:
            raise ValueError("Box low and high must be scalars or 1-D arrays")
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ValueError("Box low and high must be finite")
        if np.any(lo > hi):
            raise ValueError(f"Box needs low <= high coordinate-wise, got low={self.low}, "
                             f"high={self.high}")

    def project(self, lam: np.ndarray) -> np.ndarray:
        return np.clip(lam, np.asarray(self.low, float), np.asarray(self.high, float))

    def describe(self) -> str:
        return f"box [{self.low}, {self.high}]"


@dataclass(frozen=True)
class Ball:
    """Λ = B(center, radius) (Euclidean). P_Λ(u) = c + (u − c) min(1, r/||u − c||)."""

    center: Any
    radius: float

    def __post_init__(self) -> None:
        c = np.asarray(self.center, dtype=float)
        if c.ndim > 1 or not np.all(np.isfinite(c)):
            raise ValueError("Ball center must be a finite scalar or 1-D array")
        require_range("radius", self.radius, low=0.0)

    def project(self, lam: np.ndarray) -> np.ndarray:
        c = np.asarray(self.center, dtype=float)
        d = lam - c
        nrm = np.sqrt(np.sum(d * d, axis=-1))
        r = float(self.radius)
        scale = np.where(nrm > r, r / np.where(nrm > r, nrm, 1.0), 1.0)
        return c + d * scale[..., None]

    def describe(self) -> str:
        return f"ball B({self.center}, {self.radius})"


def _project(constraint, lam: np.ndarray) -> np.ndarray:
    return lam if constraint is None else constraint.project(lam)


def proximal_gradient_mapping(problem, lam, alpha: float, constraint=None) -> np.ndarray:
    """G_α(λ) = (λ − P_Λ(λ − α∇f(λ)))/α (Definition 11, docs/sid_bsgm.rst §10); = ∇f when Λ =
    R^n."""
    alpha = require_range("alpha", alpha, low=0.0, low_inclusive=False)
    lam = np.asarray(lam, dtype=float)
    return (lam - _project(constraint, lam - alpha * problem.grad_f(lam))) / alpha


def constrained_minimum(problem, constraint, lam0, *, alpha: float | None = None,
                        tol: float = 1e-13, max_iter: int = 200000) -> tuple[np.ndarray, float]:
    """(λ*, f*) by exact projected gradient descent from ``lam0`` (how docs/sid_bsgm.rst §14.4's
    values were computed). For convex f this is the minimum over Λ; otherwise a stationary
    point, and f* is then only an estimate of inf_Λ f (the caller must say so)."""
    L = float(problem.constants.extra["L_f"])
    a: float = 1.0 / L if alpha is None else float(alpha)
    lam = _project(constraint, np.asarray(lam0, dtype=float).copy())
    for _ in range(max_iter):
        new = _project(constraint, lam - a * problem.grad_f(lam))
        if np.linalg.norm(new - lam) <= tol * max(1.0, float(np.linalg.norm(lam))):
            lam = new
            break
        lam = new
    return lam, float(problem.f(lam))


# ---- schedules ----------------------------------------------------------------------------------
def bsgm_schedule(schedule: str | Callable[[int], tuple[int, int, int]], s: int, T: int,
                  q: float) -> tuple[int, int, int]:
    """(t_s, k_s, J_s) of outer iteration s (docs/sid_bsgm.rst §5 table, DERIVED readings).

    ``"finite"``: (T, T, T) (Theorem 16'(ii)); ``"increasing"``: (s+1, s+1, s+1) (Theorem
    16'(i)); ``"deterministic"``: t_s = k_s = ⌈log(s+1)/log(1/q)⌉, J_s = 1 (Theorem 17', so
    q^{t_s} ≤ 1/(s+1)); or a callable s ↦ (t, k, J).
    """
    if callable(schedule):
        t, k, J = schedule(s)
        return (require_int("t_s", t, low=0), require_int("k_s", k, low=0),
                require_int("J_s", J, low=1))
    if schedule == "finite":
        return T, T, T
    if schedule == "increasing":
        return s + 1, s + 1, s + 1
    if schedule == "deterministic":
        if not 0.0 < q < 1.0:
            raise ValueError(f"the deterministic schedule needs 0 < q < 1, got q={q:g}")
        # the tiny slack keeps exact powers (log(s+1)/log(1/q) integral) from rounding up
        tk = max(0, math.ceil(math.log(s + 1) / math.log(1.0 / q) - 1e-12))
        return tk, tk, 1
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} or a callable; "
                     f"got {schedule!r}")


def bsgm_total_samples(schedule, T: int, q: float = 0.5) -> int:
    """Σ_{s<T} (t_s + k_s + 2J_s), BSGM's sample complexity (Definition 15, docs/sid_bsgm.rst §11):
    4T² (finite), 2T(T+1) (increasing)."""
    tot = 0
    for s in range(T):
        t, k, J = bsgm_schedule(schedule, s, T, q)
        tot += t + k + 2 * J
    return tot


# ---- the record ---------------------------------------------------------------------------------
@dataclass
class BSGMTrace:
    """One BSGM run over R replicas (see the module docstring). Arrays are indexed by s.

    ``lam`` (T+1, R, n); ``grad_map_sq`` (T+1, R) = ||G_α(λ_s)||² from the exact ∇f;
    ``delta_sq`` (T, R) = ||ĝ_s − ∇f(λ_s)||²; ``f`` (T+1, R); ``samples`` (T+1,) cumulative
    per replica (Definition 15); ``counts`` the oracle's per-kind counts of the run.
    """

    algorithm: str
    backend: str
    params: dict[str, Any]
    seed: int | None
    lam: np.ndarray
    grad_map_sq: np.ndarray
    delta_sq: np.ndarray
    f: np.ndarray
    samples: np.ndarray
    counts: dict[str, int]
    diverged_at: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def T(self) -> int:
        return self.delta_sq.shape[0]

    @property
    def diverged(self) -> np.ndarray:
        return self.diverged_at >= 0

    def summary(self) -> str:
        """One line, in the form of :meth:`refbilevel.algorithms.trace.Trace.summary`."""
        R = self.diverged_at.size
        last = self.grad_map_sq[-1]
        final = (f"final mean ||G_alpha||^2 = {np.nanmean(last):.3e}"
                 if np.isfinite(last).any() else "no finite final ||G_alpha||^2")
        msg = f"{self.algorithm} [{self.backend}] T={self.T}, R={R}: {final}"
        nd = int(self.diverged.sum())
        if nd:
            msg += (f"; {nd}/{R} replicas DIVERGED (first at iteration "
                    f"{int(self.diverged_at[self.diverged].min())})")
        return msg

    def theorem12(self, f_star: float, L: float, eps: float) -> dict[str, np.ndarray]:
        """Theorem 12' (pathwise) on every replica: with c_α = 1/α − L/2 − ε/2 > 0,

            (1/T)Σ_{s<T}||G_α(λ_s)||² ≤ 2(f(λ_0) − f*)/(α²c_αT) + (1/(α²c_αε) + 2)(1/T)Σ||Δ_s||².

        Returns lhs, rhs and margin = rhs − lhs per replica (arrays of shape (R,))."""
        a = float(self.params["alpha"])
        c_a = 1.0 / a - L / 2.0 - eps / 2.0
        if c_a <= 0:
            raise ValueError(f"Theorem 12' needs c_alpha = 1/alpha - L/2 - eps/2 > 0, got "
                             f"{c_a:g}")
        T = self.T
        lhs = self.grad_map_sq[:T].mean(axis=0)
        rhs = (2.0 * (self.f[0] - f_star) / (a * a * c_a * T)
               + (1.0 / (a * a * c_a * eps) + 2.0) * self.delta_sq.mean(axis=0))
        return {"lhs": lhs, "rhs": rhs, "margin": rhs - lhs}

    def corollary13(self, f_star: float, L: float | None = None,
                    scale: float = 1.0) -> dict[str, np.ndarray]:
        """Corollary 13' on every path (α = 1/L, docs/sid_bsgm.rst §10):

            (1/T)Σ_{s<T}||G_{1/L}(λ_s)||² ≤ 8L(f(λ_0) − f*)/T + (10/T)Σ_{s<T}||Δ_s||²,

        the deterministic inequality of Theorem 12' applied to the realized errors. ``L``
        defaults to 1/α (the run must have used α = 1/L). ``scale`` multiplies the right
        side (the S5 NEGATIVE CONTROL uses 1/10, which must be violated somewhere)."""
        return corollary13(self.grad_map_sq, self.delta_sq, self.f[0],
                           float(self.params["alpha"]), f_star, L=L, scale=scale)


def corollary13(grad_map_sq, delta_sq, f0, alpha: float, f_star: float,
                L: float | None = None, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Corollary 13' on every path from a run's arrays (see :meth:`BSGMTrace.corollary13`):
    ``grad_map_sq`` (≥ T, R) the ||G_α(λ_s)||² of s = 0, 1, ..., ``delta_sq`` (T, R) the
    realized ||Δ_s||², ``f0`` (R,) f(λ_0). The Trace of :func:`refbilevel.solve` holds them
    as ``extra["grad_map_sq"]`` (every record; record_every = 1 for the whole path),
    ``extra["delta_sq"]``, ``extra["f"][0]``."""
    a = float(alpha)
    L = 1.0 / a if L is None else float(L)
    if not math.isclose(a * L, 1.0, rel_tol=1e-12):
        raise ValueError(f"Corollary 13' needs alpha = 1/L; got alpha={a:g}, L={L:g}")
    delta_sq = np.asarray(delta_sq)
    T = delta_sq.shape[0]
    if np.asarray(grad_map_sq).shape[0] < T:
        raise ValueError(f"grad_map_sq must hold the {T} steps of the path (a trace recorded "
                         "with record_every = 1)")
    lhs = np.asarray(grad_map_sq)[:T].mean(axis=0)
    det = 8.0 * L * (np.asarray(f0) - f_star) / T
    rhs = scale * (det + 10.0 * delta_sq.mean(axis=0))
    return {"lhs": lhs, "rhs": rhs, "margin": rhs - lhs, "deterministic_part": det}


# ---- the algorithm ------------------------------------------------------------------------------
def run_bsgm(oracle: ContractionOracle, lam0, T: int, *, alpha: float | None = None,
             schedule: str | Callable = "finite", steps: Any = None, constraint=None,
             w0=None, replicas: int | None = None, seed: int | None = None,
             sid_backend: str = "numpy") -> BSGMTrace:
    """BSGM (Algorithm 2) with SID from the named backend; see :func:`bsgm`."""
    if not isinstance(oracle, ContractionOracle):
        raise ValueError(f"oracle must be a ContractionOracle, got {type(oracle).__name__}")
    problem = oracle.problem
    T = require_int("T", T, low=1)
    n = oracle.n
    q = float(problem.constants.extra.get("q", np.nan))
    if alpha is None:
        alpha = 1.0 / float(problem.constants.extra["L_f"])  # Corollary 13': α = 1/L_f
    alpha = require_range("alpha", alpha, low=0.0, low_inclusive=False)
    if not (callable(schedule) or schedule in SCHEDULES):
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)} or a callable; "
                         f"got {schedule!r}")
    if steps is None:
        # Theorem S steps (β = γ = 3 satisfy §8's conditions on the §14.1 instance);
        # η ≡ 1 for the deterministic schedule (Theorem 17')
        steps = 1.0 if schedule == "deterministic" else StepSchedule.decreasing(3.0, 3.0)
    if constraint is not None and not isinstance(constraint, (Box, Ball)):
        raise ValueError(f"constraint must be a Box, a Ball or None, got "
                         f"{type(constraint).__name__}")
    lam = np.asarray(lam0, dtype=float)
    if lam.ndim == 1:
        require_vector("lam0", lam, n)
        R = 1 if replicas is None else require_int("replicas", replicas, low=1)
        lam = np.tile(lam, (R, 1))
    elif lam.ndim == 2 and lam.shape[1] == n:
        R = lam.shape[0]
        if replicas is not None and require_int("replicas", replicas, low=1) != R:
            raise ValueError(f"replicas={replicas} disagrees with lam0's {R} rows")
        lam = lam.copy()
    else:
        raise ValueError(f"lam0 must have shape ({n},) or (R, {n}), got {lam.shape}")
    if not np.all(np.isfinite(lam)):
        raise ValueError("lam0 must be finite")
    lam = _project(constraint, lam)  # λ_0 ∈ Λ
    sid = implementation("estimator", "sid", sid_backend)
    base = oracle.counts.copy()
    lams = [lam.copy()]
    ghats = []
    samples = [0]
    cumulative = [(oracle.counts - base).as_dict()]  # per kind, after each outer step
    div = np.full(R, -1, dtype=np.int64)
    sched_used = []
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for s in range(T):
            t, k, J = bsgm_schedule(schedule, s, T, q)
            sched_used.append((t, k, J))
            # fresh samples, LL from w_0 and LS from 0 in every call: no warm start (§5)
            g = sid(oracle, lam, t, k, J, steps=steps, w0=w0, replicas=R).value
            ghats.append(g)
            new = _project(constraint, lam - alpha * g)
            bad = ~np.all(np.isfinite(new), axis=-1) & (div < 0)
            div[bad] = s
            lam = np.where((div < 0)[:, None], new, lam)
            lams.append(lam.copy())
            samples.append(samples[-1] + t + k + 2 * J)
            cumulative.append((oracle.counts - base).as_dict())
        # exact diagnostics for the whole path in one batched call each (the closed-form ∇f
        # is the expensive part per call, not per point)
        L_arr = np.array(lams)  # (T+1, R, n)
        gf = problem.grad_f(L_arr)
        G = (L_arr - _project(constraint, L_arr - alpha * gf)) / alpha  # Definition 11
        gms = np.sum(G * G, axis=-1)
        fs = problem.f(L_arr)
        dsq = np.sum((np.array(ghats) - gf[:-1]) ** 2, axis=-1)
    params = {"T": T, "alpha": alpha, "schedule": schedule if isinstance(schedule, str)
              else "custom", "steps": repr(steps), "constraint": None if constraint is None
              else constraint.describe(), "q": q, "sid_backend": sid_backend}
    return BSGMTrace(
        algorithm="bsgm", backend=sid_backend, params=params, seed=seed,
        lam=L_arr, grad_map_sq=gms, delta_sq=dsq, f=fs, samples=np.array(samples),
        counts=(oracle.counts - base).as_dict(),
        diverged_at=div, extra={"schedule_tkJ": sched_used, "R": R,
                                "cumulative_counts": {k: np.array([c[k] for c in cumulative])
                                                      for k in cumulative[0]}},
    )


@register("algorithm", "bsgm", "numpy")
def bsgm(oracle: ContractionOracle, lam0, T: int, *, alpha: float | None = None,
         schedule: str | Callable = "finite", steps: Any = None, constraint=None, w0=None,
         replicas: int | None = None, seed: int | None = None) -> BSGMTrace:
    """BSGM (Algorithm 2; docs/sid_bsgm.rst §5) for T outer iterations from ``lam0``.

    ``oracle``: a :class:`~refbilevel.oracles.contraction.ContractionOracle` over a
    :class:`~refbilevel.problems.contraction.LinearContraction`; ``lam0`` (n,) with
    ``replicas`` = R, or (R, n); ``alpha`` (default 1/L_f); ``schedule`` one of
    ``"finite"``, ``"increasing"``, ``"deterministic"`` or a callable s ↦ (t, k, J);
    ``steps`` the SID step sizes (default 3/(3+i), or 1 for the deterministic schedule);
    ``constraint`` a :class:`Box`, a :class:`Ball` or None; ``w0`` the LL start (default 0).
    Returns a :class:`BSGMTrace`.
    """
    return run_bsgm(oracle, lam0, T, alpha=alpha, schedule=schedule, steps=steps,
                    constraint=constraint, w0=w0, replicas=replicas, seed=seed,
                    sid_backend="numpy")


# ---- solver record ------------------------------------------------------------------------------
def _linear_lower_level(problem) -> bool:
    """A linear contraction, or a quadratic bilevel problem whose gradient-descent map is one
    (dense H = ∇²_yy g, K, F available: :func:`_as_contraction`)."""
    from refbilevel.problems.contraction import LinearContraction

    if isinstance(problem, LinearContraction):
        return True
    c = problem.constants
    return (all(hasattr(problem, a) for a in ("dense_H", "dense_K", "dense_F", "h", "y_ref",
                                               "r", "rho"))
            and float(c.p) == 2.0 and (c.mu or 0) > 0)


def _as_contraction(problem):
    """The problem BSGM runs on: a linear contraction as it is; a strongly convex quadratic
    g = ½yᵀHy − yᵀ(Kx + h), f = ½(y − y_ref)ᵀF(y − y_ref) + ½ρ||x||² + xᵀr through the
    gradient-descent map Φ(w, λ) = w − (1/L)(Hw − Kλ − h) (docs/sid_bsgm.rst §14.2, α_LL =
    1/L, q = 1 − μ/L): E(w, λ) = ½wᵀFw + ½ρ||λ||² + (−F y_ref)ᵀw + rᵀλ (+ const), so w(λ) =
    y*(x) and ∇f(λ) = ∇φ(x) at λ = x (the quadratic's K enters with the sign of g)."""
    from refbilevel.problems.contraction import LinearContraction, gd_map_contraction

    if isinstance(problem, LinearContraction):
        return problem
    H, K, F = problem.dense_H(), problem.dense_K(), problem.dense_F()
    L = float(np.linalg.eigvalsh(H)[-1])
    d_x = K.shape[1]
    out = gd_map_contraction(H, K, problem.h, 1.0 / L, P=F, Q=np.zeros_like(K),
                             S=problem.rho * np.eye(d_x), p=-F @ problem.y_ref, s=problem.r)
    if getattr(problem, "x0", None) is not None:
        out.x0 = problem.x0
    return out


def _record_defaults(problem, mode: str) -> dict[str, Any]:
    """BSGM's options. "default": the deterministic schedule of the §5 table (t_s = k_s =
    ⌈log(s+1)/log(1/q)⌉, J = 1, η ≡ 1; Theorem 17': exact maps give exact hypergradients in
    the limit) with α = 1/L_f (Corollary 13'); "paper" and "theory": the "finite" schedule of
    Theorem S (t = k = J = T, η_i = 3/(3+i)), α = 1/L_f."""
    alpha = 1.0 / float(problem.constants.extra["L_f"])
    return {"schedule": "deterministic" if mode == "default" else "finite", "alpha": alpha}


def _default_T(problem, mode, options) -> int:
    """ln(1e3) L_f/m_f outer steps (gradient descent with α = 1/L_f on f, m_f its smallest
    Hessian eigenvalue where stated, else L_f/100); "paper"/"theory": 100."""
    from refbilevel.solver_record import horizon

    if mode != "default":
        return 100
    ex = problem.constants.extra
    L_f = float(ex["L_f"])
    m_f = ex.get("lambda_min_hessian_f")
    m_f = float(m_f) if m_f is not None and m_f > 0 else L_f / 100.0
    return horizon(m_f / L_f)


def _invoke(run, inputs):
    """BSGM's trace as a :class:`~refbilevel.algorithms.trace.Trace` (λ as x, w as y)."""
    from refbilevel.algorithms.trace import Trace

    oracle = inputs.oracle
    bt = run(oracle, inputs.x0, inputs.T, seed=inputs.seed, **inputs.options)
    P = oracle.problem
    every = inputs.record_every
    its = np.array(sorted(set(range(0, inputs.T + 1, every)) | {inputs.T}), dtype=np.int64)
    lam = np.array(bt.lam[its])
    alive = (bt.diverged_at[None, :] < 0) | (its[:, None] < bt.diverged_at[None, :])
    lam = np.where(alive[..., None], lam, np.nan)
    g = np.full(alive.shape, np.nan)
    if alive.any():
        g[alive] = np.linalg.norm(P.grad_f(lam[alive]), axis=-1)
    counts = {k: v[its] for k, v in bt.extra["cumulative_counts"].items()}
    counts["samples"] = np.asarray(bt.samples)[its]  # Definition 15's cumulative count
    # the pathwise quantities of every outer step (claims S5, S6): the realized errors and
    # the (t_s, k_s, J_s) of the schedule, whatever the records
    return Trace(algorithm="bsgm", backend=bt.backend, params=bt.params, seed=inputs.seed,
                 iterations=its, x=lam, grad_phi_norm=g, y_error=np.zeros_like(g),
                 counts=counts, diverged_at=bt.diverged_at,
                 extra={"grad_map_sq": bt.grad_map_sq[its], "f": bt.f[its],
                        "delta_sq": bt.delta_sq,
                        "schedule_tkJ": bt.extra["schedule_tkJ"]})


def _paper_counts(trace, problem) -> dict[str, np.ndarray]:
    """The counts docs/sid_bsgm.rst states for a run: per outer step s one SID call with the
    schedule's (t_s, k_s, J_s), costing sid_counts(t, k, J) (§4.2), and Definition 15's
    samples t + k + 2J; cumulative at the trace's records."""
    from refbilevel.estimators.sid import sid_counts

    T, q = int(trace.params["T"]), float(trace.params["q"])
    rows = [sid_counts(*bsgm_schedule(trace.params["schedule"], s, T, q)) for s in range(T)]
    kinds = list(rows[0]) if rows else []
    out = {k: np.concatenate([[0], np.cumsum([r[k] for r in rows])]) for k in kinds}
    out["samples"] = np.concatenate([[0], np.cumsum([r["zeta"] + r["xi"] for r in rows])])
    its = np.asarray(trace.iterations)
    return {k: v[its] for k, v in out.items()}


def _parity() -> dict[str, Any]:
    """BSGM's comparison run: the noisy golden instance with the deterministic SID schedule
    and a box, as its parity test (the default "finite" schedule grows SID's t = k = J with
    the outer iteration: 1000 outer steps take minutes on the NumPy reference)."""
    return {"problem": "linear-contraction", "x0": 0.9,
            "options": {"schedule": "deterministic", "constraint": Box(-1.0, 1.0)}}


def _register() -> None:
    from refbilevel.solver_record import Assumption, SolverRecord, register_solver

    register_solver(SolverRecord(
        name="bsgm", reference="docs/sid_bsgm.rst §5",
        assumptions=(Assumption(
            "a linear contraction lower level (Φ = Aw + Bλ + c, or the gradient-descent map "
            "of a strongly convex quadratic g; docs/sid_bsgm.rst §14.1-14.2)",
            _linear_lower_level, "linear contraction LL"),),
        options=("alpha", "schedule", "steps", "constraint", "w0"),
        defaults=_record_defaults, default_T=_default_T, invoke=_invoke,
        as_problem=_as_contraction, step_options=("alpha",), parity=_parity,
        paper_counts=_paper_counts,
        counts_reference="docs/sid_bsgm.rst §4.2 (sid_counts per SID call), §5 schedule, §11 "
                         "Definition 15"))


_register()
