"""Shared plumbing of the baseline algorithms (docs/baselines.rst §0-§8).

Not an algorithm: the leading underscore keeps it out of the auto-import of
``refbilevel/algorithms/__init__.py``.

Conventions every baseline follows (docs/baselines.rst §0):

- internal sign convention "+z": z ≈ [∇²_yy g]^{-1} ∇_y f and the direction is
  d = ∇_x f − ∇²_xy g z (§0.1); SOBA/SABA's v = −z is converted at the boundary only;
- the two scalar hyper-parameters of benchmark_bilevel (§0.2): ``step_size`` s for every
  inner-type step (LL SGD, Neumann, linear-system SGD) and ``outer_ratio`` r, the outer step
  being s/r; decreasing schedules lr_t = c / t^e with t = 1, 2, ... counted in outer
  iterations (e = 0: constant);
- the lower level is updated *before* the hypergradient of the same iteration (the papers'
  order; benchmark_bilevel's numba era runs the same sequence shifted by one block);
- one outer sample gives (∇_y F, ∇_x F) and, where the benchmark shares it, one inner sample
  gives several inner quantities — with a :class:`~refbilevel.oracles.finite_sum.
  FiniteSumOracle` (``shares_samples``); a GaussianOracle has independent noise per kind, so
  every call there draws its own noise block;
- every random number comes from ``oracle.rng`` (no global RNG); divergence is detected
  explicitly (trace.py) and diverged replicas are frozen at their last finite state.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from refbilevel.algorithms.trace import TraceRecorder
from refbilevel.validation import as_vector_batch, require_int, require_range

MODES = ("tuned", "theory")


# ---- validation -------------------------------------------------------------------------------
def require_oracle(oracle) -> None:
    for attr in ("problem", "rng", "counts", "grad_y_g", "grad_x_f", "grad_y_f"):
        if not hasattr(oracle, attr):
            raise ValueError(
                "oracle must be a refbilevel GaussianOracle or FiniteSumOracle (problem, rng, "
                f"counts and the oracle methods); {type(oracle).__name__} has no {attr!r}"
            )


def require_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    return mode


def positive(name: str, value) -> float:
    return require_range(name, value, low=0.0, low_inclusive=False)


def exponent(name: str, value) -> float:
    return require_range(name, value, low=0.0)


def exponent_pair(exponents) -> tuple[float, float]:
    """The (inner, outer) step-size decay exponents of a tuned schedule, each >= 0."""
    if isinstance(exponents, (str, bytes)) or not hasattr(exponents, "__len__") \
            or len(exponents) != 2:
        raise ValueError(f"exponents must be a pair (e_inner, e_outer), got {exponents!r}")
    return exponent("exponents[0]", exponents[0]), exponent("exponents[1]", exponents[1])


def start_points(oracle, x0, y0) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated float64 copies of x0 (R, d_x) and y0 (R, d_y) with the same R."""
    P = oracle.problem
    x = as_vector_batch("x0", x0, P.d_x)
    y = as_vector_batch("y0", y0, P.d_y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"x0 and y0 must have shapes (R, d_x) and (R, d_y) (one row per "
                         f"replica); got {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x0 and y0 must have the same number of replicas R; got "
                         f"{x.shape[0]} and {y.shape[0]}")
    return x.copy(), y.copy(), x.shape[0]


def iterations(T) -> int:
    return require_int("T", T, low=0)


def recorder(oracle, R: int, record_every) -> TraceRecorder:
    return TraceRecorder(oracle.problem, R, require_int("record_every", record_every, low=1))


def theory_constants(algorithm: str, section: str, supplied: dict[str, Any] | None,
                     required: tuple[str, ...]) -> dict[str, float]:
    """The multiplicative constants of a paper schedule that the spec does not give.

    The spec (docs/baselines.rst) states most paper schedules only up to a constant ("∝", "Θ",
    "recalled, verify"): those constants are NOT RECOVERED, so ``mode="theory"`` needs them
    passed explicitly; a missing one raises ValueError naming it and the section.
    """
    supplied = dict(supplied or {})
    unknown = sorted(set(supplied) - set(required))
    if unknown:
        raise ValueError(f"theory_constants of {algorithm} accepts {', '.join(required)}; "
                         f"got unknown {', '.join(unknown)}")
    missing = [k for k in required if k not in supplied]
    if missing:
        hint = ", ".join(repr(k) + ": ..." for k in missing)
        raise ValueError(
            f"{algorithm} mode='theory': the constant(s) {', '.join(missing)} of the paper's "
            f"schedule are NOT RECOVERED (docs/baselines.rst {section} gives the schedule only "
            f"up to constants); pass theory_constants={{{hint}}}"
        )
    return {k: positive(f"theory_constants[{k!r}]", supplied[k]) for k in required}


