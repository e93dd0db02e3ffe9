"""UniBiO (UniBiO Algorithm 2; docs/unibio.rst §4.2), NumPy reference batched over replicas.

    y_0 <- Epoch-SGD(x_0, y_init, K_0)                                   (warm start)
    for t = 0..T-1:
        if t > 0 and t mod I == 0:  y_t <- Epoch-SGD(x_t, y_{t-1}, K)    (periodic LL update)
        else:                       y_t <- y_{t-1}
        m_t = beta m_{t-1} + (1 - beta) ĝ(x_t, y_t)                       (m_{-1} = 0, CODE)
        x_{t+1} = x_t - eta m_t / ||m_t||                                 (normalized momentum)

ĝ is the generalized Neumann estimator (H^{-T} form; docs/unibio.rst §3.5, §1.6) from
:mod:`refbilevel.estimators.neumann`. Per UL iteration: 1 ∇_x F, 1 F_u, Q generalized HVPs,
1 JVP; LL: the Epoch-SGD budgets (docs/unibio.rst §4.2 "Oracle cost").

Parameter modes: :func:`tuned_params` (the Section 6 values of the authors' code, docs/unibio.rst
§7.1)
and :func:`refbilevel.algorithms.unibio_schedule.theory_schedule` (the DERIVED Theorem 5.1
instantiation of docs/unibio.rst §5.5).

Code-compatibility options (docs/unibio.rst §8): ``restart="random"`` restarts every Epoch-SGD call
from a fresh N(0, 1) draw (item 2), ``norm_eps=1e-8`` divides by ||m|| + 1e-8 (item 4),
``budget_rule="code"`` and ``average="post"`` (item 3). The code's closed-form hypergradient
shortcut (item 1) is not reproduced: the spec reports the faithful estimator gives nearly
identical curves, and a shortcut would bypass the oracle counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from refbilevel.algorithms.epoch_sgd import epoch_schedule, epoch_sgd
from refbilevel.algorithms.trace import Trace, TraceRecorder
from refbilevel.backends.registry import register
from refbilevel.estimators.neumann import neumann_core
from refbilevel.validation import as_vector_batch, require_choice, require_int, require_range

# docs/unibio.rst §7.1 (CODE): best UL step per p for the Section 6 synthetic run
SECTION6_ETA = {2: 0.05, 4: 0.03, 6: 0.02, 8: 0.01}


def step_halvings(t: int, hold: int, halving: int) -> int:
    """The halvings of the UL step at iteration t: 0 for t < hold (or hold < 0: no
    schedule), then 1 + (t - hold) // halving. The step is ldexp(eta, -halvings): a power of
    two times eta, exact in floating point, so both backends take the same step. The Numba
    kernels (unibio_numba) compile this very function, so that their step is this one."""
    if hold < 0 or t < hold:
        return 0
    return 1 + (t - hold) // halving


@dataclass(frozen=True)
class UniBiOParams:
    T: int  # UL iterations
    eta: float  # UL step (normalized: ||x_{t+1} - x_t|| = eta)
    beta: float  # momentum
    I: int  # LL update period
    K: int  # Epoch-SGD budget of each periodic call ("K_t")
    K_0: int  # warm-start budget
    T_1: float = 5.0  # Epoch-SGD first epoch length / radius / step (periodic calls)
    D_1: float = 1.0
    gamma_1: float = 1.0
    T_1_0: float | None = None  # warm-start Epoch-SGD parameters (default: the periodic ones)
    D_1_0: float | None = None
    gamma_1_0: float | None = None
    Q: int = 3  # Neumann terms
    alpha: float | None = None  # Neumann step, default 1/C
    truncation: str = "fixed"
    budget_rule: str = "paper"
    average: str = "pre"
    restart: str = "warm"  # "random": the authors' N(0,1) restarts (docs/unibio.rst §8 item 2)
    norm_eps: float = 0.0  # the authors' code uses 1e-8 (docs/unibio.rst §8 item 4)
    # geometric step schedule (docs/unibio.rst §5.5): eta for the first eta_hold UL steps,
    # then halved, and halved again every eta_halving steps; None: eta throughout (the paper)
    eta_hold: int | None = None
    eta_halving: int = 1

    def validated(self) -> UniBiOParams:
        require_int("T", self.T, low=1)
        require_range("eta", self.eta, low=0.0, low_inclusive=False)
        require_range("beta", self.beta, low=0.0, high=1.0, high_inclusive=False)
        require_int("I", self.I, low=1)
        require_int("K", self.K, low=0)
        require_int("K_0", self.K_0, low=0)
        require_int("Q", self.Q, low=0)
        require_choice("truncation", self.truncation, ("fixed", "randomized"))
        require_choice("budget_rule", self.budget_rule, ("paper", "code"))
        require_choice("average", self.average, ("pre", "post"))
        require_choice("restart", self.restart, ("warm", "random"))
        require_range("norm_eps", self.norm_eps, low=0.0)
        if self.eta_hold is not None:
            require_int("eta_hold", self.eta_hold, low=0)
        require_int("eta_halving", self.eta_halving, low=1)
        if self.alpha is not None:
            require_range("alpha", self.alpha, low=0.0, low_inclusive=False)
        # the Epoch-SGD ranges of epoch_schedule, checked here so that the warm-start *_0
        # fields name themselves (epoch_schedule only sees the value, named T_1, D_1, ...)
        for name in ("T_1", "T_1_0"):
            if getattr(self, name) is not None:
                require_range(name, getattr(self, name), low=1.0)
        for name in ("D_1", "gamma_1", "D_1_0", "gamma_1_0"):
            if getattr(self, name) is not None:
                require_range(name, getattr(self, name), low=0.0, low_inclusive=False)
        return self

    def as_options(self) -> dict:
        """The fields as :func:`refbilevel.solve` options (T is solve's own argument):
        ``solve(problem, "unibio", T=params.T, **params.as_options())`` runs these params."""
        out = asdict(self)
        out.pop("T")
        return out

    def halvings(self, t: int) -> int:
        """How many times the UL step has been halved at iteration t (0 before eta_hold)."""
        return step_halvings(t, -1 if self.eta_hold is None else self.eta_hold,
                             self.eta_halving)

    def epochs(self, warm: bool, p: float):
        if warm:
            return epoch_schedule(self.K_0, self.T_1_0 or self.T_1, self.D_1_0 or self.D_1,
                                  self.gamma_1_0 or self.gamma_1, p, self.budget_rule)
        return epoch_schedule(self.K, self.T_1, self.D_1, self.gamma_1, p, self.budget_rule)


def tuned_params(p: float, **overrides) -> UniBiOParams:
    """The Section 6 synthetic-run values (docs/unibio.rst §7.1, CODE): T = 500, K = 100 (also
    for the t = 0 call), beta = 0.9, I = 2, T_1 = 5, D_1 = 1, gamma_1 = 1, eta by p."""
    eta = SECTION6_ETA.get(int(p)) if float(p).is_integer() else None
    base = UniBiOParams(T=500, eta=eta if eta is not None else 0.01, beta=0.9, I=2, K=100,
                        K_0=100)
    return replace(base, **overrides)


def unibio_cumulative_counts(params: UniBiOParams, p: float,
                             iterations: np.ndarray) -> dict[str, np.ndarray]:
    """Exact per-replica oracle calls made before UL iteration t's hypergradient, for each t
    in ``iterations`` (t = T gives the whole run; docs/unibio.rst §5.6 eq. (63), term by term).

    Samples: one per call (every call draws a fresh sample)."""
    t = np.asarray(iterations, dtype=np.int64)
    warm = sum(e.length for e in params.epochs(True, p))
    per_call = sum(e.length for e in params.epochs(False, p))
    n_periodic = np.where(t > 0, (np.maximum(t, 1) - 1) // params.I, 0)
    n_periodic = np.where((t > 0) & (t < params.T), t // params.I, n_periodic)
    gy = warm + n_periodic * per_call
    ul = {"grad_x_f": t, "f_u": t, "gen_hvp": t * params.Q, "jvp": t}
    out = {k: np.zeros_like(t) for k in ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp",
                                         "jvp", "gen_hvp", "f_u", "samples")}
    out.update(ul)
    out["grad_y_g"] = gy
    out["samples"] = gy + t * (params.Q + 3)
    return out


def unibio_oracle_counts(params: UniBiOParams, p: float) -> dict[str, int]:
    """Total per-replica oracle calls of a run, by kind (docs/unibio.rst §5.6 eq. (63))."""
    c = unibio_cumulative_counts(params, p, np.array([params.T]))
    return {k: int(v[0]) for k, v in c.items() if v[0]}


@register("algorithm", "unibio", "numpy")
def run_unibio(oracle, x0, y0, params: UniBiOParams, *, record_every: int = 1,
               seed: int | None = None, restart_rng: np.random.Generator | None = None,
               record_final: bool = False) -> Trace:
    """Run UniBiO from (x0, y0) (shapes (R, d_x), (R, d_y)); returns the :class:`Trace`.

    The records are x_0, ..., x_{T-1} (the iterates Theorem 5.1 averages over); with
    ``record_final`` (what :func:`refbilevel.solve` passes) x_T is recorded too, as every
    other method's trace ends at iteration T."""
    problem = oracle.problem
    params = params.validated()
    x = as_vector_batch("x0", x0, problem.d_x).reshape(-1, problem.d_x).copy()
    y = np.broadcast_to(as_vector_batch("y0", y0, problem.d_y), x.shape[:1] + (problem.d_y,)
                        ).copy()
    R = x.shape[0]
    if params.restart == "random" and restart_rng is None:
        raise ValueError("restart='random' needs restart_rng (a numpy.random.Generator)")
    C = problem.constants.C
    alpha = params.alpha if params.alpha is not None else (1.0 / C if C else None)
    if alpha is None:
        raise ValueError("alpha must be given when the problem has no bound C on ||H||")
    warm_epochs, epochs = params.epochs(True, problem.p), params.epochs(False, problem.p)
    rec = TraceRecorder(problem, R, record_every)
    m = np.zeros_like(x)

    def lower(x, y, eps):
        start = restart_rng.standard_normal(y.shape) if params.restart == "random" else y
        return epoch_sgd(oracle, x, start, eps, average=params.average)

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        y = lower(x, y, warm_epochs)
        for t in range(params.T):
            if t > 0 and t % params.I == 0:
                y_new = lower(x, y, epochs)
                y = np.where(rec.active[:, None], y_new, y)
            rec.record(t, x, y, oracle.counts)
            g = neumann_core(oracle, x, y, (R,), params.Q, alpha, params.truncation,
                             "generalized", 0)
            m_new = params.beta * m + (1.0 - params.beta) * g
            norm = np.linalg.norm(m_new, axis=-1, keepdims=True) + params.norm_eps
            x_new = x - math.ldexp(params.eta, -params.halvings(t)) * m_new / norm
            active = rec.check_finite(t + 1, x_new, m_new, y)
            x = np.where(active[:, None], x_new, x)
            m = np.where(active[:, None], m_new, m)
        if record_final:
            rec.record(params.T, x, y, oracle.counts, force=True)
    return rec.finish("unibio", "numpy", asdict(params), seed, x_final=x, y_final=y)


# ---- solver record ------------------------------------------------------------------------------
def _uniformly_convex(problem) -> bool:
    c = problem.constants
    return c.mu is not None and c.mu > 0 and float(c.p) >= 2.0


#: the default Neumann truncation bias, relative to ||H^{-T} f_u|| (see _default_params)
NEUMANN_BIAS = 1e-3


def neumann_terms(C: float, mu: float, bias: float = NEUMANN_BIAS) -> int:
    """Neumann terms enough for a truncation bias (1 − μ/C)^Q <= bias: Q = ⌈(C/μ) ln(1/bias)⌉
    (sufficient since ln(1/(1 − μ/C)) >= μ/C); the generalized Neumann series with step 1/C
    converges like (1 − μ/C)^Q (docs/unibio.rst §3.5)."""
    return int(math.ceil(C / mu * math.log(1.0 / bias)))


def _default_params(problem, mode: str) -> dict:
    """UniBiO's parameters by mode. "paper": :func:`tuned_params` (docs/unibio.rst §7.1).
    "default": the same Section 6 loop with the UL step from the problem's constants: the
    normalized step moves x by exactly η, so the last iterate settles within O(η) of a
    stationary point and ||∇φ|| there is O(L_φ η/(1 − β)); η = (1 − β)/(30 L_φ) keeps that
    floor well under the start scale (Theorem 5.1's η ∝ ε/L_φ shape), the Neumann step
    α = 1/C and Q = ⌈(C/μ) ln(1/NEUMANN_BIAS)⌉ terms (truncation bias (1 − μ/C)^Q ≤
    NEUMANN_BIAS = 1e-3 of ||H^{-T} f_u||, docs/unibio.rst §3.5: a tenth of the 1e-2 that the
    matrix, claim X5, asks of ||∇φ(x_T)||/||∇φ(x_0)||, the budget PZOBO's N gets for its
    Jacobian bias, docs/baselines.rst §16; the Section 6 value Q = 3 leaves a bias of
    (1 − μ/C)^3, 70% at κ = 10). Where φ is
    only Hölder-smooth (p > 2 and L_phi1 > 0), the floor of the Hölder term of (8) at η is
    O(L_phi1 η^{1/(p-1)}/(1 − β)), far above the Lipschitz one: η is then held for the
    travel and halved geometrically down to the step that gives that term the same floor
    (:func:`holder_halvings`, docs/unibio.rst §5.5). "theory": the Theorem 5.1
    instantiation needs a target ε (:func:`_theory_options`)."""
    if mode == "theory":
        return {}  # the schedule needs the start, the oracle and eps: _localize builds it
    base = asdict(tuned_params(problem.p))
    base.pop("T")
    if mode == "default":
        from refbilevel.solver_record import StepConstants

        L_phi = StepConstants.hypergradient_lipschitz(problem)
        base["eta"] = min(base["eta"], (1.0 - base["beta"]) / (30.0 * L_phi))
        c = problem.constants
        base["Q"] = neumann_terms(float(c.C), float(c.mu))
        if holder_halvings(problem, base["eta"], base["beta"]) > 0:
            base["eta_hold"] = _travel_steps(base["eta"])
            base["eta_halving"] = max(1, round(STAGE_MEMORIES / (1.0 - base["beta"])))
    return base


#: UL steps per halving of the default's geometric step schedule, in units of the
#: momentum's memory 1/(1 − β). After each halving the lower level must re-track y*(x) as
#: x settles on the finer scale; on the sharp-Hölder family (p = 4, y* = 0 at the solution,
#: where the lower level is flattest) stages of 2000 steps (β = 0.9) stall at 1.3e-2, stages
#: of 4000 to 20000 reach 3e-3 to 9e-3 (docs/unibio.rst §5.5)
STAGE_MEMORIES = 500.0
#: the default's floor of ||∇φ|| in the bound's units (its η rule: L_phi2 η/(1 − β) = 1/30)
DEFAULT_FLOOR = 1.0 / 30.0


def holder_halvings(problem, eta: float, beta: float) -> int:
    """Halvings of the default UL step η down to the step whose Hölder floor
    L_phi1 η_k^{1/(p-1)}/(1 − β) is the default's DEFAULT_FLOOR, i.e. η_final =
    ((1 − β) DEFAULT_FLOOR / L_phi1)^{p-1} (the η of Theorem 5.1's instantiation,
    docs/unibio.rst §5.5, with ε/32 in place of the floor): ⌈log2(η/η_final)⌉, 0 when
    η is already there (p = 2, or L_phi1 = 0: ∇φ Lipschitz, the constant step suffices)."""
    c = problem.constants
    L1 = float(c.L_phi1 or 0.0)
    if L1 <= 0.0 or float(c.p) <= 2.0:
        return 0
    eta_final = ((1.0 - beta) * DEFAULT_FLOOR / L1) ** (float(c.p) - 1.0)
    return max(0, int(math.ceil(math.log2(eta / eta_final))))


def _travel_steps(eta: float) -> int:
    """2 D/η UL steps, D = 15 (the normalized step moves x by η per step; D bounds the
    distance to a stationary point from the default starts — about 20 on the default
    quadratic, reached within 2D/η with the momentum's detours), at most MAX_DEFAULT_T."""
    from refbilevel.solver_record import MAX_DEFAULT_T

    return int(min(MAX_DEFAULT_T, math.ceil(2 * 15.0 / float(eta))))


#: the options of mode="theory" that are not UniBiOParams fields (the target and the LL
#: failure probability of Theorem 5.1)
THEORY_OPTIONS = ("eps", "delta")
#: the floor of G_0 = ||∇_y g(x_0, y_0)|| in the warm-start budget: at G_0 = 0 (a start at
#: y*(x_0)) Lemma C.2's V_1 = G_0 dist vanishes and eq. (49)'s T_1 ∝ 1/V_1² is undefined
THEORY_G0_FLOOR = 1e-3


def _theory_options(problem, x0, y0, options: dict, oracle) -> dict:
    """mode="theory": Theorem 5.1's ε-schedule (docs/unibio.rst §5.5; the DERIVED sufficient
    instantiation of :func:`refbilevel.algorithms.unibio_schedule.theory_schedule` — the
    paper's exact constants of (49), (51)-(54), (59)-(62) are NOT RECOVERED) for the target
    ``eps`` (required: there is no problem-free default, since the schedule's cost grows as
    ε^{-(5p-6)}; a one-line error names it) and the LL failure probability ``delta``
    (default 0.1). Its inputs from the start and the oracle, worst case over the replicas:
    Δ_φ = φ(x_0) − inf φ (``phi_inf`` where the problem states it; else the bound
    ||∇φ(x_0)||²/(2λ_min(∇²φ)) of a strongly convex φ), G_0 = ||∇_y g(x_0, y_0)|| (at least
    :data:`THEORY_G0_FLOOR`), ||∇φ(x_0)|| and the Gaussian oracle's noise levels. A problem
    with no global bound C_f on ||f_u|| (the quadratic) gets it on a ball around the start,
    as BO-REP's ρ: C_f = 10 max(1, max_r ||f_u(x_0r, y*(x_0r))||). Options the user gives
    replace the schedule's fields; the schedule's T is the default horizon."""
    import copy
    from dataclasses import replace as replace_fields

    from refbilevel.algorithms.unibio_schedule import theory_schedule
    from refbilevel.oracles.gaussian import NoiseConfig

    eps = options.get("eps")
    if eps is None:
        raise ValueError("eps must be given for unibio mode='theory': the target accuracy "
                         "E[(1/T) Σ ||∇φ(x_t)||] <= eps, a number > 0 (docs/unibio.rst §5.5)")
    eps = require_range("eps", eps, low=0.0, low_inclusive=False)
    delta = require_range("delta", options.get("delta", 0.1), low=0.0, high=1.0,
                          low_inclusive=False, high_inclusive=False)
    noise = getattr(oracle, "noise", None)
    if not isinstance(noise, NoiseConfig):
        raise ValueError(f"unibio mode='theory' needs a Gaussian oracle (its noise levels "
                         f"enter the schedule, docs/unibio.rst §5.5), got "
                         f"{type(oracle).__name__}")
    c = problem.constants
    grad_phi_0 = np.linalg.norm(problem.grad_phi(x0), axis=-1)
    if c.extra.get("phi_inf") is not None:
        delta_phi = float(np.max(problem.phi(x0) - float(c.extra["phi_inf"])))
    elif (c.extra.get("lambda_min_hessian_phi") or 0.0) > 0.0:
        delta_phi = float(np.max(grad_phi_0**2) / (2.0 * c.extra["lambda_min_hessian_phi"]))
    else:
        raise ValueError(f"unibio mode='theory' needs phi(x_0) - inf phi: "
                         f"{type(problem).__name__} states neither phi_inf nor a positive "
                         "lambda_min_hessian_phi")
    G_0 = float(np.max(np.linalg.norm(problem.grad_y_g(x0, y0), axis=-1)))
    local = problem
    if c.C_f is None:  # a shallow copy of the problem with the localized constant
        f_u = problem.f_u(x0, problem.y_star(x0))
        local = copy.copy(problem)
        local.constants = replace_fields(c, C_f=10.0 * max(1.0, float(np.max(
            np.linalg.norm(f_u, axis=-1)))))
    sched = theory_schedule(local, noise, eps, delta_phi=max(delta_phi, 0.0),
                            G_0=max(G_0, THEORY_G0_FLOOR),
                            grad_phi_0=float(np.max(grad_phi_0)), delta=delta)
    user = {k: v for k, v in options.items() if k not in THEORY_OPTIONS}
    return {**sched.params().as_options(), **user, "eps": eps, "delta": delta,
            "theory_T": sched.T}


def _localize(problem, x0, y0, options: dict, *, oracle, mode: str) -> dict:
    if mode == "theory":
        return _theory_options(problem, x0, y0, options, oracle)
    given = [k for k in THEORY_OPTIONS if k in options]
    if given:
        raise ValueError(f"{', '.join(given)} apply to unibio mode='theory' only (got mode="
                         f"{mode!r})")
    return options


def _default_T(problem, mode, options) -> int:
    """"paper": 500 (§7.1). "theory": the ε-schedule's T. "default": the travel at η
    (:func:`_travel_steps`), then, with the geometric schedule, the stages of each of the
    :func:`holder_halvings` halvings (docs/unibio.rst §5.5); at most MAX_DEFAULT_T in all
    (the stages are cut, never the travel)."""
    if mode == "theory":
        return int(options["theory_T"])
    if mode != "default":
        return 500
    if options.get("eta_hold") is None:
        return _travel_steps(options["eta"])
    from refbilevel.solver_record import MAX_DEFAULT_T

    stages = holder_halvings(problem, float(options["eta"]), float(options["beta"]))
    return int(min(MAX_DEFAULT_T, int(options["eta_hold"])
                   + stages * int(options["eta_halving"])))


def _invoke(run, inputs):
    opts = dict(inputs.options)
    theory = {k: opts.pop(k) for k in (*THEORY_OPTIONS, "theory_T") if k in opts}
    params = UniBiOParams(T=inputs.T, **opts)
    trace = run(inputs.oracle, inputs.x0, inputs.y0, params, record_every=inputs.record_every,
                seed=inputs.seed, restart_rng=inputs.restart_rng, record_final=True)
    if theory:  # the target the schedule was built for (its own T: theory_T)
        trace.extra["theory_schedule"] = theory
    return trace


def _solver_record():
    from dataclasses import fields

    from refbilevel.solver_record import (
        LOWER_LEVEL_GRADIENTS,
        PHI_BOUNDED_BELOW,
        Assumption,
        SolverRecord,
    )

    return SolverRecord(
        name="unibio", reference="docs/unibio.rst §4.2",
        assumptions=(
            LOWER_LEVEL_GRADIENTS,
            Assumption("a (mu, p)-uniformly convex lower level (mu > 0, p >= 2)",
                       _uniformly_convex, "uniformly convex LL"),
            # C and L_phi2 set the "default" and "theory" parameters (the Neumann step 1/C
            # and length, the UL step); "paper" runs the Section 6 values without them (an
            # explicit alpha where the problem states no C), the user answering for the
            # hypotheses (claim U9's non-separable family, whose H is unbounded)
            Assumption("a bound C on the generalized Hessian (Neumann step 1/C)",
                       lambda P: P.constants.C is not None and P.constants.C > 0, "bounded C",
                       for_parameters=True),
            Assumption("a Lipschitz ∇_x f (l_f1 stated)",
                       lambda P: P.constants.l_f1 is not None, "Lipschitz ∇_x f"),
            Assumption("a Hölder-smooth hyperobjective (L_phi2 stated)",
                       lambda P: P.constants.L_phi2 is not None, "Hölder-smooth φ",
                       for_parameters=True),
            PHI_BOUNDED_BELOW,
        ),
        options=tuple(f.name for f in fields(UniBiOParams) if f.name != "T") + THEORY_OPTIONS,
        defaults=_default_params, default_T=_default_T, invoke=_invoke, localize=_localize,
        step_options=("eta",),
        parity=lambda: {"problem": "unibio-example3", "problem_params": {"p": 4}, "x0": 1.0},
        parity_T_cap=500,
        paper_counts=lambda trace, problem: unibio_cumulative_counts(
            UniBiOParams(**trace.params), problem.p, np.asarray(trace.iterations)),
        counts_reference="docs/unibio.rst §4.2 'Oracle cost', §5.6 eq. (63) "
                         "(unibio_cumulative_counts)")


def _register() -> None:
    from refbilevel.solver_record import register_solver

    register_solver(_solver_record())


_register()
