"""UniBiO's theory-mode parameters as functions of ε (UniBiO Thm 5.1; docs/unibio.rst §5.5,
with the Epoch-SGD inputs of §5.1-5.2). Every formula here is the spec's DERIVED sufficient
instantiation (the paper's exact (49), (51)-(54), (59)-(62) are NOT RECOVERED); the orders
are the paper's: 1-β ~ ε², η ~ ε^{3p-3}, I ~ ε^{-2}, K ~ ε^{-2p+2}, T ~ ε^{-3p+2}, and the
total oracle count of eq. (63) is O~(ε^{-5p+6}).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from refbilevel.algorithms.unibio import UniBiOParams
from refbilevel.oracles.gaussian import NoiseConfig
from refbilevel.problems.base import BilevelProblem
from refbilevel.problems.constants import surrogate_lipschitz_constant
from refbilevel.validation import require_range


@dataclass(frozen=True)
class EpochSGDInputs:
    """Lemma C.4 / Theorem C.5 inputs of one Epoch-SGD call (docs/unibio.rst §5.1, §5.2)."""

    T_1: float
    D_1: float
    gamma_1: float
    budget: int


@dataclass(frozen=True)
class UniBiOSchedule:
    eps: float
    one_minus_beta: float
    eta: float
    eps_y: float
    Q: int
    I: int
    T: int
    warm: EpochSGDInputs
    periodic: EpochSGDInputs
    sigma_phi: float

    def params(self, **overrides) -> UniBiOParams:
        """The schedule as UniBiO parameters; ``overrides`` replace any field (e.g. the
        eta/100 negative control of claim U8(b))."""
        fields = dict(
            T=self.T, eta=self.eta, beta=1.0 - self.one_minus_beta, I=self.I,
            K=self.periodic.budget, K_0=self.warm.budget, T_1=self.periodic.T_1,
            D_1=self.periodic.D_1, gamma_1=self.periodic.gamma_1, T_1_0=self.warm.T_1,
            D_1_0=self.warm.D_1, gamma_1_0=self.warm.gamma_1, Q=self.Q)
        return UniBiOParams(**{**fields, **overrides})

    def oracle_budget(self) -> int:
        """Eq. (63) term by term: K_0 + T(Q+3) + floor((T-1)/I) K (docs/unibio.rst §5.6)."""
        return (self.warm.budget + self.T * (self.Q + 3)
                + (self.T - 1) // self.I * self.periodic.budget)


def _lemma_c8_gradient_bound(L_0: float, L_1: float, r: float) -> float:
    """(L_0/L_1)(e^{L_1 r} - 1), or its limit L_0 r as L_1 -> 0 (Lemma C.8, docs/unibio.rst
    §5.1)."""
    return L_0 * r if L_1 == 0 else (L_0 / L_1) * math.expm1(L_1 * r)


def _epoch_sgd_inputs(*, G_start: float, dist: float, mu: float, p: float, L_0: float,
                      L_1: float, sigma: float, delta: float, target: float) -> EpochSGDInputs:
    """Lemma C.2 -> V_1, Lemma C.4 eq. (49) -> (gamma_1, T_1, D_1), Thm C.5 -> budget."""
    V_1 = max(G_start * dist, 1e-300)
    D_1 = (p * V_1 / mu) ** (1.0 / p)
    G = _lemma_c8_gradient_bound(L_0, L_1, dist + 2.0 * D_1)
    gamma_1 = delta * V_1 / (6.0 * (G * G + sigma * sigma))
    T_1 = max(18.0 * (G * G + sigma * sigma) / delta,
              432.0 * sigma * sigma * math.log(1.0 / delta)) * D_1 * D_1 / (V_1 * V_1)
    tau = 2.0 * (p - 1.0) / p
    budget = (2.0**tau / (2.0**tau - 1.0)) * T_1 * (D_1 / target) ** (2.0 * (p - 1.0))
    return EpochSGDInputs(T_1=max(T_1, 1.0), D_1=D_1, gamma_1=gamma_1,
                          budget=int(math.ceil(budget)))


def lower_level_noise_parameter(std: float, d: int) -> float:
    """sigma_{g,1} with E exp(||ξ||²/sigma²) <= e for ξ ~ N(0, std² I_d) (Assumption 3.4's
    light-tail form): E exp(||ξ||²/s²) = (1 - 2 std²/s²)^{-d/2} = e at
    s² = 2 std² / (1 - e^{-2/d}) (DERIVED)."""
    return 0.0 if std == 0 else math.sqrt(2.0 * std * std / (-math.expm1(-2.0 / d)))


def theory_schedule(problem: BilevelProblem, noise: NoiseConfig, eps: float, *,
                    delta_phi: float, G_0: float, grad_phi_0: float, delta: float = 0.1,
                    I_rule: str = "paper") -> UniBiOSchedule:
    """The DERIVED Theorem 5.1 parameters of docs/unibio.rst §5.5 for accuracy ``eps``.

    ``delta_phi`` = phi(x_0) - inf phi; ``G_0`` = ||∇_y g(x_0, y_init)|| (warm start, §5.2);
    ``grad_phi_0`` = ||∇phi(x_0)|| (the momentum starts from m_{-1} = 0, see below);
    ``delta`` = the LL failure probability. ``I_rule="paper"`` takes I = ceil(1/(1-β))
    capped by (54); ``"every-step"`` takes I = 1 (the negative control of claim U8(a)).
    """
    c = problem.constants
    eps = require_range("eps", eps, low=0.0, low_inclusive=False)
    grad_phi_0 = require_range("grad_phi_0", grad_phi_0, low=0.0)
    delta = require_range("delta", delta, low=0.0, high=1.0, low_inclusive=False,
                          high_inclusive=False)
    needed = {"mu": c.mu, "l_g1": c.l_g1, "C_f": c.C_f, "C": c.C, "l_p": c.l_p,
              "L_phi1": c.L_phi1, "L_phi2": c.L_phi2, "L_0": c.L_0, "L_1": c.L_1}
    missing = [k for k, v in needed.items() if v is None]
    if missing:
        raise ValueError(f"theory_schedule needs the problem constants {', '.join(missing)}; "
                         f"{type(problem).__name__} does not state them")
    # narrowed for the type checker; the ValueError above is the user-facing check
    assert c.mu is not None and c.l_g1 is not None and c.C_f is not None and c.C is not None
    assert c.l_p is not None and c.L_phi1 is not None and c.L_phi2 is not None
    assert c.L_0 is not None and c.L_1 is not None
    p, mu = problem.p, c.mu
    # Lemma B.7's indicative variance (docs/unibio.rst §3.6, TTSA mapping)
    s_f1 = noise.grad_x_f**2 * problem.d_x
    s_f2 = noise.f_u**2 * problem.d_y
    s_g2 = max(noise.gen_hvp, noise.jvp) ** 2 * max(problem.d_x, problem.d_y)
    sigma_phi = math.sqrt(s_f1 + 3.0 / mu**2 * ((s_f2 + c.C_f**2) * (s_g2 + 2 * c.l_g1**2)
                                               + s_f2 * c.l_g1**2))
    omb = 1.0 if sigma_phi == 0 else min(1.0, (eps / (16.0 * sigma_phi)) ** 2)
    eta_candidates = [omb * eps / (32.0 * c.L_phi2)]
    if c.L_phi1 > 0:
        eta_candidates.append((omb * eps / (32.0 * c.L_phi1)) ** (p - 1.0))
    eta = min(eta_candidates)
    # the LL target bounds the surrogate error L̄ ||y − y*|| (Lemma B.4), so it needs L̄,
    # which may exceed a sharper stored L_phi2 (constants.surrogate_lipschitz_constant)
    L_bar = surrogate_lipschitz_constant(c) or c.L_phi2
    eps_y = min(eps / (16.0 * L_bar), math.inf if c.L_1 == 0 else 1.0 / c.L_1)
    rate = 1.0 - mu / c.C
    b0 = c.l_g1 * c.C_f / mu
    Q = 0 if b0 <= eps / 16 else (1 if rate <= 0 else
                                  math.ceil(math.log(eps / (16.0 * b0)) / math.log(rate)))
    b_Q = b0 * max(rate, 0.0) ** Q
    I_max = max(1, math.floor((eps_y / (2.0 * c.l_p)) ** (p - 1.0) / eta))
    if I_rule == "paper":
        I = max(1, min(math.ceil(1.0 / omb), I_max))
    elif I_rule == "every-step":
        I = 1
    else:
        raise ValueError(f"I_rule must be one of 'paper', 'every-step'; got {I_rule!r}")
    # Algorithm 2 line 2 (and the authors' code) start the momentum from m_{-1} = 0, so
    # m_0 = (1-β) ∇̂f(x_0, y_0) and E||m_0 - ∇phi(x_0)|| <= β ||∇phi(x_0)|| + (1-β)(σ_phi +
    # L̄ ε_y + b_Q) (docs/unibio.rst §5.5, audit note): the start term of Lemma C.12 is this
    # over (1-β), an O(ε^{-3}) term next to the O(ε^{-(3p-2)}) descent term.
    start_error = ((1.0 - omb) * grad_phi_0
                   + omb * (sigma_phi + L_bar * eps_y + b_Q))
    T = math.ceil(max(8.0 * delta_phi / (eta * eps), 16.0 * start_error / (omb * eps)))
    sigma = lower_level_noise_parameter(noise.grad_y_g, problem.d_y)
    target = eps_y / 2.0
    warm = _epoch_sgd_inputs(G_start=G_0, dist=(p * G_0 / mu) ** (1.0 / (p - 1.0)), mu=mu,
                             p=p, L_0=c.L_0, L_1=c.L_1, sigma=sigma, delta=delta,
                             target=target)
    G_t = _lemma_c8_gradient_bound(c.L_0, c.L_1, eps_y)
    periodic = _epoch_sgd_inputs(G_start=G_t, dist=eps_y, mu=mu, p=p, L_0=c.L_0, L_1=c.L_1,
                                 sigma=sigma, delta=delta, target=target)
    return UniBiOSchedule(eps=eps, one_minus_beta=omb, eta=eta, eps_y=eps_y, Q=Q, I=I, T=T,
                          warm=warm, periodic=periodic, sigma_phi=sigma_phi)
