"""SID, stochastic implicit differentiation: NumPy reference (Grazzi, Pontil, Salzo 2023,
Algorithm 1; docs/sid_bsgm.rst §4.2).

    1. LL:  w_{i+1} = (1−η_i) w_i + η_i Φ(w_i, λ; ζ_i),              i = 0..t−1, w_0 given
    2. UL:  (G₁, G₂) = (1/J) Σ_j ∇E(w_t, λ; ξ_j)                        (same ξ_j for both)
    3. LS:  v_{i+1} = (1−η_i) v_i + η_i (∂₁Φ(w_t, λ; ζ̂_i)ᵀ v_i + G₁),  i = 0..k−1, v_0 = 0
    4.      ĝ = G₂ + (1/J) Σ_j ∂₂Φ(w_t, λ; ζ̄_j)ᵀ v_k

Conventions (docs/sid_bsgm.rst §14.1, "Conventions the golden values assume"): the LS restarts the
step index (LS step i uses η_i, not η_{t+i} or η_{i+1}) and starts at v_0 = 0; the four
sample families {ζ_i}, {ξ_j}, {ζ̂_i}, {ζ̄_j} are independent and i.i.d.; the LL sample
perturbs λ too. One call uses t + k + J copies of ζ and J of ξ (docs/sid_bsgm.rst §4.2).

Runs R independent replicas at once along a leading axis. Randomness is consumed only
through the oracle, in this order (the parity contract with the Numba kernel, see
:mod:`refbilevel.oracles.contraction` for the layout of one draw):

    for i < t:  draw_zeta(R, "ZYe")          (one (R, m) block per LL step)
    for j < J:  draw_xi(R)                   (one (R, d+n) block per mini-batch element)
    for i < k:  draw_zeta(R, "Z")            (the LS needs only Z)
    for j < J:  draw_zeta(R, "Y")            (∂₂Φ needs only Y)

:func:`sid_control_reuse` is a deliberately WRONG variant used only as the negative control
of claim S1 (docs/checks.rst): its LS reuses samples, which breaks the independence SID's
analysis needs and biases the MSE (docs/sid_bsgm.rst §14.1: about 5.94 or 5.97 instead of 5.416 at
(10, 10, 10) on the golden instance).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from refbilevel.backends import register
from refbilevel.estimators.result import Estimate
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.sid_moments import StepSchedule, step_sequence
from refbilevel.validation import require_int

__all__ = ["REUSE_MODES", "SIDInputs", "StepSchedule", "ll_solver", "ls_solver",
           "prepare_sid_inputs", "sid", "sid_control_reuse", "sid_counts",
           "sid_normals_per_replica"]

#: negative-control sample reuse of the LS: "pairs" = each ζ̂ serves two consecutive LS
#: steps; "ll" = the LS reuses the LL samples, ζ̂_i = ζ_{i mod t}
REUSE_MODES = ("pairs", "ll")


class SIDInputs(NamedTuple):
    """Validated SID inputs shared by every backend (a NamedTuple: built on every call, so
    it must be cheap; the Numba path at R = 1 is dominated by Python overhead)."""

    lam: np.ndarray  # (R, n)
    w0: np.ndarray  # (R, d)
    t: int
    k: int
    J: int
    eta: np.ndarray  # (max(t, k),) step sizes; the LL reads eta[:t], the LS eta[:k]
    R: int
    squeeze: bool  # the caller gave no replica axis: return shape (n,)


def _count(name: str, value: Any, low: int) -> int:
    if type(value) is int and value >= low:  # fast path for the common case
        return value
    return require_int(name, value, low=low)


def _finite(a: np.ndarray) -> bool:
    if a.size <= 64:  # a Python loop beats np.isfinite(...).all() on tiny arrays
        return all(map(math.isfinite, a.ravel().tolist()))
    return bool(np.isfinite(a).all())


@functools.lru_cache(maxsize=64)
def _cached_steps(steps: StepSchedule | float, n: int) -> np.ndarray:
    arr = step_sequence(steps, n)
    arr.flags.writeable = False
    return arr


def _steps(steps: Any, n: int) -> np.ndarray:
    """step_sequence with a cache for schedules and constants (hashable inputs)."""
    if isinstance(steps, (StepSchedule, float, int)) and not isinstance(steps, bool):
        return _cached_steps(steps, n).copy()
    return step_sequence(steps, n)


def prepare_sid_inputs(oracle: Any, lam: Any, t: Any, k: Any, J: Any, steps: Any, w0: Any,
                       replicas: Any) -> SIDInputs:
    """Validate SID's arguments (ValueError naming the parameter and its range).

    ``lam`` is (n,) or (R, n); ``w0`` is None (zero, no warm start; docs/sid_bsgm.rst §4.2), (d,) or
    (R, d); ``replicas`` is None or R ≥ 1. Without a replica axis anywhere the result has
    shape (n,). Returns fresh writable C-contiguous arrays (the Numba kernel is compiled
    for one array type).
    """
    if not isinstance(oracle, ContractionOracle):
        raise ValueError("oracle must be a ContractionOracle (refbilevel.oracles.contraction),"
                         f" got {type(oracle).__name__}")
    d, n = oracle.d, oracle.n
    t = _count("t", t, 0)
    k = _count("k", k, 0)
    J = _count("J", J, 1)
    lam = np.asarray(lam, dtype=np.float64)
    if lam.ndim not in (1, 2) or lam.shape[-1] != n:
        raise ValueError(f"lam must have shape ({n},) or (R, {n}), got {lam.shape}")
    if not _finite(lam):
        raise ValueError("lam must be finite")
    if w0 is not None:
        w0 = np.asarray(w0, dtype=np.float64)
        if w0.ndim not in (1, 2) or w0.shape[-1] != d:
            raise ValueError(f"w0 must have shape ({d},) or (R, {d}), got {w0.shape}")
        if not _finite(w0):
            raise ValueError("w0 must be finite")
    sizes = {a.shape[0] for a in (lam, w0) if a is not None and a.ndim == 2}
    if replicas is not None:
        sizes.add(_count("replicas", replicas, 1))
    if len(sizes) > 1:
        raise ValueError(f"replica counts disagree: lam, w0 and replicas give {sorted(sizes)}")
    R = sizes.pop() if sizes else 1
    if R < 1:
        raise ValueError("replicas must be >= 1")
    squeeze = replicas is None and lam.ndim == 1 and (w0 is None or w0.ndim == 1)
    lam_b = np.empty((R, n))
    lam_b[...] = lam
    if w0 is None:
        w0_b = np.zeros((R, d))
    else:
        w0_b = np.empty((R, d))
        w0_b[...] = w0
    return SIDInputs(lam_b, w0_b, t, k, J, _steps(steps, max(t, k)), R, squeeze)


def sid_counts(t: int, k: int, J: int) -> dict[str, int]:
    """Per-replica samples and evaluations of one SID call (docs/sid_bsgm.rst §4.2: t+k+J ζ, J
    ξ)."""
    return {"zeta": t + k + J, "xi": J, "phi": t, "vjp_w": k, "vjp_lam": J, "grad_E": J}


def sid_normals_per_replica(oracle: ContractionOracle, t: int, k: int, J: int,
                            reuse: str | None = None) -> int:
    """Standard normals one SID call consumes per replica (for the random-number floor of
    the benchmarks): t LL samples, J ξ, k (or ⌈k/2⌉, or 0 with LL reuse) LS samples, J ζ̄."""
    ls = {None: k, "pairs": (k + 1) // 2, "ll": 0}[reuse]
    return (t * oracle.zeta_width("ZYe") + J * oracle.xi_width + ls * oracle.zeta_width("Z")
            + J * oracle.zeta_width("Y"))


def _ll_loop(oracle: ContractionOracle, w: np.ndarray, lam: np.ndarray, eta: np.ndarray,
             keep: list | None = None) -> np.ndarray:
    """The LL solver, stochastic Krasnoselskii-Mann iteration (6): len(eta) steps
    w ← (1−η_i) w + η_i Φ(w, λ; ζ_i) from ``w`` (R, d), one fresh ζ_i per step (all parts);
    the samples are appended to ``keep`` when given (the "ll" negative control)."""
    R = w.shape[0]
    for i in range(eta.shape[0]):
        zeta = oracle.draw_zeta(R)
        if keep is not None:
            keep.append(zeta)
        w = (1.0 - eta[i]) * w + eta[i] * oracle.phi_map(w, lam, zeta)
    return w


def _ls_loop(oracle: ContractionOracle, w: np.ndarray, lam: np.ndarray, g1: np.ndarray,
             eta: np.ndarray, sample: Any) -> np.ndarray:
    """The LS solver (7) with right-hand side ``g1`` (R, d), from v_0 = 0: len(eta) steps
    v ← (1−η_i) v + η_i (∂₁Φ(w, λ; ζ̂_i)ᵀ v + g₁); ``sample(i)`` returns ζ̂_i (it draws it)."""
    v = np.zeros_like(g1)
    for i in range(eta.shape[0]):
        v = (1.0 - eta[i]) * v + eta[i] * (oracle.vjp_w(w, lam, v, sample(i)) + g1)
    return v


def _sid_numpy(oracle: ContractionOracle, inp: SIDInputs, reuse: str | None) -> np.ndarray:
    lam, R, eta = inp.lam, inp.R, inp.eta
    # Step 1: LL solver, stochastic Krasnoselskii-Mann iteration, eq. (6)
    ll_samples: list = []
    w = _ll_loop(oracle, inp.w0.copy(), lam, eta[:inp.t], ll_samples if reuse == "ll" else None)
    # Step 2: mini-batch UL gradients, both components from the same ξ_j
    G1 = np.zeros((R, oracle.d))
    G2 = np.zeros((R, oracle.n))
    for _ in range(inp.J):
        g1, g2 = oracle.grad_E(w, lam, oracle.draw_xi(R))
        G1 += g1
        G2 += g2
    G1 /= inp.J
    G2 /= inp.J
    # Step 3: LS solver, eq. (7), restarting the step index, from v_0 = 0
    last: list = [None]

    def ls_sample(i: int):
        if reuse is None or (reuse == "pairs" and i % 2 == 0):
            last[0] = oracle.draw_zeta(R, "Z")
        elif reuse == "ll":
            return ll_samples[i % inp.t]  # WRONG on purpose: ζ̂_i = ζ_i (negative control)
        # reuse == "pairs", odd i: WRONG on purpose, ζ̂_i = ζ̂_{i-1} (negative control)
        return last[0]

    v = _ls_loop(oracle, w, lam, G1, eta[:inp.k], ls_sample)
    # Step 4: ĝ = ∇₂Ê_J + (1/J) Σ_j ∂₂Φ(w_t, λ; ζ̄_j)ᵀ v_k
    acc = np.zeros((R, oracle.n))
    for _ in range(inp.J):
        acc += oracle.vjp_lam(w, lam, v, oracle.draw_zeta(R, "Y"))
    return G2 + acc / inp.J


def _run(oracle, lam, t, k, J, steps, w0, replicas, reuse) -> Estimate:
    inp = prepare_sid_inputs(oracle, lam, t, k, J, steps, w0, replicas)
    if reuse == "ll" and inp.k > 0 and inp.t == 0:
        raise ValueError("reuse='ll' needs t >= 1 (the LS reuses the LL samples)")
    before = oracle.counts.copy()
    g = _sid_numpy(oracle, inp, reuse)
    return Estimate(value=g[0] if inp.squeeze else g, counts=oracle.counts - before)


@register("estimator", "sid", "numpy")
def sid(oracle: ContractionOracle, lam: Any, t: int, k: int, J: int, *, steps: Any,
        w0: Any = None, replicas: int | None = None) -> Estimate:
    """SID hypergradient estimate ĝ(λ) (SID Alg. 1; docs/sid_bsgm.rst §4.2, §14.1).

    ``steps`` is a :class:`StepSchedule` (``StepSchedule.decreasing(beta, gamma)`` for
    η_i = β/(γ+i), ``StepSchedule.constant(eta)``), a constant η ∈ (0, 1] or an array of at
    least max(t, k) steps. ``t, k ≥ 0``, ``J ≥ 1``. Returns an :class:`Estimate` whose value
    has shape (R, n), or (n,) when no replica axis was given, and whose counts
    (:class:`~refbilevel.oracles.contraction.ContractionCounts`, per replica) are
    t + k + J ζ samples and J ξ samples.
    """
    return _run(oracle, lam, t, k, J, steps, w0, replicas, None)


@register("estimator", "sid_control_reuse", "numpy")
def sid_control_reuse(oracle: ContractionOracle, lam: Any, t: int, k: int, J: int, *,
                      steps: Any, w0: Any = None, replicas: int | None = None,
                      reuse: str = "pairs") -> Estimate:
    """NEGATIVE CONTROL, deliberately wrong: SID whose LS reuses samples (docs/sid_bsgm.rst §14.1).

    ``reuse="pairs"``: each LS sample ζ̂ is used for two consecutive steps (fresh draws at
    even i only). ``reuse="ll"``: the LS reuses the LL samples, ζ̂_i = ζ_{i mod t}. Both
    break the independence of the sample families (docs/sid_bsgm.rst §4.2) and change the MSE (about
    5.97 and 5.94 against 5.416 at (10,10,10) on the golden instance), which claim S1's
    check must detect. Never use it as an estimator.
    """
    if reuse not in REUSE_MODES:
        raise ValueError(f"reuse must be one of {', '.join(REUSE_MODES)}; got {reuse!r}")
    return _run(oracle, lam, t, k, J, steps, w0, replicas, reuse)


# ---- the two fixed-point solvers alone (claim S4: Theorem S, docs/sid_bsgm.rst §8) ------------


def ll_solver(oracle: ContractionOracle, lam: Any, t: int, *, steps: Any, w0: Any = None,
              replicas: int | None = None) -> Estimate:
    """w_t of SID's LL solver alone, the stochastic KM iteration (6) (docs/sid_bsgm.rst §4.2 step
    1, §8):
    w_{i+1} = (1−η_i) w_i + η_i Φ(w_i, λ; ζ_i), i < t, from ``w0`` (default 0).

    The same code as step 1 of :func:`sid` (same draws: one ζ per step with all its parts).
    Arguments as in :func:`sid`; the value has shape (R, d), or (d,) without a replica axis.
    Claim S4's Monte Carlo compares E||w_t − w(λ)||² with
    :func:`refbilevel.sid_moments.ll_error_path`.
    """
    inp = prepare_sid_inputs(oracle, lam, t, 0, 1, steps, w0, replicas)
    before = oracle.counts.copy()
    w = _ll_loop(oracle, inp.w0.copy(), inp.lam, inp.eta[:inp.t])
    return Estimate(value=w[0] if inp.squeeze else w, counts=oracle.counts - before)


def ls_solver(oracle: ContractionOracle, lam: Any, k: int, *, steps: Any, g1: Any = None,
              w: Any = None, replicas: int | None = None) -> Estimate:
    """v_k of SID's LS solver alone with a fixed right-hand side (docs/sid_bsgm.rst §4.2 step 3,
    §8):
    v_{i+1} = (1−η_i) v_i + η_i (∂₁Φ(w, λ; ζ̂_i)ᵀ v_i + g₁), i < k, v_0 = 0, whose fixed point
    is v̂ = (I − Aᵀ)^{-1} g₁.

    The same code as step 3 of :func:`sid` (one ζ̂ per step with its Z part only; the step
    index restarts at 0). ``g1`` (d,) or (R, d) defaults to ∇₁E(w(λ), λ) and ``w`` (d,) or
    (R, d) to w(λ), as in :func:`refbilevel.sid_moments.ls_error_path` (∂₁Φᵀv = (A+Z)ᵀv
    does not depend on w); R comes from ``lam``, ``w`` or ``replicas`` as in :func:`sid`.
    The value has shape (R, d), or (d,) without a replica axis.
    """
    from refbilevel.sid_moments import exact_solution

    if g1 is None or w is None:  # exact w(λ), ∇₁E(w(λ), λ) per row of λ (validated there)
        lam_arr = np.asarray(lam, dtype=np.float64)
        ex = [exact_solution(oracle.problem, row) for row in np.atleast_2d(lam_arr)]
        w_def = np.array([e.w_star for e in ex])
        g_def = np.array([e.g1_star for e in ex])
        if lam_arr.ndim == 1:
            w_def, g_def = w_def[0], g_def[0]
        w = w_def if w is None else w
        g1 = g_def if g1 is None else g1
    inp = prepare_sid_inputs(oracle, lam, 0, k, 1, steps, w, replicas)
    rhs = np.asarray(g1, dtype=np.float64)
    if rhs.ndim not in (1, 2) or rhs.shape[-1] != oracle.d or (
            rhs.ndim == 2 and rhs.shape[0] != inp.R) or not _finite(rhs):
        raise ValueError(f"g1 must be a finite array of shape ({oracle.d},) or "
                         f"({inp.R}, {oracle.d}), got {rhs.shape}")
    G1 = np.empty((inp.R, oracle.d))
    G1[...] = rhs
    before = oracle.counts.copy()
    v = _ls_loop(oracle, inp.w0, inp.lam, G1, inp.eta[:inp.k],
                 lambda i: oracle.draw_zeta(inp.R, "Z"))
    return Estimate(value=v[0] if inp.squeeze else v, counts=oracle.counts - before)