def problem_constant(oracle, name: str, algorithm: str, section: str) -> float:
    """A theory constant of the problem (mu, L_y, L_phi2, ...) that a paper schedule needs."""
    c = oracle.problem.constants
    value = getattr(c, name, None)
    if name == "L_y" and value is None and c.p == 2:
        value = c.C
    if value is None or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{algorithm} mode='theory' needs the problem constant {name} "
                         f"(docs/baselines.rst {section}); {type(oracle.problem).__name__} "
                         f"states {name} = {value}")
    return float(value)


# ---- schedules ------------------------------------------------------------------------------
def decay(c: float, e: float, t: int) -> float:
    """lr_t = c / t^e, t = 1, 2, ... (benchmark_bilevel, docs/baselines.rst §0.2)."""
    return c if e == 0.0 else c / t**e


# ---- oracle helpers --------------------------------------------------------------------------
def shared_sample(oracle, kind: str, R: int):
    """One sample to share between several calls of kind's level, or None (draw per call)."""
    if getattr(oracle, "shares_samples", False):
        return oracle.draw(kind, (R,))
    return None


def outer_gradients(oracle, x, y, R: int) -> tuple[np.ndarray, np.ndarray]:
    """(∇_y F, ∇_x F) at (x, y) on one outer sample (docs/baselines.rst §0.2); order fy then fx."""
    b = shared_sample(oracle, "grad_y_f", R)
    fy = oracle.grad_y_f(x, y, sample=b)
    fx = oracle.grad_x_f(x, y, sample=b)
    return fy, fx


