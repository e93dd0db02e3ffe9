"""BO-REP: bilevel optimization with initialization refinement and periodic updates
(Hao, Gong, Liu, ICLR 2024, Algorithms 1-3; docs/borep.rst §4), NumPy reference batched over
replicas.

    1: y_1 ← EpochSGD(x_1, y_0)                        (Alg. 3, initialization refinement)
    for t = 1..T:
    3:   y_t ← UpdateLower(t, x_t, y_{t-1})              (Alg. 2: every I steps, N projected
                                                          SGD steps in B(y_{t-1}, R))
    4:   z_{t+1} ← Π_{B(0,ρ)}(z_t − ν[∇²_yy G(x_t,y_t;ζ_t) z_t − ∇_y F(x_t,y_t;ξ_t)])
    5:   m_t ← β m_{t-1} + (1−β)[∇_x F(x_t,y_t;ξ_t) − ∇²_xy G(x_t,y_t;ζ_t) z_t]
    6:   x_{t+1} ← x_t − η m_t/||m_t||                  (normalized momentum)

Choices where the paper's formulas were not recovered (docs/borep.rst §4, DERIVED): line 5 uses
z_t (before line 4) and the same samples as line 4; the period phase is t = 1 + kI, k ≥ 1;
the LL ball is centred at y_{t-1}; Alg. 2 returns the last iterate, Alg. 3 the average of
each epoch's post-step iterates; if ||m_t|| = 0 line 6 is skipped (no ε in the
denominator).

Two parameter modes (:func:`borep_params`):

* ``mode="tuned"``: the §8 experiment values η = 0.02, β = 0.9, I = 10, N = 20, γ = 0.1,
  ν = 0.2, R = 5, ρ = l_{f,0}/μ, EpochSGD k† = 6, T_1 = 20, θ_1 = 0.5, D_1 = 20;
* ``mode="theory"``: the DERIVED schedule of docs/borep.rst §5.3 as a function of ε and the
  problem constants (:func:`borep_theory_schedule`), whose exact oracle count is
  :func:`borep_oracle_budget` (claim B3's accounting test).

Random-number order: Epoch-SGD draws one ∇_y G block per step; each outer iteration draws,
on an update iteration, N ∇_y G blocks (one per LL step), then ∇_x F, ∇_y F, HVP, JVP
blocks (the (ξ_t, ζ_t) pair shared by lines 4 and 5; with a
:class:`~refbilevel.oracles.finite_sum.FiniteSumOracle`, whose samples serve several kinds,
one outer minibatch ξ_t for ∇_x F and ∇_y F and one inner minibatch ζ_t for the HVP and the
JVP, drawn in that order; at full batch every oracle is the exact sum). Oracle calls per
outer iteration (docs/borep.rst §4, DERIVED): 1 ∇_x F, 1 ∇_y F, 1 HVP, 1 JVP, plus N ∇_y G on
update iterations;
Epoch-SGD costs Σ_k T_1 2^{k-1} ∇_y G (:func:`borep_oracle_counts`).

Negative controls (claim B2): ``normalize=False`` replaces line 6 by x ← x − η m (momentum
SGD, *not* BO-REP) — from x_0 = 9·1 on P1 it overflows.

Two algorithm variants (``BOREPParams.variant``; docs/borep.rst §7 "The authors' code vs. the
paper"), orthogonal to the parameter mode:

* ``variant="paper"`` (default): Algorithms 1-3 as above, with Epoch-SGD and projections.
* ``variant="code"``: the per-iteration logic of the released code (docs/borep.rst §7, CODE,
  ``data_cleaning/bo_rep.py``): Epoch-SGD off (``epoch_k = 0``), projections off
  (``project = False``; ``R_ball`` and ``rho`` are unused), the lower-level update at every
  iteration with (t − 1) mod I == 0 — the code's ``step % interval == 0`` with step = t − 1,
  so *including* the first iteration — with 1 + N steps, z from the post-update y, and
  ε = 1e-10 in the normalization. Iteration t (docs/borep.rst §7 items 1-5):

      1: h ← ∇²_yy G(x_t, y; ζ_t) z_t                     (HVP at the *current* y, before 2)
      2: if (t − 1) mod I == 0: u_0 = y; for k = 1..1+N:
             s_k = s_{k-1} + ∇_y G(x_t, u_{k-1}; π_t^k)  (s_0 = 0; fresh sample each step)
             u_k = u_{k-1} − γ s_k;                y ← u_{1+N}   (no projection)
      3: z_{t+1} ← z_t − ν (h − ∇_y F(x_t, y; ξ_t))        (y the updated value; no projection)
      4: d_t ← ∇_x F(x_t, y; ξ'_t) − ∇²_xy G(x_t, y; ζ'_t) z_{t+1}   (updated z, third batch)
      5: m_t ← β m_{t-1} + (1−β) d_t;   x_{t+1} ← x_t − η m_t / (||m_t|| + 1e-10)

  The *accumulating* gradient s_k in line 2 is a property of the code, not of the paper: the
  code calls ``backward()`` and ``optimizer.step()`` 1 + N times without zeroing the
  gradients in between (``zero_grad`` comes only after the loop), so its k-th SGD step uses
  the sum of the k lower-level gradients drawn so far. We reproduce that faithfully (it is an
  undamped heavy-ball recursion: u_{k+1} − 2u_k + u_{k-1} = −γ ∇_y G(u_k)).

  Ambiguities of the code's order (DERIVED choices, following docs/borep.rst §7's wording):
  (a) the HVP of item 1 is taken at the current y, *before* the update (§7 item 1; the
  hyper-cleaning file does so; ``hyperparam_opt/bo_rep.py`` of the same repository instead
  updates y first — N steps, without the extra one — and takes the HVP at the updated y);
  (b) in the code, the HVP and the first SGD step of item 2 share one mini-batch (one
  ``backward(create_graph=True)``); an additive-noise oracle has independent noise per
  oracle kind, so here they are two draws (one HVP, one ∇_y G); (c) ∇_x F and ∇_y F share
  the code's upper-level batch; here they are two draws, as in the paper variant;
  (d) z_1: the code draws z Xavier-uniform, U(−a, a) with a = sqrt(6/(P + 1)) over the P
  lower-level parameters (``nn.init.xavier_uniform_`` of a (P, 1) tensor); here z_1 is the
  caller's ``z0`` (default 0, as in the paper variant) and the oracle's Generator is not
  used for it — :func:`xavier_uniform_z0` draws the code's initialisation from a Generator
  the caller passes. The code's values (I = 2-3, N = 3-10, ν = 1e-2, β = 0.9; docs/borep.rst §6,
  §7) were tuned for its RNN tasks; :func:`borep_params` gives the code variant the same
  ``mode`` values as the paper variant (override I, N, ν to use the code's).

  Random-number order of the code variant, per iteration t (one sample per oracle kind, a
  minibatch for a finite sum too: the code's batches are not reproduced): the HVP block; on
  an update iteration 1 + N ∇_y G blocks (one per SGD step, drawn just before it); then
  ∇_y F, ∇_x F, JVP. No Epoch-SGD draws. Oracle calls per iteration: 1 HVP, 1 ∇_y F, 1 ∇_x F, 1 JVP,
  plus 1 + N ∇_y G on update iterations; over T iterations there are ⌈T/I⌉ update
  iterations (t = 1, 1 + I, 1 + 2I, ... ≤ T), so T × (HVP, ∇_y F, ∇_x F, JVP) and
  ⌈T/I⌉(1 + N) ∇_y G (:func:`borep_oracle_counts`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from refbilevel.algorithms.trace import Trace, TraceRecorder
from refbilevel.backends import register
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.projection import project_ball
from refbilevel.validation import as_vector_batch, require_int, require_range

__all__ = [
    "BOREPParams",
    "BOREPTheoryConstants",
    "BOREPTheorySchedule",
    "borep",
    "borep_cumulative_counts",
    "borep_oracle_budget",
    "borep_oracle_counts",
    "borep_params",
    "borep_theory_schedule",
    "epoch_sgd",
    "light_tail_sigma",
    "xavier_uniform_z0",
]

MODES = ("tuned", "theory")
VARIANTS = ("paper", "code")  # docs/borep.rst §7: Algorithms 1-3 vs the released code's iteration
CODE_EPS = 1e-10  # the code's ε in x ← x − η m/(||m|| + ε) (docs/borep.rst §7 item 5)


# ---- parameters -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BOREPParams:
    """Every parameter of Algorithms 1-3 (docs/borep.rst §4 names; ``R_ball`` is the LL ball R).

    ``normalize=False`` and ``project=False`` exist for the negative controls and the
    code-like variant (docs/borep.rst §7); the paper's algorithm has both True.

    ``variant`` (docs/borep.rst §7): ``"paper"`` (Algorithms 1-3) or ``"code"`` (the released
    code's iteration, see the module docstring). The code has neither projections nor
    Epoch-SGD, so ``variant="code"`` requires ``project=False`` and ``epoch_k=0`` (the record
    then says what ran); ``R_ball``, ``rho`` and the other ``epoch_*`` fields are unused by it.
    """

    T: int
    eta: float
    beta: float
    I: int
    N: int
    gamma: float
    nu: float
    R_ball: float
    rho: float
    epoch_k: int
    epoch_T1: int
    epoch_theta1: float
    epoch_D1: float
    normalize: bool = True
    project: bool = True
    variant: str = "paper"

    def __post_init__(self) -> None:
        _check_variant(self.variant)
        require_int("T", self.T, low=1)
        require_range("eta", self.eta, low=0.0, low_inclusive=False)
        require_range("beta", self.beta, low=0.0, high=1.0, high_inclusive=False)
        require_int("I", self.I, low=1)
        require_int("N", self.N, low=0)
        require_range("gamma", self.gamma, low=0.0, low_inclusive=False)
        require_range("nu", self.nu, low=0.0, low_inclusive=False)
        require_range("R_ball", self.R_ball, low=0.0, low_inclusive=False)
        require_range("rho", self.rho, low=0.0, low_inclusive=False)
        require_int("epoch_k", self.epoch_k, low=0)
        require_int("epoch_T1", self.epoch_T1, low=1)
        require_range("epoch_theta1", self.epoch_theta1, low=0.0, low_inclusive=False)
        require_range("epoch_D1", self.epoch_D1, low=0.0, low_inclusive=False)
        if self.variant == "code" and (self.project or self.epoch_k != 0):
            raise ValueError(
                "variant='code' has no projections and no Epoch-SGD (docs/borep.rst §7): it needs "
                f"project=False and epoch_k=0; got project={self.project!r}, "
                f"epoch_k={self.epoch_k!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_variant(variant: Any) -> str:
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(map(repr, VARIANTS))} "
                         f"(docs/borep.rst §7); got {variant!r}")
    return variant


def _constant(problem, key: str) -> float:
    ex = problem.constants.extra
    if key not in ex or ex[key] is None:
        raise ValueError(f"problem {problem!r} lacks the BO-REP constant {key!r} in "
                         "constants.extra (docs/borep.rst §2, §8); pass the parameter explicitly")
    return float(ex[key])


def borep_params(problem, *, mode: str = "tuned", variant: str = "paper",
                 T: int | None = None, eps: float | None = None,
                 theory: BOREPTheoryConstants | None = None, **overrides: Any) -> BOREPParams:
    """Parameters of BO-REP in one of two modes (see the module docstring).

    ``mode="tuned"``: the §8 values; ``T`` defaults to 3000 (the §8 runs), ρ = l_{f,0}/μ from
    the problem's constants. ``mode="theory"``: needs ``eps`` and ``theory`` (a
    :class:`BOREPTheoryConstants`, e.g. :meth:`BOREPTheoryConstants.from_problem`); T is the
    schedule's. ``overrides`` replace individual fields.

    ``variant`` (``"paper"`` or ``"code"``, docs/borep.rst §7) is independent of ``mode``: the code
    variant takes the same mode values with ``project=False`` and ``epoch_k=0`` (the code
    has neither projections nor Epoch-SGD); the paper variant's values are unchanged.
    """
    _check_variant(variant)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if variant == "code":
        p = borep_params(problem, mode=mode, T=T, eps=eps, theory=theory,
                         **{k: v for k, v in overrides.items()
                            if k not in ("project", "epoch_k")})
        return replace(p, variant="code", project=overrides.get("project", False),
                       epoch_k=overrides.get("epoch_k", 0))
    if mode == "tuned":
        if eps is not None or theory is not None:
            raise ValueError("eps and theory apply to mode='theory' only")
        mu = problem.constants.mu
        rho = overrides.pop("rho", None)
        if rho is None:
            rho = _constant(problem, "l_f0") / mu  # ρ = l_{f,0}/μ bounds ||z*|| (docs/borep.rst §3)
        base = dict(T=3000 if T is None else T, eta=0.02, beta=0.9, I=10, N=20, gamma=0.1,
                    nu=0.2, R_ball=5.0, rho=rho, epoch_k=6, epoch_T1=20, epoch_theta1=0.5,
                    epoch_D1=20.0)
        base.update(overrides)
        return BOREPParams(**base)
    if eps is None or theory is None:
        raise ValueError("mode='theory' needs eps (target ε > 0) and theory "
                         "(BOREPTheoryConstants; docs/borep.rst §5.3)")
    p = borep_theory_schedule(eps, theory).params
    if T is not None:
        overrides["T"] = T
    return replace(p, **overrides) if overrides else p


# ---- theory mode (docs/borep.rst §5.3, DERIVED)
# -----------------------------------------------------
def light_tail_sigma(std: float, dim: int) -> float:
    """The smallest σ with E exp(||n||²/σ²) ≤ e for n ~ N(0, std² I_dim) (Assumption 3(iii)).

    E exp(||n||²/σ²) = (1 − 2std²/σ²)^{-dim/2} ≤ e ⟺ σ² ≥ 2 std²/(1 − e^{-2/dim})
    (DERIVED; ≈ std² (dim + 1) for large dim).
    """
    std = require_range("std", std, low=0.0)
    dim = require_int("dim", dim, low=1)
    return float(math.sqrt(2.0 * std**2 / (1.0 - math.exp(-2.0 / dim))))


@dataclass(frozen=True)
class BOREPTheoryConstants:
    """The inputs of the §5.3 schedule (docs/borep.rst §2 and §5.3 names).

    Assumption 1: L_x0, L_x1, L_y0, L_y1, r_f; Assumption 2: mu, l_g1 (joint smoothness of
    g), C_gxy, L_gxy, L_gyy, l_f0; Assumption 3: sigma_f, sigma_g1 (light tail), sigma_g2;
    Delta ≥ Φ(x_1) − inf Φ; D1 ≥ ||y_0 − y*(x_1)|| (any upper bound, §5.3); delta = failure
    probability.
    """

    L_x0: float
    L_x1: float
    L_y0: float
    L_y1: float
    r_f: float
    mu: float
    l_g1: float
    C_gxy: float
    L_gxy: float
    L_gyy: float
    l_f0: float
    sigma_f: float
    sigma_g1: float
    sigma_g2: float
    Delta: float
    D1: float
    delta: float = 0.1

    def __post_init__(self) -> None:
        for name in ("L_x0", "L_x1", "L_y0", "L_y1", "L_gxy", "L_gyy", "sigma_f", "sigma_g1",
                     "sigma_g2"):
            require_range(name, getattr(self, name), low=0.0)
        for name in ("mu", "l_g1", "C_gxy", "l_f0", "Delta", "D1"):
            require_range(name, getattr(self, name), low=0.0, low_inclusive=False)
        require_range("r_f", self.r_f, low=0.0, low_inclusive=False)  # math.inf is rejected
        require_range("delta", self.delta, low=0.0, high=1.0, low_inclusive=False,
                      high_inclusive=False)

    @classmethod
    def from_problem(cls, problem, noise: NoiseConfig, x0, y0, *, phi_lower: float,
                     delta: float = 0.1) -> BOREPTheoryConstants:
        """The constants of a BO-REP test problem (``constants.extra`` keys of
        :mod:`refbilevel.problems.relaxed_smooth`) and of a Gaussian oracle's noise.

        Noise (DERIVED): σ_f = max(std_∇xF √d_x, std_∇yF √d_y) (Assumption 3(ii));
        σ_{g,1} = :func:`light_tail_sigma` of the ∇_y G noise; the additive HVP/JVP noise of
        :class:`GaussianOracle` has E||noise||² = std² dim whatever z is, so σ_{g,2} is set to
        (that level)/ρ, which makes the §5.3 product σ_{g,2} ρ equal to the true level.
        Δ = max Φ(x_0) − ``phi_lower`` over the replicas (``phi_lower`` ≤ inf Φ is the
        caller's: the problem's known minimum for P1/P2, docs/borep.rst §8); D_1 = 2||∇_y g(x_0,
        y_0)||/μ from the exact gradient (≥ 2||y_0 − y*||; §5.3 allows any upper bound; no
        oracle calls are counted for it).
        """
        ex = problem.constants.extra
        mu = float(problem.constants.mu)
        x0 = np.atleast_2d(as_vector_batch("x0", x0, problem.d_x))
        y0 = np.atleast_2d(as_vector_batch("y0", y0, problem.d_y))
        dx, dy = problem.d_x, problem.d_y
        rho = float(ex["l_f0"]) / mu
        prod = max(noise.hvp * math.sqrt(dy), noise.jvp * math.sqrt(dx))
        Delta = float(np.max(problem.phi(x0))) - float(phi_lower)
        if Delta <= 0:
            raise ValueError(f"phi_lower must be below phi(x0); got Delta = {Delta:g}")
        D1 = 2.0 * float(np.max(np.linalg.norm(problem.grad_y_g(x0, y0), axis=-1))) / mu
        return cls(
            L_x0=_constant(problem, "L_x0"), L_x1=_constant(problem, "L_x1"),
            L_y0=_constant(problem, "L_y0"), L_y1=_constant(problem, "L_y1"),
            r_f=_constant(problem, "r_f"), mu=mu, l_g1=_constant(problem, "l_g1_joint"),
            C_gxy=_constant(problem, "C_gxy"), L_gxy=_constant(problem, "L_gxy"),
            L_gyy=_constant(problem, "L_gyy"), l_f0=float(ex["l_f0"]),
            sigma_f=max(noise.grad_x_f * math.sqrt(dx), noise.grad_y_f * math.sqrt(dy)),
            sigma_g1=light_tail_sigma(noise.grad_y_g, dy), sigma_g2=prod / rho,
            Delta=Delta, D1=max(D1, 1e-12), delta=delta,
        )


@dataclass(frozen=True)
class BOREPTheorySchedule:
    """The §5.3 schedule at one ε: the algorithm's parameters plus the derived quantities
    (δ_y, L_0, L_1, r_Φ, σ_Φ, K_y, L_z*, ε_z, and whether η was lowered for ν)."""

    eps: float
    params: BOREPParams
    derived: dict[str, float]


def borep_theory_schedule(eps: float, c: BOREPTheoryConstants, *,
                          control: str | None = None) -> BOREPTheorySchedule:
    """The DERIVED theory-mode schedule of docs/borep.rst §5.3 (our constants, not the paper's):

        1 − β = min(1, ε²/(16σ_Φ²));  η = min((1−β)/(8L_1), ε(1−β)/(8L_0), r_Φ);
        T = ⌈4Δ/(ηε)⌉;  δ_y = min(r_f/2, 1/(8L_{x,1}), ε/(8K_y));
        I = max(1, ⌊δ_y/(2L_{y*}η)⌋);  γ = min(1/(2l_{g,1}), μδ_y²/(32σ_{g,1}²));
        N = ⌈(1/(μγ)) ln(64⌈T/I⌉/δ)⌉;  R = 2δ_y;
        ν = min(1/(2l_{g,1}), με_z²/(8σ_z²)), ε_z = ε/(8C_{g_xy}), σ_z² = 2σ_{g,2}²ρ² + 2σ_f²,
            and η ≤ νμε_z/(4L_{z*}) (η is lowered when the ν bounds conflict);
        Epoch-SGD: θ_1 = min(1/(2l_{g,1}), μD_1²/(8σ_{g,1}²)), k† = ⌈2 log₂(2D_1/δ_y)⌉,
            T_1 = ⌈4/(μθ_1) ln(2k†/δ)⌉,

    with L_{y*} = C_{g_xy}/μ, ρ = l_{f,0}/μ, σ_Φ² = 2σ_f² + 2ρ²σ_{g,2}²,
    K_y = L_{x,0} + L_{x,1}C_{g_xy}l_{f,0}/μ + L_{g_xy}ρ,
    L_{z*} = (1 + L_{y*})[(L_{y,0} + L_{y,1}l_{f,0})/μ + L_{g_yy}l_{f,0}/μ²] and (L_0, L_1, r_Φ)
    the DERIVED relaxed smoothness of Φ (docs/borep.rst §2 remark). Orders (§5.2): 1 − β ∝ ε²,
    η ∝ ε³, T ∝ ε^{-4}, I, N ∝ ε^{-2} (N up to a log), total oracle calls Õ(ε^{-4}).

    ``control`` exists only for claim B3's NEGATIVE CONTROL: ``"no_period"`` sets I = 1
    (the lower level is refreshed with N = Θ̃(ε^{-2}) steps at *every* outer iteration, as a
    method without periodic updates would), whose count grows as ε^{-6}, the wrong exponent.
    (The LL cost dominates: (T/I)N with T/I ∝ ε^{-2} does not depend on η, so a control that
    only mis-scales η or 1 − β would leave the leading count unchanged.)
    """
    eps = require_range("eps", eps, low=0.0, low_inclusive=False)
    if control not in (None, "no_period"):
        raise ValueError(f"control must be None or 'no_period'; got {control!r}")
    mu = c.mu
    L_ystar = c.C_gxy / mu
    rho = c.l_f0 / mu
    s = math.sqrt(1.0 + L_ystar**2)
    # DERIVED relaxed smoothness of Φ (docs/borep.rst §2, remark after Assumption 2)
    L0 = s * (c.L_x0 + c.L_x1 * c.C_gxy * c.l_f0 / mu + c.L_gxy * c.l_f0 / mu
              + c.C_gxy * (c.L_y0 + c.L_y1 * c.l_f0) / mu + c.C_gxy * c.L_gyy * c.l_f0 / mu**2)
    L1 = s * c.L_x1
    r_phi = c.r_f / s
    sig_phi2 = 2.0 * c.sigma_f**2 + 2.0 * rho**2 * c.sigma_g2**2
    K_y = c.L_x0 + c.L_x1 * c.C_gxy * c.l_f0 / mu + c.L_gxy * rho
    one_m_beta = 1.0 if sig_phi2 == 0 else min(1.0, eps**2 / (16.0 * sig_phi2))
    eta_cands = [eps * one_m_beta / (8.0 * L0), r_phi]
    if L1 > 0:
        eta_cands.append(one_m_beta / (8.0 * L1))
    eta = min(eta_cands)
    # ν and the z* tracking constraint (η ≤ ν μ ε_z / (4 L_z*))
    eps_z = eps / (8.0 * c.C_gxy)
    sig_z2 = 2.0 * c.sigma_g2**2 * rho**2 + 2.0 * c.sigma_f**2
    nu = 1.0 / (2.0 * c.l_g1)
    if sig_z2 > 0:
        nu = min(nu, mu * eps_z**2 / (8.0 * sig_z2))
    L_zstar = (1.0 + L_ystar) * ((c.L_y0 + c.L_y1 * c.l_f0) / mu + c.L_gyy * c.l_f0 / mu**2)
    eta_lowered = False
    if L_zstar > 0:
        eta_nu = nu * mu * eps_z / (4.0 * L_zstar)
        if eta_nu < eta:
            eta, eta_lowered = eta_nu, True
    T = math.ceil(4.0 * c.Delta / (eta * eps))
    dys = [c.r_f / 2.0, eps / (8.0 * K_y)]
    if c.L_x1 > 0:
        dys.append(1.0 / (8.0 * c.L_x1))
    delta_y = min(dys)
    I = max(1, math.floor(delta_y / (2.0 * L_ystar * eta)))
    if control == "no_period":  # NEGATIVE CONTROL only (see the docstring)
        I = 1
    gamma = 1.0 / (2.0 * c.l_g1)
    if c.sigma_g1 > 0:
        gamma = min(gamma, mu * delta_y**2 / (32.0 * c.sigma_g1**2))
    N = math.ceil(1.0 / (mu * gamma) * math.log(64.0 * math.ceil(T / I) / c.delta))
    theta1 = 1.0 / (2.0 * c.l_g1)
    if c.sigma_g1 > 0:
        theta1 = min(theta1, mu * c.D1**2 / (8.0 * c.sigma_g1**2))
    k_dag = max(0, math.ceil(2.0 * math.log2(2.0 * c.D1 / delta_y)))
    T1 = math.ceil(4.0 / (mu * theta1) * math.log(2.0 * max(k_dag, 1) / c.delta))
    params = BOREPParams(T=T, eta=eta, beta=1.0 - one_m_beta, I=I, N=N, gamma=gamma, nu=nu,
                         R_ball=2.0 * delta_y, rho=rho, epoch_k=k_dag, epoch_T1=T1,
                         epoch_theta1=theta1, epoch_D1=c.D1)
    derived = {"one_minus_beta": one_m_beta, "delta_y": delta_y, "L0_phi": L0, "L1_phi": L1,
               "r_phi": r_phi, "sigma_phi2": sig_phi2, "K_y": K_y, "L_ystar": L_ystar,
               "L_zstar": L_zstar, "eps_z": eps_z, "eta_lowered_for_nu": float(eta_lowered)}
    return BOREPTheorySchedule(eps=eps, params=params, derived=derived)


def borep_oracle_counts(params: BOREPParams) -> dict[str, int]:
    """Exact per-replica oracle calls of one BO-REP run with these parameters (X3, B3).

    Outer loop: T × (∇_x F, ∇_y F, HVP, JVP); periodic updates at t = 1 + kI ≤ T, k ≥ 1:
    ⌊(T−1)/I⌋ × N ∇_y G; Epoch-SGD: Σ_{k=1}^{k†} T_1 2^{k−1} = T_1(2^{k†} − 1) ∇_y G.
    Samples: one per call (every call draws fresh noise); with an oracle that shares samples
    (a finite sum) lines 4-5 draw one outer and one inner minibatch, two samples fewer per
    outer iteration (:func:`borep_cumulative_counts` with ``shared=True``).

    ``variant="code"`` (docs/borep.rst §7; module docstring): T × (∇_x F, ∇_y F, HVP, JVP);
    update iterations t = 1 + kI ≤ T, k ≥ 0 (the first included), i.e. ⌈T/I⌉ of them, each
    with 1 + N ∇_y G; no Epoch-SGD.
    """
    return _counts_through(params, params.T)


def _counts_through(params: BOREPParams, t: int, shared: bool = False) -> dict[str, int]:
    """Calls made by the end of outer iteration t (0 ≤ t ≤ T; t = 0: after Epoch-SGD), in
    Python ints (the theory schedule's counts exceed int64). ``shared``: lines 4-5 drew one
    outer and one inner sample per iteration (:func:`shares_samples`), two fewer samples
    than calls."""
    if params.variant == "code":
        n_code = -(-t // params.I)  # ⌈t/I⌉ update iterations among 1..t
        out = {"grad_x_f": t, "grad_y_f": t, "hvp": t, "jvp": t,
               "grad_y_g": n_code * (1 + params.N), "grad_x_g": 0}
        out["samples"] = sum(out.values())
        return out
    n_upd = max(t - 1, 0) // params.I  # updates at t' = 1 + kI ≤ t, k ≥ 1
    ll = n_upd * params.N + params.epoch_T1 * (2**params.epoch_k - 1)
    out = {"grad_x_f": t, "grad_y_f": t, "hvp": t, "jvp": t, "grad_y_g": ll,
           "grad_x_g": 0}
    out["samples"] = sum(out.values()) - (2 * t if shared else 0)
    return out


def borep_cumulative_counts(params: BOREPParams, iterations,
                            shared: bool = False) -> dict[str, np.ndarray]:
    """Per-replica calls made by the end of each outer iteration t in ``iterations`` (the
    records of a trace; t = 0 is the record after Epoch-SGD), by kind: the per-iteration
    counts of :func:`borep_oracle_counts` summed up to t (X3); ``shared`` as in the trace's
    ``extra["shared_samples"]`` (one sample for two calls in lines 4-5)."""
    its = [int(t) for t in np.asarray(iterations).ravel()]
    if any(t < 0 or t > params.T for t in its):
        raise ValueError(f"iterations must lie in [0, T = {params.T}], got {its}")
    rows = [_counts_through(params, t, shared) for t in its]
    return {k: np.array([r[k] for r in rows], dtype=np.int64) for k in rows[0]} if rows else {}


def borep_oracle_budget(eps: float, constants: BOREPTheoryConstants, *,
                        control: str | None = None) -> int:
    """Total oracle calls (∇F, ∇G, HVP, JVP) of the §5.3 theory schedule at target ε —
    exact accounting of :func:`borep_theory_schedule` via :func:`borep_oracle_counts`
    (claim B3: Õ(ε^{-4}), Theorem 3.2). ``control="no_period"`` is the negative control.
    A Python int (the counts exceed int64 for ε ≲ 1e-3)."""
    p = borep_theory_schedule(eps, constants, control=control).params
    c = borep_oracle_counts(p)
    return int(c["samples"])


# ---- building blocks --------------------------------------------------------------------------
def epoch_sgd(oracle: GaussianOracle | FiniteSumOracle, x: np.ndarray, y0: np.ndarray, *,
              k_dagger: int, T1: int, theta1: float, D1: float, project: bool = True) -> np.ndarray:
    """Algorithm 3 (Epoch-SGD with shrinking balls; docs/borep.rst §4): for k = 1..k†,
    T_k = T_1 2^{k−1}, θ_k = θ_1 2^{−(k−1)}, D_k = D_1 2^{−(k−1)/2}; projected SGD on
    g(x, ·) in B(ŷ^k, D_k) from ŷ^k; ŷ^{k+1} = the average of the epoch's post-step iterates.
    ``x`` is held fixed (x_1). Returns ŷ^{k†+1}, shape of y0."""
    yhat = np.array(y0, dtype=np.float64)
    R = yhat.shape[0]
    for k in range(1, k_dagger + 1):
        Tk = T1 * 2 ** (k - 1)
        th = theta1 * 2.0 ** (-(k - 1))
        Dk = D1 * 2.0 ** (-(k - 1) / 2.0)
        c = yhat
        u = yhat.copy()
        acc = np.zeros_like(u)
        for _ in range(Tk):
            g = oracle.grad_y_g(x, u, sample=oracle.draw("grad_y_g", (R,)))
            u = u - th * g
            if project:
                u = project_ball(u, Dk, c)
            acc += u
        yhat = acc / Tk
    return yhat


def xavier_uniform_z0(rng: np.random.Generator, d_y: int, replicas: int | None = None
                      ) -> np.ndarray:
    """The released code's z initialisation (docs/borep.rst §7): ``nn.init.xavier_uniform_`` of a
    (P, 1) tensor, i.e. i.i.d. U(−a, a) with a = sqrt(6/(P + 1)) (fan_in 1, fan_out P), here
    P = d_y. Shape (d_y,) or (replicas, d_y); drawn with ``rng.uniform`` from the Generator
    the caller passes (use a stream other than the oracle's to keep the oracle's draws
    unchanged). Pass the result as ``z0=`` to :func:`borep`."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    d_y = require_int("d_y", d_y, low=1)
    a = math.sqrt(6.0 / (d_y + 1))
    shape = (d_y,) if replicas is None else (require_int("replicas", replicas, low=1), d_y)
    return rng.uniform(-a, a, shape)


def require_borep_oracle(oracle) -> None:
    """ValueError unless ``oracle`` is a GaussianOracle or a FiniteSumOracle."""
    if not isinstance(oracle, (GaussianOracle, FiniteSumOracle)):
        raise ValueError("oracle must be a GaussianOracle or a FiniteSumOracle, got "
                         f"{type(oracle).__name__}")


def shares_samples(oracle) -> bool:
    """Whether lines 4-5 evaluate one outer sample ξ_t (∇_x F, ∇_y F) and one inner sample
    ζ_t (HVP, JVP) — an oracle whose samples may serve several kinds (a minibatch,
    ``shares_samples``) — or draw one noise block per kind (a GaussianOracle, whose
    per-kind noise is independent by construction)."""
    return bool(getattr(oracle, "shares_samples", False))


def _batch(problem, x0, y0):
    x = np.array(as_vector_batch("x0", x0, problem.d_x), dtype=np.float64, ndmin=2)
    y = np.array(as_vector_batch("y0", y0, problem.d_y), dtype=np.float64, ndmin=2)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError("x0 and y0 must have shape (d,) or (R, d)")
    R = max(x.shape[0], y.shape[0])
    if x.shape[0] not in (1, R) or y.shape[0] not in (1, R):
        raise ValueError(f"x0 and y0 replica counts disagree: {x.shape[0]} vs {y.shape[0]}")
    x = np.array(np.broadcast_to(x, (R, problem.d_x)), order="C")
    y = np.array(np.broadcast_to(y, (R, problem.d_y)), order="C")
    return x, y, R


# ---- the algorithm ----------------------------------------------------------------------------
def _accept_step(rec: TraceRecorder, t: int, T: int, oracle, y, old, new):
    """Iteration t's (x, z, m) where the new state is finite, the old one where a replica
    diverged (the recorder notes the iteration); then iteration t is recorded."""
    act = rec.check_finite(t - 1, new[0], y, new[1], new[2])[:, None]
    x, z, m = (np.where(act, b, a) for a, b in zip(old, new, strict=True))
    rec.record(t, x, y, oracle.counts, force=(t == T))
    return x, z, m


@register("algorithm", "borep", "numpy")
def borep(oracle: GaussianOracle | FiniteSumOracle, x0, y0, *, params: BOREPParams | None = None,
          mode: str = "tuned", T: int | None = None, eps: float | None = None,
          theory: BOREPTheoryConstants | None = None, z0=None, record_every: int = 1,
          seed: int | None = None, **overrides: Any) -> Trace:
    """BO-REP (Algorithm 1 with Algorithms 2 and 3; docs/borep.rst §4) from x_1 = ``x0``, y_0 =
    ``y0``.

    Parameters come from ``params`` or from :func:`borep_params` (``mode``, ``T``, ``eps``,
    ``theory``, ``overrides``; ``variant="code"`` among the overrides selects the released
    code's iteration, docs/borep.rst §7 and the module docstring). ``x0`` (d_x,) or (R, d_x) and
    ``y0`` batch R replicas that share the oracle's Generator. z_1 = ``z0`` (default 0; the
    code draws it at random, see :func:`xavier_uniform_z0`), m_0 = 0.

    Trace: record t holds x_{t+1} (t = 0 is x_1, after Epoch-SGD) and the current y; the
    Theorem 3.2 quantity (1/T)Σ_t ||∇Φ(x_t)|| is ``trace.avg_grad_phi_norm``. ``extra``:
    ``y_init_error`` (||y_1 − y*(x_1)|| after Epoch-SGD), ``n_lower_updates``, ``y``, ``z``.
    Non-finite replicas are frozen and flagged (``trace.diverged_at``). For
    ``variant="code"`` (no Epoch-SGD) record 0 holds x_1 and y_0, and ``y_init_error`` is
    ||y_0 − y*(x_1)||.
    """
    require_borep_oracle(oracle)
    problem = oracle.problem
    if params is None:
        params = borep_params(problem, mode=mode, T=T, eps=eps, theory=theory, **overrides)
    elif overrides or T is not None or eps is not None or theory is not None:
        raise ValueError("give either params or (mode, T, eps, theory, overrides), not both")
    if not isinstance(params, BOREPParams):
        raise ValueError(f"params must be a BOREPParams, got {type(params).__name__}")
    require_int("record_every", record_every, low=1)
    p = params
    x, y, R = _batch(problem, x0, y0)
    z = np.zeros((R, problem.d_y)) if z0 is None else np.array(
        np.broadcast_to(np.atleast_2d(as_vector_batch("z0", z0, problem.d_y)),
                        (R, problem.d_y)), order="C")
    m = np.zeros((R, problem.d_x))
    rec = TraceRecorder(problem, R, record_every)
    if p.variant == "code":
        return _borep_code(oracle, p, x, y, z, m, rec, seed)
    shared = shares_samples(oracle)
    n_upd = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # line 1: initialization refinement at x_1
        y = epoch_sgd(oracle, x, y, k_dagger=p.epoch_k, T1=p.epoch_T1, theta1=p.epoch_theta1,
                      D1=p.epoch_D1, project=p.project)
        y_init_err = np.linalg.norm(y - problem.y_star(x), axis=-1)
        rec.record(0, x, y, oracle.counts, force=True)
        for t in range(1, p.T + 1):  # the paper's index: iteration t updates x_t -> x_{t+1}
            # line 3, Algorithm 2: periodic projected SGD (t = 1 keeps y_1 from line 1)
            if t >= 2 and (t - 1) % p.I == 0:
                n_upd += 1
                c = y
                u = y.copy()
                for _ in range(p.N):
                    g = oracle.grad_y_g(x, u, sample=oracle.draw("grad_y_g", (R,)))
                    u = u - p.gamma * g
                    if p.project:
                        u = project_ball(u, p.R_ball, c)
                act = rec.active[:, None]
                y = np.where(act, u, y)
            # lines 4-5 share the samples (ξ_t, ζ_t) and use z_t (docs/borep.rst §4 details):
            # one outer and one inner minibatch where the oracle shares samples across kinds
            # (a finite sum), one noise block per kind for a GaussianOracle
            s_xf = oracle.draw("grad_x_f", (R,))
            s_yf = s_xf if shared else oracle.draw("grad_y_f", (R,))
            s_h = oracle.draw("hvp", (R,))
            s_j = s_h if shared else oracle.draw("jvp", (R,))
            gxf = oracle.grad_x_f(x, y, sample=s_xf)
            gyf = oracle.grad_y_f(x, y, sample=s_yf)
            hz = oracle.hvp_yy_g(x, y, z, sample=s_h)
            jz = oracle.jvp_xy_g(x, y, z, sample=s_j)
            z_n = z - p.nu * (hz - gyf)
            if p.project:
                z_n = project_ball(z_n, p.rho)
            m_n = p.beta * m + (1.0 - p.beta) * (gxf - jz)
            if p.normalize:  # line 6; skip the step where ||m_t|| = 0 (DERIVED guard)
                nm = np.sqrt(np.sum(m_n * m_n, axis=-1))[:, None]
                x_n = np.where(nm > 0, x - p.eta * m_n / np.where(nm > 0, nm, 1.0), x)
            else:  # NEGATIVE CONTROL: un-normalized momentum step
                x_n = x - p.eta * m_n
            x, z, m = _accept_step(rec, t, p.T, oracle, y, (x, z, m), (x_n, z_n, m_n))
    return rec.finish("borep", "numpy", p.as_dict(), seed, y_init_error=y_init_err,
                      n_lower_updates=n_upd, y=y, z=z, shared_samples=shared)


def _borep_code(oracle: GaussianOracle | FiniteSumOracle, p: BOREPParams, x: np.ndarray,
                y: np.ndarray, z: np.ndarray, m: np.ndarray, rec: TraceRecorder,
                seed: int | None) -> Trace:
    """The ``variant="code"`` iteration (docs/borep.rst §7 items 1-5; module docstring): no
    Epoch-SGD, no projections, update at (t − 1) mod I == 0 with 1 + N *accumulating* SGD
    steps, z from the post-update y, the hypergradient with z_{t+1} and a third batch,
    ε = 1e-10 in the normalization. Draw order per iteration: HVP, [(1 + N) × ∇_y G],
    ∇_y F, ∇_x F, JVP."""
    problem = oracle.problem
    R = x.shape[0]
    n_upd = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        y_init_err = np.linalg.norm(y - problem.y_star(x), axis=-1)  # no refinement
        rec.record(0, x, y, oracle.counts, force=True)
        for t in range(1, p.T + 1):  # the code's step = t − 1
            # §7 item 1: HVP ∇²_yy G z_t at the current y (before item 2's update)
            hz = oracle.hvp_yy_g(x, y, z, sample=oracle.draw("hvp", (R,)))
            # §7 item 2: on step % interval == 0 (step 0 included), 1 + N SGD steps on fresh
            # samples, no projection; the gradients accumulate (the code does not zero them
            # between the steps), so step k moves by γ × (sum of the k gradients so far)
            if (t - 1) % p.I == 0:
                n_upd += 1
                u = y.copy()
                acc = np.zeros_like(y)
                for _ in range(1 + p.N):
                    g = oracle.grad_y_g(x, u, sample=oracle.draw("grad_y_g", (R,)))
                    acc = acc + g
                    u = u - p.gamma * acc
                y = np.where(rec.active[:, None], u, y)
            # §7 item 3: z ← z − ν(h − ∇_y F) with ∇_y F at the updated y; no projection
            gyf = oracle.grad_y_f(x, y, sample=oracle.draw("grad_y_f", (R,)))
            z_n = z - p.nu * (hz - gyf)
            # §7 item 4: d = ∇_x F − ∇²_xy G(x, y; third batch) z_{t+1}
            gxf = oracle.grad_x_f(x, y, sample=oracle.draw("grad_x_f", (R,)))
            jz = oracle.jvp_xy_g(x, y, z_n, sample=oracle.draw("jvp", (R,)))
            # §7 item 5: momentum, normalized step with ε = 1e-10
            m_n = p.beta * m + (1.0 - p.beta) * (gxf - jz)
            if p.normalize:
                nm = np.sqrt(np.sum(m_n * m_n, axis=-1))[:, None]
                x_n = x - p.eta * m_n / (nm + CODE_EPS)
            else:  # NEGATIVE CONTROL: un-normalized momentum step
                x_n = x - p.eta * m_n
            x, z, m = _accept_step(rec, t, p.T, oracle, y, (x, z, m), (x_n, z_n, m_n))
    return rec.finish("borep", "numpy", p.as_dict(), seed, y_init_error=y_init_err,
                      n_lower_updates=n_upd, y=y, z=z, shared_samples=False)


# ---- solver record ------------------------------------------------------------------------------
def _record_defaults(problem, mode: str) -> dict[str, Any]:
    """BO-REP's options by mode: "paper" = :func:`borep_params` ``mode="tuned"`` (the §8
    values), "theory" = its ``mode="theory"`` (``eps`` and ``theory`` are then options),
    "default" = the §8 loop with ρ = l_{f,0}/μ from the problem (docs/borep.rst §3) and the UL
    step η = (1 − β)/(30 L_0): L_0 the Lipschitz constant of ∇φ where the problem states one
    (L_1 = 0), else the L_0 of its relaxed (L_0, L_1) smoothness (``L0_phi_hessian``,
    docs/borep.rst §8) — Theorem 3.2's step condition η ≤ c/L_0 (η ≤ 1/L_1 holds too on the
    registered problems); the normalized step leaves the last iterate oscillating with
    ||∇φ|| = O(L_0 η/(1 − β)), a factor 30 under the start scale; the LL and z steps
    γ = ν = 1/L_y (Algorithm 2's γ ≤ 1/L_y and line 4's ν ≤ 1/L_y), so that y and z track
    their targets at the rate 1 − μ/L_y of each step."""
    if mode == "theory":
        return {"mode": "theory"}
    out: dict[str, Any] = {"mode": "tuned"}
    if mode == "default":
        out["eta"] = (1.0 - 0.9) / (30.0 * float(_stated_smoothness(problem)))
        c = problem.constants
        L_y = c.L_y or c.C
        if L_y:  # the LL SGD and the z recursion at step 1/L_y contract by 1 − μ/L_y
            out["gamma"] = 1.0 / L_y
            out["nu"] = 1.0 / L_y
    return out


def _stated_smoothness(problem) -> float:
    """L_φ where the problem states a Lipschitz ∇φ, else the L_0 of its stated (L_0, L_1)
    relaxed smoothness (docs/borep.rst §2); ValueError if it states neither."""
    from refbilevel.solver_record import StepConstants

    try:
        return StepConstants.hypergradient_lipschitz(problem)
    except ValueError:  # a relaxed-smooth upper level: its (L_0, L_1) constant L_0
        L0 = problem.constants.extra.get("L0_phi_hessian")
        if L0 is None or not float(L0) > 0:
            raise
        return float(L0)


def _localize(problem, x0, y0, options: dict[str, Any], **_context: Any) -> dict[str, Any]:
    """ρ where the problem has no global l_{f,0} (the quadratic: ∇_y f is unbounded): ρ =
    10 max(1, max_r ||z*(x0_r)||), z* = [∇²_yy g]^{-1} ∇_y f at (x0, y*(x0)) — a ball around
    the start that the run is checked to stay in (a projection active at the solution shows
    as a stalled ||∇φ||)."""
    ex = problem.constants.extra
    if options.get("mode") == "theory" or "rho" in options or ex.get("l_f0") is not None:
        return options
    ys = problem.y_star(x0)
    z = problem.solve_hessian_yy(x0, ys, problem.grad_y_f(x0, ys))
    rho = 10.0 * max(1.0, float(np.max(np.linalg.norm(z, axis=-1))))
    return {**options, "rho": rho}


def _default_T(problem, mode, options) -> int:
    """"paper": 3000 (§8). "default": 2 D/η UL steps (x moves by η per step), D = 50 (the
    distance the default starts are from a stationary point, with a factor 2 for the
    momentum's detours), at most MAX_DEFAULT_T."""
    if mode == "theory":
        return 3000  # the schedule's own T replaces it when eps is given (borep_params)
    if mode == "paper" or "eta" not in options:
        return 3000
    from refbilevel.solver_record import MAX_DEFAULT_T

    return int(min(MAX_DEFAULT_T, math.ceil(2 * 50.0 / float(options["eta"]))))


def _invoke(run, inputs):
    opts = dict(inputs.options)
    if opts.get("mode") == "theory" and opts.get("eps") is not None:
        T = None  # the ε-schedule's horizon
    else:
        T = inputs.T
    return run(inputs.oracle, inputs.x0, inputs.y0, T=T, record_every=inputs.record_every,
               seed=inputs.seed, **opts)


def _register() -> None:
    from dataclasses import fields

    from refbilevel.solver_record import (
        LOWER_LEVEL_GRADIENTS,
        PHI_BOUNDED_BELOW,
        SMOOTH_LL,
        STRONGLY_CONVEX_LL,
        Assumption,
        SolverRecord,
        register_solver,
    )

    stated_smoothness = Assumption(
        "an (L_0, L_1)-smooth φ with L_0 stated (or a Lipschitz ∇φ with its constant), from "
        "which the default η is computed; mode='paper' runs §8's fixed values without it",
        lambda P: _stated_smoothness(P) > 0, "(L_0, L_1)-smooth φ", for_parameters=True)

    register_solver(SolverRecord(
        name="borep", reference="docs/borep.rst §4",
        assumptions=(LOWER_LEVEL_GRADIENTS, STRONGLY_CONVEX_LL, SMOOTH_LL, PHI_BOUNDED_BELOW,
                     stated_smoothness),
        options=("eps", "theory", "z0", "params")
        + tuple(f.name for f in fields(BOREPParams) if f.name != "T"),
        defaults=_record_defaults, default_T=_default_T, invoke=_invoke,
        localize=_localize, step_options=("gamma", "nu"),
        # x0 = 9·1 of claim B2, where fixed-step methods overflow
        parity=lambda: {"problem": "borep-p1", "x0": 9.0},
        paper_counts=lambda trace, problem: borep_cumulative_counts(
            BOREPParams(**trace.params), np.asarray(trace.iterations),
            bool(trace.extra.get("shared_samples", False))),
        counts_reference="docs/borep.rst §4 (borep_cumulative_counts / borep_oracle_counts)"))


_register()
