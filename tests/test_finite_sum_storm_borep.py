"""FdeHBO, FMBO and BO-REP over a FiniteSumOracle (issue #10 item 3: a covered problem is
never refused because of its oracle type): sample reuse, oracle counts (X3) and NumPy ↔
Numba parity (X4) on both samplers.

Everything here is exact or a rounding comparison (tolerances stated in place); the
convergence of the default parameters on the default finite-sum instance is the matrix's
cell (``refbilevel matrix``, claim X5), tested here on a small instance.
"""

from __future__ import annotations

import numpy as np
import pytest

from refbilevel.algorithms.borep import BOREPParams, borep_cumulative_counts
from refbilevel.algorithms.fdehbo import StormSchedule, storm_total_counts
from refbilevel.backends.registry import implementation
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.randomness import named_stream

FSQ = FiniteSumQuadratic(n_inner=32, n_outer=16, d_inner=4, d_outer=3, mu=1.0, L=2.0,
                         L_cross=0.5, seed=3)
#: the well-conditioned schedule of claim F2 (theory_checks/f2_fdehbo_rate.py)
SCHEDULE = StormSchedule(w=8.0, c_beta=1.0, c_lambda=1.0, c_eta_f=3.0, c_eta_R=3.0,
                         c_eta_g=3.0)
SAMPLERS = [("uniform", 5), ("shuffled", 4)]  # shuffled needs B | n


def _oracle(sampler, B, seed=5):
    return FiniteSumOracle(FSQ, B, named_stream(seed, "fs-storm"), sampler=sampler)


def _storm(variant, backend, oracle, T=300):
    x0 = np.tile([1.0, -1.0, 0.5], (3, 1))
    return implementation("algorithm", variant, backend)(
        oracle, x0, np.zeros(FSQ.d_y), T=T, schedule=SCHEDULE, r_v=20.0, record_every=7)


@pytest.mark.parametrize("sampler,B", SAMPLERS)
def test_storm_finite_sum_reuses_each_minibatch_and_counts(sampler, B):
    """g is quadratic in y, so FdeHBO's central differences on ONE minibatch at y ± δv are
    the minibatch's exact HVP/JVP: FdeHBO and FMBO then coincide up to the differences'
    rounding (eps·||g||/δ ≈ 1e-13 per step at δ = 1e-3). Were the two points evaluated on
    different minibatches, the difference would carry the O(1) sampling error of g's
    gradient between two batches; this asserts 1e-9, four orders of magnitude of room for
    the rounding accumulated over 300 contracting steps. Counts: storm_total_counts, five
    minibatches per iteration (X3)."""
    o_fd, o_fm = _oracle(sampler, B), _oracle(sampler, B)
    a, b = _storm("fdehbo", "numpy", o_fd), _storm("fmbo", "numpy", o_fm)
    assert np.max(np.abs(a.x - b.x)) <= 1e-9 * np.abs(a.x).max()
    assert a.grad_phi_norm[-1].max() < 0.2 * a.grad_phi_norm[0].min()  # it descends
    for variant, o in (("fdehbo", o_fd), ("fmbo", o_fm)):
        want = storm_total_counts(variant, 300)
        got = o.counts.as_dict()
        assert {k: got.get(k, 0) for k in want} == want


@pytest.mark.numba
@pytest.mark.parametrize("sampler,B", SAMPLERS)
@pytest.mark.parametrize("variant", ["fdehbo", "fmbo"])
def test_storm_finite_sum_numba_parity(variant, sampler, B):
    """Same seed, 300 iterations: ≤ 1e-12 relative (measured 4.6e-13 for FdeHBO, whose
    finite differences amplify the summation-order rounding by 1/δ; 1e-15 for FMBO), the
    same counts, the same random numbers consumed (and the shuffled pass state handed
    back)."""
    o1, o2 = _oracle(sampler, B), _oracle(sampler, B)
    a, b = _storm(variant, "numpy", o1), _storm(variant, "numba", o2)
    assert np.max(np.abs(a.x - b.x)) <= 1e-12 * np.abs(a.x).max()
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    assert o1.counts.as_dict() == o2.counts.as_dict()
    assert o1.rng.random() == o2.rng.random()
    if sampler == "shuffled":
        s1, s2 = o1.shuffle_state("inner", (3,)), o2.shuffle_state("inner", (3,))
        assert np.array_equal(s1[0], s2[0]) and s1[1] == s2[1]


