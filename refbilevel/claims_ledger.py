"""The claims ledger: every checkable statement of the four papers, how far the theory checks
cover it, and what they found (docs/claims.rst).

One :class:`LedgerEntry` per statement: the paper, its number, the statement as far as the
text and the project's docs recover it, where the checked formula comes from
(:data:`PROVENANCES`), its status and outcome, and the checks that cover it with the part each
covers. Statuses:

- ``full``: a check covers all of the statement, every mechanism active, and passes (or, for
  a pre-registered probe, returns a counterexample; docs/checks.rst "Counterexamples");
- ``partial``: covered only in a special case (one p, one mechanism switched off, one half of
  a two-part statement), only indirectly, by a unit test, or only by accounting (a check of
  the project's own schedule, which cannot refute the paper);
- ``unchecked``: checkable on a closed-form problem, not checked yet (``note`` gives a design);
- ``excluded``: not checkable numerically here (a definition, a cited or lower-bound result,
  an experiment on data or networks) or not recoverable from the text.

``outcome`` is what the covering checks found when the entry was last set: ``verified``,
``counterexample`` or empty (not fully checked). ``refbilevel claims`` shows it next to the
latest verdicts of a ``refbilevel check`` output folder.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PAPERS = ("UniBiO", "BO-REP", "FdeHBO", "SID/BSGM")
PROVENANCES = ("paper", "authors' code", "reconstruction")
STATUSES = ("full", "partial", "unchecked", "excluded")
OUTCOMES = ("verified", "counterexample", "")


@dataclass(frozen=True)
class Coverage:
    """One check covering (part of) a statement."""

    check: str  # claim id of a theory check ("U9") or "tests" for unit tests
    part: str = "all"  # which part of the statement, or of the check, this is


@dataclass(frozen=True)
class LedgerEntry:
    paper: str  # one of PAPERS
    number: str  # "Lemma 4.2 / B.1", "Theorem 5.1, convergence", "§6 Figure 1"
    statement: str
    provenance: str  # where the checked formula comes from: one of PROVENANCES
    status: str  # one of STATUSES
    outcome: str = ""  # one of OUTCOMES; non-empty exactly for full entries
    checks: tuple[Coverage, ...] = ()
    note: str = ""  # why partial or excluded; the design of an unchecked entry

    def __post_init__(self) -> None:
        for name, allowed in (("paper", PAPERS), ("provenance", PROVENANCES),
                              ("status", STATUSES), ("outcome", OUTCOMES)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"ledger entry {self.number!r}: {name} must be one of "
                                 f"{', '.join(map(repr, allowed))}; got {value!r}")
        if (self.status == "full") != bool(self.outcome):
            raise ValueError(f"ledger entry {self.number!r}: an outcome is recorded exactly "
                             f"for full entries (status {self.status!r}, outcome "
                             f"{self.outcome!r})")
        if self.status == "full" and not any(c.check != "tests" for c in self.checks):
            raise ValueError(f"ledger entry {self.number!r}: a full entry needs a theory check")

    @property
    def check_ids(self) -> list[str]:
        return [c.check for c in self.checks if c.check != "tests"]


def _c(spec: str) -> tuple[Coverage, ...]:
    """'U8 (b) p = 2 only; X3' -> Coverage records (check id, then its part)."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(";"))):
        check, _, part = item.partition(" ")
        if not (check == "tests" or re.fullmatch(r"[A-Z][0-9]+", check)):
            raise ValueError(f"ledger coverage {item!r}: it must start with a check id (U9) or "
                             "'tests' (';' separates coverages)")
        out.append(Coverage(check, part.strip() or "all"))
    return tuple(out)


def _e(paper: str, number: str, statement: str, provenance: str, status: str,
       checks: str = "", outcome: str = "", note: str = "") -> LedgerEntry:
    if status == "full" and not outcome:
        outcome = "verified"
    return LedgerEntry(paper, number, statement, provenance, status, outcome, _c(checks), note)


