"""S3: deterministic SID converges linearly, ||ĝ − ∇f|| ≤ C q^{min(t,k)} (Grazzi, Pontil,
Salzo 2023, Theorem 17 / Corollary 10 deterministic case; docs/sid_bsgm.rst §8
"Deterministic linear rates", §9 Corollary 10', §14.1 suggested test 4; docs/checks.rst S3).

C = c_w D_w + L_Φ L_E/(1−q) with c_w = μ₂ + L_Φ μ₁/(1−q), D_w = ||w_0 − w(λ)||, and L_E
the largest ||∇₁E(w_t, λ)|| on the deterministic LL path (docs/sid_bsgm.rst §14.1: 52.39 on the
golden
instance). No noise, η ≡ 1, exact computation: the error is iterated in error coordinates
(:func:`refbilevel.sid_moments.sid_deterministic_error` with ``centered=True``), so it is
accurate far below 1e-16·||∇f||, and the bound is checked as ratio ≤ 1 + 1e-9 (rounding
allowance) over (t, k) ∈ [0, T)², T = 40 (quick) or 60 (full), on the golden instance and
on random linear contractions.

Negative control: the doubled rate C q^{2 min(t,k)} must be violated on the golden instance
(its spectral radius ρ(A) = 0.403 exceeds q² = 0.312, so the true error decays more slowly
than the control claims).
"""

from __future__ import annotations

import numpy as np

from refbilevel.checks import ClaimInfo, Evidence, Measurement
from refbilevel.checks.intervals import EXACT
from refbilevel.problems.contraction import golden_instance
from refbilevel.progress import track
from refbilevel.randomness import named_stream
from refbilevel.sid_moments import (
    deterministic_constant,
    random_linear_contraction,
    sid_deterministic_error,
)

CLAIM = ClaimInfo(
    id="S3",
    claim="deterministic SID (η ≡ 1, no noise): ||ĝ − ∇f|| ≤ C q^min(t,k)",
    source="Grazzi, Pontil, Salzo 2023, Thm 17; docs/sid_bsgm.rst §8, §9, §14.1 test 4",
    evidence=(Evidence("exact"),),
)

ROUNDING = 1e-9  # the errors are exact up to float64 rounding of O(t + k) operations


def error_grid(problem, lam, T: int) -> np.ndarray:
    """||ĝ − ∇f|| for t, k = 0..T−1 (rows t, columns k), η ≡ 1, w_0 = 0."""
    return np.array([[sid_deterministic_error(problem, lam, t, k, centered=True)
                      for k in range(T)] for t in range(T)])


def ratios(err: np.ndarray, C: float, q: float, exponent: float = 1.0) -> np.ndarray:
    T = err.shape[0]
    mins = np.minimum.outer(np.arange(T), np.arange(T))
    return err / (C * q ** (exponent * mins))


def measure(mode: str = "quick", seed: int = 0, backend: str = "numpy") -> Measurement:
    T = 40 if mode == "quick" else 60
    g = golden_instance()
    instances = [("golden", g.problem, g.lam)]
    rng = named_stream(seed, "S3/instances")
    for i in range(3 if mode == "quick" else 20):
        d = int(rng.integers(1, 8 if mode == "quick" else 50))
        n = int(rng.integers(1, 4))
        q = float(rng.uniform(0.3, 0.9))
        prob = random_linear_contraction(d, n, rng, q=q, s_Z=0.0, s_Y=0.0, s_eps=0.0)
        instances.append((f"random #{i} d={d} n={n} q={q:.2f}", prob, rng.standard_normal(n)))
    rows, curves = [], []
    control = None
    for label, prob, lam in track(instances, "S3 instances", note=lambda it: it[0]):
        const = deterministic_constant(prob, lam, t_max=T)
        err = error_grid(prob, lam, T)
        r = ratios(err, const.C, const.q)
        rows.append({"instance": label, "C": const.C, "q": const.q,
                     "max_ratio": float(r.max()), "ok": bool(r.max() <= 1 + ROUNDING)})
        curves.append((label, np.diagonal(err).copy(), const.C, const.q))
        if label == "golden":
            rc = ratios(err, const.C, const.q, exponent=2.0)
            control = {"description": "rate q^(2 min(t,k)) with the same C must be violated "
                                      "on the golden instance",
                       "max_ratio": float(rc.max()), "violations": int(np.sum(rc > 1)),
                       "rejected": bool(rc.max() > 1 + ROUNDING),
                       "spectral_radius_A": float(np.abs(np.linalg.eigvals(prob.A)).max())}
            golden_ratio = r
    return Measurement(
        passed=all(row["ok"] for row in rows),
        control_rejected=control["rejected"],
        measured={"per_instance": rows, "grid": [T, T],
                  "uncertainty": {"all": EXACT + ": noise-free SID iterated in error "
                                  "coordinates over the whole (t, k) grid; the seed only "
                                  "draws the random instances, each checked exactly"}},
        bound={"max_ratio": 1.0, "rounding_allowance": ROUNDING,
               "golden_C_spec": 52.39, "golden_max_ratio_spec": 0.24},
        control=control,
        notes=["η ≡ 1, w_0 = 0, J irrelevant (no noise); errors iterated in error coordinates"],
        figure_data={"curves": curves, "golden_ratio": golden_ratio},
    )


def plot(m: Measurement, fig) -> None:
    ax1, ax2 = fig.subplots(1, 2)
    for label, diag, C, q in m.figure_data["curves"][:5]:
        t = np.arange(diag.size)
        (line,) = ax1.semilogy(t, diag, "o", ms=3, label=f"{label}")
        ax1.semilogy(t, C * q**t, "-", lw=1, color=line.get_color())
        if label == "golden":
            ax1.semilogy(t, C * q ** (2 * t), ":", lw=1, color="tab:red",
                         label="control C q^(2t) (golden)")
    ax1.set_xlabel("t = k")
    ax1.set_ylabel("||ĝ − ∇f||  (markers) vs C q^t (lines)")
    ax1.legend(fontsize=6)
    im = ax2.imshow(np.log10(m.figure_data["golden_ratio"]), origin="lower", cmap="viridis")
    fig.colorbar(im, ax=ax2, label="log10 ratio (≤ 0 means the bound holds)")
    ax2.set_xlabel("k")
    ax2.set_ylabel("t")
    ax2.set_title("golden instance: error / (C q^min(t,k))", fontsize=8)


if __name__ == "__main__":
    from refbilevel.checks.runner import main_for_script

    raise SystemExit(main_for_script("theory_checks.s3_sid_deterministic"))
