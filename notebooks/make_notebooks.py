"""Writes the notebooks of this folder from their cell sources (kept here so they stay
reviewable as plain Python); ``python notebooks/make_notebooks.py`` regenerates them.
The notebooks are executed by ``tox -e notebooks`` (nbmake)."""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent


def notebook(cells):
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbf.v4.new_markdown_cell(c[3:]) if c.startswith("md:") else
                nbf.v4.new_code_cell(c) for c in cells]
    return nb


UNIBIO = [
    """md:# UniBiO, Section 6: hypergradient norm vs iteration, and the Appendix E.3 slope fit

Example 3 of UniBiO (spec unibio.md §6.1) with the Section 6 settings of the authors' code
(§7.1): T = 500, K = 100, I = 2, T_1 = 5, D_1 = 1, gamma_1 = 1, beta = 0.9, eta = 0.05, 0.03,
0.02, 0.01 for p = 2, 4, 6, 8. The hypergradient is the faithful generalized Neumann
estimator (H = 1 here), not the code's closed-form shortcut (spec §8 item 1). We plot the
ground-truth ||∇phi(x_t)|| (E.1 convention) averaged over seeds, deterministic and with
LL gradient noise of std 0.1, 1 and sqrt(10) (the paper's "variances" 0.01, 1, 10; whether
"10" meant std 10 is NOT RECOVERED). Runs use the Numba backend (bit-identical to NumPy
on this problem, tests/test_unibio.py).""",
    """import numpy as np
import matplotlib.pyplot as plt
from refbilevel.algorithms.unibio import tuned_params
from refbilevel.algorithms.unibio_numba import run_unibio_numba
from refbilevel.oracles import GaussianOracle, NoiseConfig
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.randomness import named_stream

R = 200  # seeds per curve
runs = {}
for std in (0.0, 0.1, 1.0, np.sqrt(10.0)):
    for p in (2, 4, 6, 8):
        noise = NoiseConfig(grad_y_g=std, grad_x_f=0.01 if std else 0.0)
        oracle = GaussianOracle(UniBiOExample3(p), noise, named_stream(2026, f"fig1/{std}/{p}"))
        runs[std, p] = run_unibio_numba(oracle, np.ones((R, 1)), np.ones((R, 1)), tuned_params(p))
print({k: v.summary() for k, v in list(runs.items())[:2]})""",
    """fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), sharey=True)
for ax, std in zip(axes, (0.0, 0.1, 1.0, np.sqrt(10.0))):
    for p in (2, 4, 6, 8):
        tr = runs[std, p]
        g = tr.grad_phi_norm
        m, lo, hi = g.mean(1), np.quantile(g, 0.05, 1), np.quantile(g, 0.95, 1)
        ax.semilogy(tr.iterations, m, label=f"p={p}")
        ax.fill_between(tr.iterations, lo, hi, alpha=0.2)
    ax.set_title("deterministic" if std == 0 else f"LL noise std {std:.3g}")
    ax.set_xlabel("iteration t")
axes[0].set_ylabel("||grad phi(x_t)|| (mean, 5-95% band)")
axes[0].legend()
plt.tight_layout()""",
    """md:Larger p converges more slowly, as the paper reports. The Appendix E.3 fit: slope of
log((1/t) Σ ||∇phi(x_s)||) against log t (t >= 10), deterministic, against the worst-case
bound -1/(3p-2) (spec §7.3; the paper's own fitted values are NOT RECOVERED).""",
    """slopes = {}
fig, ax = plt.subplots(figsize=(6, 4))
for p in (2, 4, 6, 8):
    tr = runs[0.0, p]
    avg = tr.avg_grad_phi_norm[:, 0]
    t = tr.iterations + 1.0
    keep = t >= 10
    b, a = np.polyfit(np.log(t[keep]), np.log(avg[keep]), 1)
    slopes[p] = b
    ax.loglog(t, avg, label=f"p={p}: slope {b:.3f} (bound {-1/(3*p-2):.3f})")
    ax.loglog(t[keep], np.exp(a) * t[keep] ** b, "k:", lw=0.8)
ax.set_xlabel("t"); ax.set_ylabel("running average of ||grad phi||"); ax.legend(fontsize=8)
assert all(slopes[p] <= -1 / (3 * p - 2) for p in slopes), slopes
slopes""",
]

SID = [
    """md:# SID: MSE against t = k = J, Monte Carlo vs the exact moment recursion

The golden instance of spec sid_bsgm.md §14.1 (d = 3, n = 2), eta_i = 3/(3+i). The exact
MSE comes from the moment recursion (`refbilevel.sid_moments`); the Monte Carlo points from
R independent SID estimates (Numba backend) with 4-standard-error bars. MSE = Θ(1/t)
(Corollary 10); with a constant step the variance does not vanish.""",
    """import numpy as np
import matplotlib.pyplot as plt
from refbilevel.backends import implementation
from refbilevel.oracles.contraction import ContractionOracle
from refbilevel.problems.contraction import golden_instance
from refbilevel.randomness import named_stream
from refbilevel.sid_moments import StepSchedule, exact_solution, sid_moments

g = golden_instance()
dec, const = StepSchedule.decreasing(3.0, 3.0), StepSchedule.constant(0.5)
ts = np.unique(np.round(np.logspace(0, 3, 13)).astype(int))
exact = np.array([sid_moments(g.problem, g.lam, t, t, t, steps=dec).mse for t in ts])
exact_c = np.array([sid_moments(g.problem, g.lam, t, t, t, steps=const).mse for t in ts])
sid = implementation("estimator", "sid", "numba")
grad_f = exact_solution(g.problem, g.lam).grad_f
mc, se = [], []
for t in ts[::3]:
    R = 20000
    est = sid(ContractionOracle(g.problem, named_stream(7, f"nb/{t}")), g.lam, int(t), int(t), int(t),
              steps=dec, replicas=R).value
    sq = np.sum((est - grad_f) ** 2, axis=-1)
    mc.append(sq.mean()); se.append(sq.std(ddof=1) / np.sqrt(R))
mc, se = np.array(mc), np.array(se)
assert np.all(np.abs(mc - exact[::3]) <= 4 * se), (mc, exact[::3], se)""",
    """slope = np.polyfit(np.log(ts[ts >= 64]), np.log(exact[ts >= 64]), 1)[0]
fig, ax = plt.subplots(figsize=(6.5, 4.2))
ax.loglog(ts, exact, "-", label=f"exact recursion, eta_i = 3/(3+i) (slope {slope:.3f} for t >= 64)")
ax.errorbar(ts[::3], mc, yerr=4 * se, fmt="o", label="Monte Carlo, R = 20000 (±4 SE)")
ax.loglog(ts, exact_c, "--", label="exact, constant eta = 0.5 (variance floor)")
ax.loglog(ts, exact[0] / ts, ":", color="gray", label="1/t")
ax.set_xlabel("t = k = J"); ax.set_ylabel("E||g_hat - grad f||^2"); ax.legend(fontsize=8)
slope""",
]

if __name__ == "__main__":
    nbf.write(notebook(UNIBIO), HERE / "unibio_section6.ipynb")
    nbf.write(notebook(SID), HERE / "sid_mse.ipynb")