U, B, F, S = PAPERS
P, C, R = PROVENANCES
FULL, PART, UNCH, EXCL = STATUSES

ENTRIES: tuple[LedgerEntry, ...] = (
    # ---------------------------------------------------------------- UniBiO (ICLR 2026)
    _e(U, "Assumption 3.2(i) aside", "the sum of a (mu1,p)- and a (mu2,p)-uniformly convex "
       "function is (mu1+mu2,p)-uniformly convex", P, FULL, "U10 (g)",
       note="|y|^p/p + |y - c|^p/p, attained at c = 0"),
    _e(U, "remark after Assumption 3.2", "global L-smoothness is incompatible with (mu,p)-UC "
       "for p > 2 on an unbounded domain; (L0,L1)-smoothness is the right relaxation", P, FULL,
       "U10 (c) sup ||∇²_yy g|| unbounded while ||∇²_yy g|| <= L0 + L1 ||∇_y g||",
       note="Example 3, p = 4, 6"),
    _e(U, "Remark 2 / App. B.4", "differentiating w.r.t. [y - c]^(p-1) gives the same "
       "hypergradient formula", P, FULL, "U11 shifted 1-D instance, at y* = c too",
       note="generalized derivatives in [y - c]^(p-1) by differences, formula (7) vs the "
       "closed form and differences of phi; control: the unshifted variable at y* = c"),
    _e(U, "Example 1", "a scalar LLUC example with its constants", P, EXCL,
       note="UNREC: definition stripped"),
    _e(U, "Example 2 (eqs. 5/6/12-14)", "the l_p hyper-cleaning lower level is (mu1+mu2,p)-UC "
       "and not strongly convex for p > 2", R, UNCH,
       note="paper's mu1, mu2 UNREC; minimize the UC ratio over random pairs"),
    _e(U, "Example 3 (eq. 15)", "g = y^p/p - y sin x, f = sin(clip(y^(p-1))): Assumptions "
       "3.2-3.3 hold with the stated constants", R, FULL,
       "U10 (c) (L0, L1), (f) the other constants; U1; U4; U5; tests mu_p table",
       note="the paper's values are UNREC; the docs/unibio.rst §6.1 table (DERIVED) is "
       "checked, each constant with a 10% tighter control"),
    _e(U, "Example 4", "vector example with sign-preserving powers", P, EXCL,
       note="UNREC verbatim; the separable family is the project's consistent instance"),
    _e(U, "Lemma 4.2 / B.1", "||y*(x1) - y*(x2)|| <= l_p ||x1 - x2||^(1/(p-1))", R, FULL,
       "U1", note="form from the paper, constant l_p DERIVED"),
    _e(U, "Lemma B.2", "the generalized Hessian is invertible with lambda_min(H) >= mu", P,
       FULL, "U2", note="under the lemma's hypothesis (H independent of y); at p > 2 every "
       "instance meeting it has H = I, so only p = 2 members can fail (audit)"),
    _e(U, "Theorem 4.1 eq. (7) / (26)", "∇phi = ∇_x f - ∇²_xy g H^(-T) f_u at y*; equals "
       "Ghadimi-Wang at p = 2", P, FULL, "U3; X1 derivative implementation"),
    _e(U, "Theorem 4.1 eq. (8) / (27)", "||∇phi(x1) - ∇phi(x2)|| <= L_phi1 ||Δx||^(1/(p-1)) + "
       "L_phi2 ||Δx||", R, FULL, "U4 Hölder bound", note="DERIVED constants"),
    _e(U, "Theorem 4.1 eq. (9) / (28)", "descent inequality with ((p-1)/p) L_phi1 "
       "||Δx||^(p/(p-1)) + (L_phi2/2) ||Δx||²", R, FULL, "U4 descent inequality",
       note="DERIVED constants"),
    _e(U, "Theorem 4.1 remark", "the smoothness of phi degrades as p grows (exponent "
       "1/(p-1))", P, PART, "U4 local exponent (reported, not pass/fail)"),
    _e(U, "Lemma B.4", "||∇̄f(x,y) - ∇phi(x)|| <= L_phi2 ||y - y*(x)||", R, FULL, "U5",
       note="DERIVED constant"),
    _e(U, "Lemma B.5 (reconstruction)", "Neumann bias <= (l_g1 C_f/mu)(1 - mu/C)^Q, the "
       "Ghadimi-Wang Lemma 11 analogue, for non-symmetric generalized Hessians", R, FULL,
       "U6 symmetric H; U11 non-symmetric H (pre-registered probe)", outcome="counterexample",
       note="the paper's statement is UNREC; the failure is a finding about our "
       "reconstruction (docs/unibio.rst §3.5)"),
    _e(U, "Lemma B.5, consequence", "the Neumann bias decays geometrically in Q uniformly in "
       "y, so Q = O(log 1/eps) suffices (Theorem 5.1's Q)", R, FULL,
       "U6 symmetric H; U11 Schur and sqrt(kappa(D)) bounds, non-symmetric H",
       note="the Schur-decomposition bound of docs/unibio.rst §3.5 (audit), uniform in y"),
    _e(U, "Lemma B.6", "differentiability criterion of h(P^-1(u)); away from 0 the gradient "
       "is J_P^-1 ∇h", P, FULL, "X1 away from 0; U11 H = ∇²g D^-1 away from 0, and the "
       "criterion at y_i = 0 with its failure for h(y) = y"),
    _e(U, "Lemma B.7", "the variance of the randomized-truncation hypergradient estimator is "
       "bounded, Var <= sigma_phi²", R, FULL, "U13",
       note="constant UNREC; the exact variance grows linearly in Q, so the Q-independent "
       "TTSA analogue (U13's control) fails; U13 verifies the DERIVED Q-dependent bound"),
    _e(U, "Lemma C.2", "||∇F(w)|| <= G implies ||w - w*|| <= (pG/mu)^(1/(p-1)) and "
       "F(w) - F* <= G (pG/mu)^(1/(p-1))", P, FULL, "U10 (d)"),
    _e(U, "Lemma C.3", "one epoch of projected SGD: high-probability bound on F(w̄) - F*", R,
       UNCH, note="Monte Carlo quantile on |w|^p/p"),
    _e(U, "Lemma C.4", "epoch induction: F(w_1^(k+1)) - F* <= V_(k+1) w.p. >= 1 - 2k delta",
       R, UNCH, note="DERIVED T_k affordable only at tiny sigma"),
    _e(U, "Theorem C.5", "Epoch-SGD reaches ||w - w*|| <= eps~ w.p. >= 1 - delta with "
       "O~(eps~^(-2(p-1))) stochastic gradients", P, PART, "U7 exponent, in expectation",
       note="practical constants, in expectation, not the high-probability form"),
    _e(U, "Lemma C.6 (Hazan-Kale L6)", "projected SGD: sum <ĝ_t, w_t - w> <= (gamma/2) sum "
       "||ĝ_t||² + ||w_1 - w||²/(2 gamma) on every path", P, FULL, "U10 (e)"),
    _e(U, "Lemma C.7 (Hazan-Kale L14)", "sub-Gaussian martingale tail bound: P(sum X_t > "
       "sqrt(3 log(1/delta) sum s_t²)) <= delta", R, FULL, "U10 (h) extreme cases",
       note="constant 3 recalled, not recovered"),
    _e(U, "Lemma C.8", "(L0,L1)-smoothness gives ||∇_y g(x,y)|| <= (L0/L1)(e^(L1 r) - 1) for "
       "||y - y*(x)|| <= r", P, FULL, "U10 (c)"),
    _e(U, "Lemma 5.2 / C.9", "for any UL sequence with steps <= eta and eq. (54), periodic "
       "Epoch-SGD keeps ||y_t - y*(x_t)|| <= eps_y for all t w.p. >= 1 - delta", P, PART,
       "U10 (a) zigzag, line and random-walk sequences at the eq. (54) period",
       note="K calibrated, not the theorem's K (audit item 4: partial)"),
    _e(U, "Corollary 5.3 / C.10", "UniBiO's own iterates qualify (||x_(t+1) - x_t|| = eta), "
       "so the tracking event holds w.p. >= 1 - delta", P, PART,
       "U10 (b) UniBiO's iterates crossing x = 0, step length = eta",
       note="K calibrated (audit item 4)"),
    _e(U, "Lemma C.11", "pathwise: (1/T) sum ||∇phi(x_t)|| <= Delta_phi/(eta T) + (2/T) sum "
       "||m_t - ∇phi(x_t)|| + ((p-1)/p) L_phi1 eta^(1/(p-1)) + (L_phi2/2) eta", R, FULL,
       "U9 every path of every rung (exact), with a control without the travel term",
       note="DERIVED from the narration"),
    _e(U, "Lemma 5.4 / C.12", "sum_t E||eps_t|| <= E||eps_0||/(1-beta) + T beta/(1-beta)"
       "(L_phi1 eta^(1/(p-1)) + L_phi2 eta) + T sqrt(1-beta) sigma_phi + T (L_phi2 eps_y + b_Q)",
       R, FULL, "U9 every sharp-Holder rung, and a run where the variance term dominates",
       note="DERIVED statement; sigma_phi exact for the instance; control (1-beta) in place "
       "of sqrt(1-beta)"),
    _e(U, "Theorem 5.1 / D.1, convergence", "(1/T) sum E||∇phi(x_t)|| <= eps w.p. >= 1 - delta "
       "with the theorem's parameter orders", P, PART,
       "U8 (b) p = 2; U9 p = 3 (full: 3.5), sharp-Holder, non-separable and "
       "uniformly-convex-bump, frozen constants",
       note="p > 2 is run to eps inside Assumption 3.2 with H = I (sharp-Holder) and with a "
       "bounded non-symmetric H (uniformly-convex-bump); the non-separable family's H is "
       "unbounded (outside 3.2(vi)); at p > 2 the prefactors are calibrated once and frozen "
       "(the DERIVED schedule costs > 1e23 calls, U8), which alone is partial"),
    _e(U, "Theorem 5.1 / eq. (63), complexity", "total oracle calls O~(eps^-(5p-6)); outer "
       "iterations O(eps^-(3p-2))", R, PART, "U8 (a) accounting; X3 counters",
       note="accounting of the project's own schedule: it cannot refute the paper (audit)"),
    _e(U, "Theorem 5.1 remark", "at p = 2 the bound O~(eps^-4) is optimal in eps", P, EXCL,
       note="cites a lower bound (Arjevani et al.; audit)"),
    _e(U, "§6 Figure 1", "larger p converges more slowly, deterministic and with noise", P,
       FULL, "U12 equal eta, beta, I, K across p, d_x = 3, sigma = 0 and 0.1; U8 (c), (d)",
       note="in 1-D the ordering is set by the per-p eta alone; U12's verdict names the "
       "mechanism (phi's own floor dominates, the lower level's share also grows with p)"),
    _e(U, "App. E.1", "UniBiO beats StocBiO, TTSA, MA-SOBA on Example 3, more so for larger p",
       P, UNCH, note="grids, Q and steps UNREC; 1-D degeneracy of normalized steps"),
    _e(U, "App. E.3", "fitted slopes at least as steep as -1/(3p-2); slope magnitude decreases "
       "with p; inner iterations grow with p", C, PART,
       "U8 (d) slopes; U8 (c) counts; U12 ordering",
       note="the paper's slope values and inner-iteration values are UNREC"),
    _e(U, "§6 / App. E.2", "hyper-cleaning on noisy SNLI with an RNN", P, EXCL,
       note="dataset and network experiment"),
    _e(U, "Def. 3.1, Def. A.1, Asm. 3.2-3.4", "definitions and assumptions", P, EXCL,
       "X1; X2", note="definitions; X1, X2 check their implementation"),
    # ---------------------------------------------------------------- BO-REP (ICLR 2024)
    _e(B, "Lemma property_rs", "Assumption 1 recovers relaxed smoothness when the constants are "
       "equal", P, UNCH, note="exact statement UNREC"),
    _e(B, "Lemma Phi_relax_smooth", "||∇Phi(x) - ∇Phi(x')|| <= (L0 + L1 ||∇Phi(x)||) ||x - x'|| "
       "for nearby x, x'", R, FULL, "B1", note="DERIVED constants"),
    _e(B, "eq. (2) and ||z*|| <= l_f0/mu", "Ghadimi-Wang hypergradient; the linear-system "
       "solution is bounded", P, FULL, "X1"),
    _e(B, "§3.1 challenge", "with unbounded smoothness LL errors are amplified by ||∇f|| and "
       "fixed-step methods are unsuitable", P, PART, "B2 closed-form proxy",
       note="a statement about analyses; B2 shows it only indirectly (audit)"),
    _e(B, "Algorithm 1 line 6", "normalized momentum moves x by exactly eta", P, PART,
       "tests test_borep_normalized_step_and_deterministic_convergence"),
    _e(B, "Lemma 3.3, initialization refinement", "Epoch-SGD for k† epochs gives "
       "||y_1 - y*(x_1)|| <= target w.p. >= 1 - delta/2", R, FULL,
       "B5 library Epoch-SGD with the §5.3 constants, Clopper-Pearson failure bound",
       note="target and iteration count UNREC: the §5.3 DERIVED constants as functions of "
       "the target delta_y/2"),
    _e(B, "Lemma 3.3, periodic updates", "periodic projected SGD keeps ||y_t - y*(x_t)|| <= "
       "target for any sequence with steps <= eta, w.p. >= 1 - delta/2", P, FULL,
       "B5 drift, zigzag and random-walk sequences with the lemma's own I, gamma, N",
       note="I, gamma, N from the §5.3 DERIVED schedule (the paper's are UNREC), not "
            "calibrated; control: a period with drift > 2 delta_y fails with certainty"),
    _e(B, "Lemma 3.3, error control", "the intersection of the two events", P, FULL,
       "B5 tracking runs started from the refined y_1"),
    _e(B, "Lemma 3.3, bias of the hypergradient estimator", "the bias is controlled by "
       "||y - y*|| weighted by L_x0 + L_x1 ||∇_x f|| and by ||z - z*||", R, UNCH),
    _e(B, "Lemma 3.3, moving-average error", "sum_t E||eps_t|| splits into bias and variance "
       "parts, sublinear in T", R, UNCH),
    _e(B, "Lemma smallz", "||z_t - z*_t|| is small on average", R, UNCH),
    _e(B, "Theorem 3.2, convergence", "(1/T) sum E||∇Phi(x_t)|| <= eps w.p. >= 1 - delta with "
       "the theorem's schedule", R, FULL, "B4 --full the exact §5.3 schedule at eps = 2 on "
       "P2, full-run average; B4 theory-shaped schedule (frozen calibrated prefactors), eps "
       "ladder on P1 and P2; B2 tuned constants, tail average",
       note="the schedule is the DERIVED §5.3 one (the paper's constants are UNREC); its "
       "uncalibrated run is in --full only (1e8 calls per replica; measured average 0.505 "
       "<= 2); quick mode's ladder calibrates the prefactors, which alone would be partial"),
    _e(B, "Theorem 3.2, complexity", "O~(eps^-4) total oracle calls with O(1) batch", R, PART,
       "B3 accounting; X3 counters",
       note="accounting of the project's own schedule: it cannot refute the paper (audit)"),
    _e(B, "Table 1", "complexities of the compared methods", P, EXCL, note="cited results"),
    _e(B, "§4 experiments", "hyper-representation, hyper-parameter optimization, "
       "hyper-cleaning", P, EXCL, note="datasets and networks"),
    _e(B, "Definition (eps-stationary)", "||∇Phi(x)|| <= eps", P, EXCL, note="definition"),
    # ---------------------------------------------------------------- FdeHBO / FMBO
    _e(F, "eqs. (2), (4), (5)", "implicit hypergradient; LS loss R and ∇_v R; "
       "v* = [∇²_yy g]^-1 ∇_y f", P, FULL, "X1; U3 p = 2"),
    _e(F, "Lemma 5 (App. B)", "finite-difference HVP/JVP error <= (L/2) delta ||v||², "
       "dimension-free", R, FULL, "F1", note="DERIVED constant"),
    _e(F, "§2.2 projection claims", "the projection keeps ||v_t|| <= r_v, v* inside the ball, "
       "bounds the LS variance and FD error, better per-step progress", P, PART,
       "tests test_projection_bound_and_eventually_inactive",
       note="'better per-step progress' unchecked"),
    _e(F, "Proposition 1", "one-step recursion for E||e^f_(t+1)||² with FD terms", R, UNCH,
       note="sigma_f and Delta UNREC"),
    _e(F, "Proposition 2", "one-step recursion for E||e^R_(t+1)||² with FD terms", R, UNCH),
    _e(F, "Proposition 3", "one-step bound on E||v_(t+1) - v*_(t+1)||² with contraction factor "
       "1 - 2 lambda (L_g + L_g³) mu_g/(mu_g + L_g) + lambda² L_g²", P, FULL,
       "F4 pre-registered probe, with the textbook factor as positive control",
       outcome="counterexample",
       note="witness mu_g = L_g = 20, lambda = 3e-4 (factor -1.41); a counterexample to the "
       "printed statement for step caps of the form c/L_g or c/L_g²"),
    _e(F, "Theorem 1", "FdeHBO: E||∇Phi(x_a(T))||² = O~(T^(-2/3)) with the delta_eps bound",
       P, FULL, "F3 non-quadratic g, y-dependent Hessian, multiplicative minibatch noise, "
       "delta at the Theorem 1 bound; F2 quadratic g (finite differences exact)",
       note="the constants of eq. (67) are UNREC; F3 uses F2's admissible schedule"),
    _e(F, "Corollary 1", "O~(eps^-1.5) samples and gradient evaluations", P, PART,
       "F2; F3 rate; X3", note="the rate and the per-iteration counts, not a sample count "
       "to reach eps"),
    _e(F, "Theorem 2 (FMBO)", "FMBO: E||∇Phi(x_a(T))||² = O~(T^(-2/3))", P, FULL,
       "F3 nonconvex Phi, y-dependent Hessian, multiplicative noise; F2 strongly convex Phi, "
       "H = I, additive noise", note="the constants of eq. (33) are UNREC"),
    _e(F, "Corollary 2", "O~(eps^-1.5) samples; a single Hessian-vector product per "
       "iteration", P, PART, "F2; F3 rate; X3"),
    _e(F, "§1 claim", "dropping all second-order terms makes the hypergradient vanish when "
       "Phi(x) = f(y*(x))", P, EXCL, note="an algebraic identity (audit)"),
    _e(F, "§1.2 remark", "finite-difference estimates are sensitive to delta and suffer "
       "rounding", P, PART, "F1 rounding allowance"),
    _e(F, "Lemma 3 (App.)", "smoothness constants assumed in Theorem 1", P, EXCL,
       note="UNREC"),
    _e(F, "Table 1", "complexities of PZOBO-S, F2SA, F3SA, FdeHBO", P, EXCL,
       note="cited results"),
    _e(F, "§4 experiments", "LeNet hyper-representation; MNIST hyper-cleaning", P, EXCL,
       note="datasets"),
    _e(F, "novelty claims", "first Hessian-free and first fully single-loop O(eps^-1.5)", P,
       EXCL, note="novelty claims"),
    # ---------------------------------------------------------------- SID / BSGM (JMLR 2023)
    _e(S, "eq. (4) and (LS)", "contraction gives a unique fixed point; ∇f = ∇_2 E + ∂_2 Phi^T v, "
       "v = (I - ∂_1 Phi^T)^-1 ∇_1 E", P, FULL, "X1"),
    _e(S, "eq. (3)", "the GD map of a strongly convex smooth loss is a contraction for small "
       "alpha", P, PART, "tests test_gd_map_contraction"),
    _e(S, "Remark 1(i), (iii)", "B(iv) is needed only on the solution path; lambda bounded "
       "below", P, PART, "tests test_ridge_contraction"),
    _e(S, "Remark 1(iv)", "meta-learning bias regularization: ||w_0(lambda) - w(lambda)|| "
       "bounded", P, UNCH),
    _e(S, "Remark 1(v)", "C(ii) allows variance growing with ||w - w(lambda)||", P, PART,
       "X2 contraction-oracle variance"),
    _e(S, "Lemma 3 (i)-(iii)", "||w'(lambda)|| <= L_Phi/(1-q); w Lipschitz; ∇f Lipschitz", R,
       FULL, "S6 (c) at probes with worst directions; tests test_golden_instance_exact_values",
       note="DERIVED constants"),
    _e(S, "Theorem 4 (i), (ii)", "bias of SID: conditional and in-expectation bounds", R, PART,
       "S3 deterministic special case"),
    _e(S, "Theorem 5 (Variance I)", "bound on E[Var(ĝ | w_t)]", P, EXCL,
       note="UNREC: statement stripped"),
    _e(S, "Theorem 6 (Variance II)", "Var(E[ĝ|w_t]) <= 2(...) via Theorem 4(i)", R, FULL,
       "S6 (d) exact moments on the golden and three random instances, two step rules",
       note="DERIVED form 2c_w^2 rho_t + 2L_Phi^2 E||v̄_k - v(w_t)||^2; measured ratio <= 0.27"),
    _e(S, "Theorem 7 (MSE bound)", "E||ĝ - ∇f||² <= 7[...]", R, EXCL,
       note="UNREC: the body is stripped, like Theorem 5 (audit)"),
    _e(S, "Algorithm 1 sampling rule", "the four sample families must be mutually "
       "independent", P, FULL, "S1"),
    _e(S, "Theorem 8 (stochastic)", "E||w_t - w(lambda)||² and E||v_k - v̂||² are O(1/i) with "
       "eta_i = beta/(gamma+i)", R, FULL, "S4", note="DERIVED Theorem S"),
    _e(S, "Theorem 8 / §8 (deterministic)", "linear rates q^t, q^k with eta = 1", P, FULL,
       "S3"),
    _e(S, "Corollary 10", "with t = k = J, MSE = O(1/t); deterministic error <= C q^min(t,k)",
       P, FULL, "S2; S3"),
    _e(S, "§3 comparison", "Ghadimi-Wang's estimator has non-vanishing variance; SID needs "
       "decreasing steps", P, PART, "S2 constant-step variance floor"),
    _e(S, "Definition 11", "G_alpha = ∇f when Lambda = R^n; G_alpha = 0 iff stationary", P,
       PART, "tests test_s5_reference_minima_and_mapping"),
    _e(S, "Theorem 12", "pathwise bound for projected inexact GD, any alpha, eps with "
       "c_alpha > 0", R, PART, "S5 alpha = 1/L, eps = L/2 only"),
    _e(S, "Corollary 13", "(1/T) sum E||G_(1/L)(lambda_s)||² <= 8L(f(lambda_0) - f*)/T + "
       "(10/T) sum E||Delta_s||²", R, PART, "S5 alpha = 1/L",
       note="borderline; partial unless a check covers all of it (audit)"),
    _e(S, "Remark 14", "a sublinear error sum gives an O(1/T) rate", P, PART, "S5"),
    _e(S, "Definition 15", "sample count sum(t_s + k_s + 2 J_s)", P, FULL, "X3"),
    _e(S, "Theorem 16(i)", "infinite horizon t_s = k_s = J_s = s+1: O~(eps^-2) samples", P,
       FULL, "S5 pathwise; S6 (b) fitted sample exponent"),
    _e(S, "Theorem 16(ii)", "finite horizon t = k = J = T: O(eps^-2) samples", P, FULL,
       "S5 sample exponent"),
    _e(S, "Theorem 17", "deterministic, log schedule, J = 1, eta = 1: O~(eps^-1) samples", P,
       FULL, "S3 ingredient (SID's linear rate); S6 (a) samples to reach eps, pathwise bound",
       note="DERIVED constants (Theorem 17')"),
    _e(S, "Remark 18", "complexity dependence on the contraction constant", P, EXCL,
       note="UNREC: exponents stripped"),
    _e(S, "Remark 19 / §3 warm start", "warm-start bounds depend on ||w_0(lambda_0) - "
       "w(lambda_0)|| instead of D_w", P, UNCH),
    _e(S, "Lemmas 20, 21", "||v(w,lambda) - v(w(lambda),lambda)|| <= L_v ||w - w(lambda)||; "
       "||v|| <= L_E/(1-q)", R, PART, "S6 (c) Lemma 20, and Lemma 21 in its local form",
       note="the global L_E of A(iv) does not exist for the affine test instances"),
    _e(S, "Lemmas 22-28", "textbook facts", P, EXCL, note="standard results"),
    _e(S, "§3 lower bound", "O(eps^-2) is optimal for unbiased-oracle methods", P, EXCL,
       note="lower-bound argument"),
    _e(S, "§3 AmIGO-style mini-batches", "constant steps with O(eps^-1) mini-batches reach only "
       "a suboptimal complexity", P, EXCL, note="UNREC: value stripped"),
    _e(S, "Table 1", "complexities of 16 methods", P, EXCL, note="UNREC"),
    _e(S, "§7.1-7.3 experiments", "equilibrium models, Mini-ImageNet, data poisoning", P, EXCL,
       note="datasets"),
    _e(S, "Remark 9", "v_0 = 0 and B(iii) remove start-point dependence", P, EXCL,
       note="structural"),
)