#: BO-REP on the small finite sum: the §8 loop with steps for its constants (μ = 1, L = 2);
#: the code variant's accumulating LL steps (docs/borep.rst §7) need a smaller γ
BOREP = {"paper": {"T": 300, "rho": 50.0, "eta": 0.01, "gamma": 0.3, "nu": 0.3},
         "code": {"T": 300, "rho": 50.0, "eta": 0.01, "gamma": 0.05, "nu": 0.3, "N": 3, "I": 3,
                  "variant": "code"}}


def _borep(variant, backend, oracle):
    x0 = np.tile([1.0, -1.0, 0.5], (3, 1))
    return implementation("algorithm", "borep", backend)(
        oracle, x0, np.zeros(FSQ.d_y), record_every=7, **BOREP[variant])


@pytest.mark.parametrize("sampler,B", SAMPLERS)
def test_borep_finite_sum_shares_the_samples_of_lines_4_5_and_counts(sampler, B):
    """The paper variant draws one outer minibatch ξ_t for ∇_x F, ∇_y F and one inner ζ_t for
    the HVP and the JVP (docs/borep.rst §4): two samples fewer than calls per outer
    iteration, recorded as ``shared_samples`` and counted so by borep_cumulative_counts
    (X3); the code variant draws one sample per kind. Exact integer accounting."""
    for variant in ("paper", "code"):
        o = _oracle(sampler, B)
        tr = _borep(variant, "numpy", o)
        shared = variant == "paper"
        assert tr.extra["shared_samples"] is shared
        want = borep_cumulative_counts(BOREPParams(**tr.params), tr.iterations, shared)
        assert all(np.array_equal(tr.counts[k], want[k]) for k in want)
        calls = sum(int(want[k][-1]) for k in want if k != "samples")
        assert int(want["samples"][-1]) == calls - (2 * 300 if shared else 0)
        assert tr.grad_phi_norm[-1].max() < 0.2 * tr.grad_phi_norm[0].min()  # it descends


@pytest.mark.numba
@pytest.mark.parametrize("sampler,B", SAMPLERS)
@pytest.mark.parametrize("variant", ["paper", "code"])
def test_borep_finite_sum_numba_parity(variant, sampler, B):
    """Same seed, 300 outer iterations (after Epoch-SGD for the paper variant): ≤ 1e-12
    relative (measured ≤ 2.3e-16), the same counts and random numbers consumed."""
    o1, o2 = _oracle(sampler, B), _oracle(sampler, B)
    a, b = _borep(variant, "numpy", o1), _borep(variant, "numba", o2)
    assert np.max(np.abs(a.x - b.x)) <= 1e-12 * np.abs(a.x).max()
    assert all(np.array_equal(a.counts[k], b.counts[k]) for k in a.counts)
    assert a.extra["shared_samples"] == b.extra["shared_samples"]
    assert o1.counts.as_dict() == o2.counts.as_dict()
    assert o1.rng.random() == o2.rng.random()


@pytest.mark.numba
@pytest.mark.parametrize("method", ["fdehbo", "fmbo", "borep"])
def test_default_parameters_converge_on_a_small_finite_sum(method):
    """The defaults from the problem's constants on the exact full batch (the shuffled
    sampler with B = n visits the one batch every iteration, so every oracle is the exact
    sum): ||∇φ|| falls below 1e-2 of its start at the default T (measured 1.1e-4 for
    FdeHBO/FMBO, 1.0e-3 for BO-REP). On Numba, whose trajectories the parity tests above
    equate with NumPy's: BO-REP's default T = 33175 takes ~30 s on NumPy, and the kernels
    are already compiled for this record type."""
    from refbilevel.problems import make_problem
    from refbilevel.solver import solve

    P = make_problem("finite-sum-quadratic", n_inner=64, n_outer=64, d_inner=5, d_outer=5)
    tr = solve(P, method, backend="numba", oracle={"noise": 0.0, "sampler": "shuffled"})
    g = tr.grad_phi_norm[:, 0]
    assert g[-1] <= 1e-2 * g[0]