def guard(a: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """An intermediate that is fed back into an oracle within one iteration (an inner SGD
    iterate, a Neumann term): rows that went non-finite are marked in ``bad`` (the replica
    is declared diverged at the end of the iteration) and replaced by 0, because the oracles
    reject non-finite inputs. The other replicas are untouched, so the replicas stay
    independent and the Numba kernels (which just carry the inf/NaN) agree."""
    ok = np.all(np.isfinite(a.reshape(a.shape[0], -1)), axis=1)
    if ok.all():
        return a
    bad |= ~ok
    return np.where(ok.reshape((-1,) + (1,) * (a.ndim - 1)), a, 0.0)


def sgd_block(oracle, x, y, n_steps: int, lr: float, bad: np.ndarray) -> np.ndarray:
    """n_steps of y ← y − lr ∇_y G(x, y; fresh sample) (warm-started LL SGD)."""
    for _ in range(n_steps):
        y = guard(y - lr * oracle.grad_y_g(x, y), bad)
    return y


def hia_draws(rng, N: int, R: int, n_draws: int) -> np.ndarray:
    """counts[r, j] = #{b : p_{r,b} = j} (R, N): the empirical law of replica r's n_draws
    truncation lengths p_{r,b} ~ Uniform{0, ..., N−1} (docs/baselines.rst §1 "Averaged
    draws"), drawn the cheaper of two ways with the same law:

    - n_draws <= N: the lengths themselves, ONE ``rng.integers(0, N, size=(R, n_draws))``
      (C order: replica r's draws are row r). With ``n_draws = 1`` this consumes exactly the
      numbers of the papers' single draw ``rng.integers(0, N, size=R)``;
    - n_draws > N: the counts as a multinomial(n_draws; 1/N, ..., 1/N), by conditional
      binomials as NumPy's own multinomial draws them: counts[:, j] =
      ``rng.binomial(left, 1/(N − j))`` for j = 0..N−2 (all replicas at once, ``left`` the
      draws not yet placed), the rest in the last cell. N − 1 binomials per replica instead of
      n_draws integers (BSA's default B runs to tens of thousands).

    The Numba kernels draw the same numbers (:func:`refbilevel.algorithms._baselines_numba.
    hia_law`; Numba's Generator.binomial is NumPy's, bit for bit)."""
    if n_draws <= N:
        p = rng.integers(0, N, size=(R, n_draws))
        cells = (np.arange(R)[:, None] * N + p).reshape(-1)
        return np.bincount(cells, minlength=R * N).reshape(R, N)
    counts = np.empty((R, N), dtype=np.int64)
    left = np.full(R, n_draws, dtype=np.int64)
    for j in range(N - 1):
        counts[:, j] = rng.binomial(left, 1.0 / (N - j))
        left = left - counts[:, j]
    counts[:, N - 1] = left
    return counts


def hia_weights(counts: np.ndarray, n_draws: int) -> np.ndarray:
    """w[r, j] = counts[r, j] / B (R, N), the empirical law of replica r's B draws: the
    averaged estimate is N η Σ_j w[r, j] v_j (:func:`hia`). Counts are exact small integers,
    so the division is the same floating-point number on both backends."""
    return counts / n_draws


def hia_lengths(counts: np.ndarray) -> np.ndarray:
    """Each replica's chain length max_b p_{r,b}: the last length drawn at least once."""
    N = counts.shape[1]
    return N - 1 - np.argmax(counts[:, ::-1] > 0, axis=1)


def hia(oracle, x, y, v0: np.ndarray, N: int, eta: float, R: int, bad: np.ndarray,
        n_draws: int = 1):
    """Ghadimi–Wang's randomized Neumann estimate ("HIA", docs/baselines.rst §1 PAPER and
    CODE), averaged over ``n_draws`` = B truncation lengths on one HVP chain:

        v_0 = v0,  v_j = (I − η Ĥ_j) v_{j−1}  (each Ĥ_j on a fresh sample),
        z = N η (1/B) Σ_b v_{p_b},  p_1..p_B ~ Uniform{0, ..., N−1} (per replica).

    B = 1 is the papers' estimate z = N η Π_{i≤p} (I − η Ĥ_i) v0. Each term N η v_{p_b} is
    unbiased for the truncated Neumann sum η Σ_{q<N} E Π_{i≤q}(I − η Ĥ_i) v0 (the chain's
    samples are independent of the p's), so the average is too, with the variance due to p
    divided by B; the chain costs max_b p_b HVPs (at most N − 1) instead of p.

    Draws the lengths' counts for all replicas with :func:`hia_draws`, then HVP step j
    (j = 1..max p) on the whole batch with a fresh sample, applied where the replica's chain
    length max_b p_{r,b} is >= j: with R = 1 exactly max_b p_b products are evaluated (and
    counted). Returns (z, chain lengths (R,)); with B = 1 the chain length is p."""
    counts = hia_draws(oracle.rng, N, R, n_draws)
    w = hia_weights(counts, n_draws)
    steps = hia_lengths(counts)
    v = guard(v0, bad)
    acc = w[:, :1] * v
    for j in range(1, int(steps.max()) + 1):
        v = guard(np.where((steps >= j)[:, None], v - eta * oracle.hvp_yy_g(x, y, v), v), bad)
        acc = acc + w[:, j:j + 1] * v
    return N * eta * acc, steps


def hia_draws_option(n_draws) -> int:
    """The validated ``n_hia_draws`` option (an integer >= 1)."""
    return require_int("n_hia_draws", n_draws, low=1)


#: v⋆, the target of α L_φ (N − 1)/B in the "default" mode of the methods that take one
#: averaged HIA estimate per outer step (BSA, TTSA; :func:`default_hia_draws`)
HIA_NOISE_TARGET = 2.5e-4


def default_hia_draws(outer_step: float, L_phi: float, N: int) -> int:
    """B = ⌈α L_φ (N − 1)/v⋆⌉ averaged draws (docs/baselines.rst §1 "Averaged draws"), v⋆ =
    :data:`HIA_NOISE_TARGET`. With exact oracles the only noise of the x-step direction is
    the estimate's, whose relative variance is at most (N − 1)/B (the stiffest direction of
    ∇²_yy g, where η = 1/L_y makes N η (I − ηH)^p an N-valued indicator of p = 0). A
    constant step α leaves a stationary E||∇φ||² ≈ (α/2) tr(∇²φ Σ) ≤ (α L_φ/2) E||ξ||², so
    the floor is at most √(v⋆/2) ≈ 1.1e-2 times ||∇²_xy g|| ||z*|| (z* = [∇²_yy g]^{-1}∇_y f
    at the solution). The draws cost random integers only: the HVP chain is as long as the
    largest draw, at most N − 1."""
    return max(1, int(math.ceil(outer_step * L_phi * (N - 1) / HIA_NOISE_TARGET)))


def freeze(rec: TraceRecorder, t: int, new: tuple[np.ndarray, ...],
           old: tuple[np.ndarray, ...], bad: np.ndarray | None = None
           ) -> tuple[np.ndarray, ...]:
    """Mark replicas whose new state (iterate t) is non-finite and keep their last finite
    state: ``diverged_at = t`` and the records from t on are NaN (TraceRecorder/build_trace).
    """
    flags = () if bad is None else (np.where(bad, np.nan, 0.0),)
    act = rec.check_finite(t, *new, *flags)
    return tuple(np.where(act.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
                 for a, b in zip(new, old, strict=True))


# ---- oracle-call counts each paper states (claim X3) --------------------------------------------
#: Per-iteration oracle calls of each baseline, as its paper/benchmark states them (spec
#: docs/baselines.rst; the algorithm modules' docstrings say the same). A count is an int, the name
#: of a ``params`` entry of the run (``trace.params``), or ``(factor, name)``. Kinds not
#: listed are 0. ``randomized_hvp``: Ghadimi-Wang's randomized Neumann estimate ("HIA",
#: §1 PAPER) makes p_k HVPs in iteration k, p_k ~ Uniform{0..N−1}, or with B averaged draws
#: (``n_hia_draws``, §1 "Averaged draws") p_k = max_b p_{k,b}, the length of the one chain —
#: the realized p_k is in ``trace.extra["hia_p"]`` (max over the replicas of a batched run,
#: exactly p_k for R = 1).
#: ``randomized_hvp`` may name a boolean ``params`` entry instead, for a method whose
#: Neumann estimator is an option (ALSET: randomized or fixed-length).
PAPER_COUNTS: dict[str, dict[str, Any]] = {
    "bsa": {"section": "docs/baselines.rst §1 (CODE steps 1-3, 5: n_inner_steps SGD, one outer "
                       "batch, HIA, one cross product)",
            "per_iteration": {"grad_y_g": "n_inner_steps", "grad_y_f": 1, "grad_x_f": 1,
                              "jvp": 1},
            "randomized_hvp": True},
    "stocbio": {"section": "docs/baselines.rst §2 (PAPER steps 1-3: D SGD steps, Q HVPs, one outer "
                           "batch, one cross product)",
                "per_iteration": {"grad_y_g": "n_inner_steps", "hvp": "n_neumann_steps",
                                  "jvp": 1, "grad_y_f": 1, "grad_x_f": 1},
                "randomized_hvp": False},
    "ttsa": {"section": "docs/baselines.rst §3 (PAPER: one SGD step, GW18 estimator: one outer "
                        "batch, HIA, one cross product)",
             "per_iteration": {"grad_y_g": 1, "grad_y_f": 1, "grad_x_f": 1, "jvp": 1},
             "randomized_hvp": True},
    "soba": {"section": "docs/baselines.rst §4 (PAPER: D_y, D_v, D_x from one inner and one outer "
                        "sample)",
             "per_iteration": {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1,
                               "grad_x_f": 1},
             "randomized_hvp": False},
    "saba": {"section": "docs/baselines.rst §5 (SOBA's five directions, each a SAGA estimate of "
                        "one fresh evaluation)",
             "per_iteration": {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1,
                               "grad_x_f": 1},
             "randomized_hvp": False},
    "ma_soba": {"section": "docs/baselines.rst §6 (PAPER: D_y, D_z, D_x, one sample per oracle)",
                "per_iteration": {"grad_y_g": 1, "hvp": 1, "jvp": 1, "grad_y_f": 1,
                                  "grad_x_f": 1},
                "randomized_hvp": False},
    "amigo": {"section": "docs/baselines.rst §7 (PAPER steps 1-4: T SGD steps on y, M SGD steps on "
                         "z, one outer batch, one cross product)",
              "per_iteration": {"grad_y_g": "n_inner_steps", "hvp": "n_z_steps", "jvp": 1,
                                "grad_y_f": 1, "grad_x_f": 1},
              "randomized_hvp": False},
    "f2sa": {"section": "docs/baselines.rst §8 (PAPER: per inner step ∇_y G at z and at y, ∇_y F "
        "at "
                        "y; then ∇_x F and two ∇_x G)",
             "per_iteration": {"grad_y_g": (2, "n_inner_steps"), "grad_y_f": "n_inner_steps",
                               "grad_x_f": 1, "grad_x_g": 2},
             "randomized_hvp": False},
    "alset": {"section": "docs/baselines.rst §17 (PAPER: T_ll SGD steps on y, one outer sample, "
                         "the GW18 estimator: N' HVPs (randomized) or N − 1 (fixed length), one "
                         "cross product)",
              "per_iteration": {"grad_y_g": "n_inner_steps", "grad_y_f": 1, "grad_x_f": 1,
                                "jvp": 1, "hvp": "fixed_neumann_hvps"},
              "randomized_hvp": "randomized_neumann"},
    "fsla": {"section": "docs/baselines.rst §15 (CODE steps 1-3: one SGD step on y, one linear-"
                        "system step on v, ν and the coupled ν' on one outer and one inner "
                        "sample)",
             "per_iteration": {"grad_y_g": 1, "hvp": 1, "grad_y_f": 1, "grad_x_f": 2,
                               "jvp": 2},
             "randomized_hvp": False},
    "pzobo": {"section": "docs/baselines.rst §16 (PAPER = CODE: N lower-level steps on the main "
                         "path and on each of the Q perturbed paths, one outer sample; no HVP, "
                         "no JVP)",
              "per_iteration": {"grad_y_g": "lower_level_gradients", "grad_y_f": 1,
                                "grad_x_f": 1},
              "randomized_hvp": False},
}


def paper_counts_per_iteration(name: str, params: dict[str, Any]) -> dict[str, int]:
    """The per-iteration counts of :data:`PAPER_COUNTS` for a run with these ``params``
    (``trace.params``), by kind (kinds not stated are absent, i.e. 0). The HIA HVPs of a
    ``randomized_hvp`` entry are random and not included (see
    :func:`paper_cumulative_counts`)."""
    if name not in PAPER_COUNTS:
        raise ValueError(f"no paper counts for {name!r}; known: {', '.join(PAPER_COUNTS)}")
    out = {}
    for kind, c in PAPER_COUNTS[name]["per_iteration"].items():
        factor, key = (c if isinstance(c, tuple) else (1, c))
        if isinstance(key, str):
            if key not in params:
                raise ValueError(
                    f"{name}: the per-iteration {kind} count is params[{key!r}], which this "
                    f"run does not record (mode {params.get('mode')!r}; the papers state "
                    "constant per-iteration counts for the tuned schedules only)")
            key = params[key]
        out[kind] = int(factor) * int(key)
    return out


def paper_cumulative_counts(name: str, params: dict[str, Any], iterations,
                            hia_p: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Cumulative per-replica calls after each outer iteration in ``iterations`` (the
    records of a trace), for every kind of :data:`~refbilevel.oracles.counters.ORACLE_KINDS`:
    the per-iteration counts times the iteration, and for the HIA HVPs the running sum of the
    realized p_k (``hia_p``, shape (T, R), max over the replicas: a batched HVP call is one
    call of each replica's trajectory, see :func:`hia`)."""
    from refbilevel.oracles.counters import ORACLE_KINDS

    its = np.asarray(iterations, dtype=np.int64)
    per = paper_counts_per_iteration(name, params)
    out = {k: per.get(k, 0) * its for k in ORACLE_KINDS}
    randomized = PAPER_COUNTS[name]["randomized_hvp"]
    if isinstance(randomized, str):  # a run's params entry says which estimator it used
        randomized = bool(params.get(randomized))
    if randomized:
        if hia_p is None:
            raise ValueError(f"{name} draws its HVP count at random: pass hia_p "
                             "(trace.extra['hia_p'])")
        p = np.asarray(hia_p, dtype=np.int64).reshape(len(hia_p), -1).max(axis=1)
        out["hvp"] = np.concatenate([[0], np.cumsum(p)])[its]
    return out


# ---- solver records (refbilevel.solve; docs/design.rst §Contracts "Solver") --------------------
def baseline_options(run) -> tuple[str, ...]:
    """The option names of a baseline's entry function: its keyword parameters, less those
    :func:`refbilevel.solve` sets itself (T, record_every, seed) and ``mode`` (a solve
    argument)."""
    import inspect

    return tuple(n for n, p in inspect.signature(run).parameters.items()
                 if p.kind is inspect.Parameter.KEYWORD_ONLY
                 and n not in ("T", "mode", "record_every", "seed"))


def invoke_baseline(run, inputs):
    """The baselines' calling convention: ``run(oracle, x0, y0, T=..., mode=..., ...)``."""
    return run(inputs.oracle, inputs.x0, inputs.y0, T=inputs.T,
               record_every=inputs.record_every, seed=inputs.seed, **inputs.options)


#: the horizon of the "paper" and "theory" modes, which the papers leave to the user
PAPER_T = 1000


#: the backend-comparison setups of the baselines (the settings of tests/test_baselines.py)
PARITY_QUADRATIC = {"problem": "quadratic", "x0": -2.0,
                    "problem_params": {"d_x": 5, "d_y": 5, "mu": 3.0, "L": 10.0, "rho": 10.0,
                                       "seed": 0}}
PARITY_FINITE_SUM = {"problem": "finite-sum-quadratic",
                     "problem_params": {"n_inner": 256, "n_outer": 256, "d_inner": 5,
                                        "d_outer": 5, "mu": 1.0, "L": 4.0, "L_cross": 1.0,
                                        "seed": 16}}


def baseline_record(name: str, run, reference: str, derived, horizon_of, *,
                    assumptions_extra=(), step_options=("step_size",),
                    parity=PARITY_QUADRATIC):
    """The :class:`~refbilevel.solver_record.SolverRecord` of a baseline: ``derived(sc)``
    (``derived(sc, l_f2=...)`` when it takes the upper level's constant)
    gives the "default" options from the problem's
    :class:`~refbilevel.solver_record.StepConstants` ``sc``, ``horizon_of(sc, options)`` its
    default T. "paper" runs the implementation's own (benchmark_bilevel) values, "theory"
    its ``mode="theory"`` (its constants are options)."""
    import inspect

    from refbilevel.solver_record import (
        LIPSCHITZ_HYPERGRADIENT,
        LOWER_LEVEL_GRADIENTS,
        PHI_BOUNDED_BELOW,
        SMOOTH_LL,
        STRONGLY_CONVEX_LL,
        SolverRecord,
        StepConstants,
        register_solver,
    )

    def defaults(problem, mode):
        if mode == "default":
            sc = StepConstants.of(problem)
            if "l_f2" in inspect.signature(derived).parameters:  # F2SA's penalty needs l_f2
                return {"mode": "tuned", **derived(sc, l_f2=float(problem.constants.l_f2 or 1.0))}
            return {"mode": "tuned", **derived(sc)}
        return {"mode": "tuned" if mode == "paper" else "theory"}

    def default_T(problem, mode, options):
        if mode != "default":
            return PAPER_T
        return horizon_of(StepConstants.of(problem), options)

    return register_solver(SolverRecord(
        name=name, reference=reference,
        assumptions=(LOWER_LEVEL_GRADIENTS, STRONGLY_CONVEX_LL, SMOOTH_LL,
                                    LIPSCHITZ_HYPERGRADIENT, PHI_BOUNDED_BELOW)
        + tuple(assumptions_extra),
        options=baseline_options(run), defaults=defaults, default_T=default_T,
        invoke=invoke_baseline, counts=PAPER_COUNTS.get(name), step_options=step_options,
        parity=lambda: dict(parity),
        paper_counts=lambda trace, problem: paper_cumulative_counts(
            name, trace.params, trace.iterations, trace.extra.get("hia_p")),
        counts_reference=PAPER_COUNTS[name]["section"]))


def single_loop_outer_step(sc) -> float:
    """γ = min(ρ μ/L_φ, 1/(4 L_φ)) with ρ = 1/L_y: the outer step of a single-loop method
    (one inner step per outer step). The inner iterates (y, z) contract by 1 − ρμ per step
    while x moves by γ||d||; the two-timescale condition of SOBA/TTSA/MA-SOBA
    (docs/baselines.rst §3, §4, §6: γ = o(ρ), small against ρμ/L_φ) holds with the ratio
    γ/ρ ≤ μ/L_φ, and γ ≤ 1/(4 L_φ) keeps the x-step a quarter of gradient descent's 1/L_φ
    where κ is small (there ρμ/L_φ alone is close to 1/L_φ, and the lag of the inner
    iterates — or MA-SOBA's averaged direction — makes 1/L_φ unstable)."""
    return min(sc.mu / (sc.L_y * sc.L_phi), 0.25 / sc.L_phi)