def entries() -> tuple[LedgerEntry, ...]:
    return ENTRIES


def counts(rows: tuple[LedgerEntry, ...] | None = None) -> dict[str, dict[str, int]]:
    """{paper: {status: count}} plus a "total" row."""
    rows = ENTRIES if rows is None else rows
    out = {paper: dict.fromkeys(STATUSES, 0) for paper in PAPERS}
    for e in rows:
        out[e.paper][e.status] += 1
    out["total"] = dict(sum((Counter(v) for v in out.values()), Counter()))
    out["total"] = {s: out["total"].get(s, 0) for s in STATUSES}
    return out


def latest_verdicts(folder: Path) -> dict[str, dict[str, Any]]:
    """{check id: {"outcome", "mode", "ok"}} from the ``<id>.json`` verdicts of a
    ``refbilevel check`` output folder (empty when there is none)."""
    found: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or "id" not in data or "passed" not in data:
            continue
        ok = bool(data["passed"] and data.get("control_rejected") and not data.get("error"))
        outcome = data.get("outcome") or ("verified" if ok else "failed")
        found[data["id"]] = {"outcome": outcome, "mode": data.get("mode", ""), "ok": ok}
    return found


def as_records(verdicts: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The entries as JSON-able dicts, each with the latest verdict of every covering check."""
    verdicts = verdicts or {}
    out = []
    for e in ENTRIES:
        rec = asdict(e)
        rec["checks"] = [{"check": c.check, "part": c.part,
                          "latest": verdicts.get(c.check, {}).get("outcome", "")}
                         for c in e.checks]
        out.append(rec)
    return out
