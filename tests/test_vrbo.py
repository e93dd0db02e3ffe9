"""VRBO (docs/baselines.rst §13): the within-loop exactness of the PAPER recursion with full
batches (the test that separates it from benchmark_bilevel's form), the lag of the as-written
indexing and its removal, exact oracle counts, NumPy ↔ Numba parity, validation, and the
default solve on the quadratic."""

from __future__ import annotations

import numpy as np
import pytest

import refbilevel
from refbilevel.algorithms.coupled_hypergradient import NeumannSeries, coupled_hypergradients
from refbilevel.algorithms.vrbo import run_vrbo, vrbo_counts
from refbilevel.backends import implementation
from refbilevel.oracles import GaussianOracle
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.quadratic import StronglyConvexQuadratic

QUAD = StronglyConvexQuadratic(d_x=4, d_y=3, mu=1.0, L=4.0, rho=2.0, seed=3)
FSQ = FiniteSumQuadratic(n_inner=128, n_outer=128, d_inner=3, d_outer=3, mu=1.0, L=4.0,
                         L_cross=1.0, seed=16, bases="householder")
OPTS = {"step_size": 0.2, "outer_ratio": 2.0, "period": 3, "n_inner_steps": 2,
        "neumann_step": 0.2, "n_neumann_steps": 4}


def _start(R, P=QUAD):
    return np.full((R, P.d_x), -1.0), np.zeros((R, P.d_y))


def _run(backend, oracle, T, R=2, **kw):
    x0, y0 = _start(R, oracle.problem)
    return implementation("algorithm", "vrbo", backend)(oracle, x0, y0, T=T, **{**OPTS, **kw})


def _alternating_gd(T):
    """The deterministic reference of §13 "Checks": with exact oracles and the lag-free
    indexing the trackers are exact at the last point they were evaluated at, (x_k, ỹ_m of the
    previous loop) — y_k itself right after a refresh (every q = 3 iterations) — so each outer
    iteration is x ← x − α ĥ(x_k, y_eval), then m + 1 steps y ← y − β ∇_y G(x_{k+1}, y)."""
    x, y = _start(1)
    o = GaussianOracle(QUAD, 0.0, np.random.default_rng(0))
    series = NeumannSeries("truncated", 4, 0.2)
    y_eval = y
    for k in range(T):
        if k % 3 == 0:
            y_eval = y
        h = coupled_hypergradients(o, [(x, y_eval)], series, np.zeros(1, dtype=bool)).h[0]
        x = x - 0.1 * h
        for _ in range(3):
            y_eval = y
            y = y - 0.2 * QUAD.grad_y_g(x, y)
    return x


def test_lag_free_exact_oracles_is_alternating_gradient_descent():
    tr = _run("numpy", GaussianOracle(QUAD, 0.0, np.random.default_rng(0)), 7, R=1,
              lag_free=True)
    # rounding only: the trackers telescope (|x| = O(1))
    np.testing.assert_allclose(tr.x[-1], _alternating_gd(7), rtol=0, atol=1e-12)


def test_as_written_indexing_is_exact_only_up_to_the_first_loop_without_refresh():
    """§13 "Checks" (audit): the as-written recursion is exact in the loop right after a
    refresh; the next loop without a refresh lags by the last y step."""
    ref = _alternating_gd(2)
    o = GaussianOracle(QUAD, 0.0, np.random.default_rng(0))
    tr = _run("numpy", o, 3, R=1, lag_free=False)
    np.testing.assert_allclose(tr.x[2], ref, rtol=0, atol=1e-12)  # x_3 uses v of loop 2
    ref3 = _alternating_gd(3)
    assert np.max(np.abs(tr.x[3] - ref3)) > 1e-8  # the lag shows in the next x step


@pytest.mark.parametrize("oracle", ["gaussian", "finite_sum"])
def test_counts_match_the_stated_table(oracle):
    o = (GaussianOracle(QUAD, 0.1, np.random.default_rng(1)) if oracle == "gaussian"
         else FiniteSumOracle(FSQ, 16, np.random.default_rng(1)))
    tr = _run("numpy", o, 7)
    want = vrbo_counts(tr.iterations, 3, 2, 4)
    for kind, w in want.items():
        np.testing.assert_array_equal(tr.counts[kind], w, err_msg=kind)
    # 7 iterations, refreshes at 1, 4, 7: 7·2·3 + 3 = 45 calls per kind
    assert tr.counts["jvp"][-1] == 45 and tr.counts["hvp"][-1] == 180
    # negative control: a table with one refresh fewer does not match
    assert not np.array_equal(tr.counts["jvp"], vrbo_counts(tr.iterations, 4, 2, 4)["jvp"])


def test_refresh_on_a_finite_sum_is_the_full_batch_value():
    """The checkpoint of iteration 1 on a finite-sum oracle is the exact (full-data) value:
    with the refresh only (T = 1, m = 0 would still add a step), x_2 − x_1 = −α ĥ_full."""
    o = FiniteSumOracle(FSQ, 16, np.random.default_rng(1))
    tr = _run("numpy", o, 1, R=1)
    x0, y0 = _start(1, FSQ)
    e = GaussianOracle(FSQ, 0.0, np.random.default_rng(0))  # the exact full-sum problem
    h = coupled_hypergradients(e, [(x0, y0)], NeumannSeries("truncated", 4, 0.2),
                               np.zeros(1, dtype=bool)).h[0]
    np.testing.assert_allclose(tr.x[1], x0 - 0.1 * h, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad,match", [({"period": 0}, "period"),
                                       ({"n_inner_steps": -1}, "n_inner_steps"),
                                       ({"lag_free": "yes"}, "lag_free"),
                                       ({"n_neumann_steps": 1.5}, "n_neumann_steps")])
def test_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        _run("numpy", GaussianOracle(QUAD, 0.1, np.random.default_rng(1)), 2, **bad)


def test_divergence_is_recorded():
    tr = run_vrbo(GaussianOracle(QUAD, 0.1, np.random.default_rng(1)), *_start(2), T=50,
                  step_size=5.0)
    assert tr.diverged.all()


@pytest.mark.numba
@pytest.mark.parametrize("oracle", ["gaussian", "uniform", "shuffled"])
@pytest.mark.parametrize("lag_free", [False, True])
def test_numba_parity(oracle, lag_free):
    def make():
        if oracle == "gaussian":
            return GaussianOracle(QUAD, 0.3, np.random.default_rng(4))
        return FiniteSumOracle(FSQ, 16, np.random.default_rng(4), sampler=oracle)

    a, b = make(), make()
    ta, tb = _run("numpy", a, 12, lag_free=lag_free), _run("numba", b, 12, lag_free=lag_free)
    # the float64 parity contract (sums in another order than BLAS)
    assert np.max(np.abs(ta.x - tb.x)) <= 1e-12 * np.max(np.abs(ta.x))
    for kind in ta.counts:
        np.testing.assert_array_equal(ta.counts[kind], tb.counts[kind], err_msg=kind)
    np.testing.assert_array_equal(ta.diverged_at, tb.diverged_at)
    assert a.rng.random() == b.rng.random()


@pytest.mark.numba
def test_numba_divergence_matches():
    a = GaussianOracle(QUAD, 0.1, np.random.default_rng(2))
    b = GaussianOracle(QUAD, 0.1, np.random.default_rng(2))
    ta, tb = _run("numpy", a, 40, step_size=5.0), _run("numba", b, 40, step_size=5.0)
    assert ta.diverged.all()
    np.testing.assert_array_equal(ta.diverged_at, tb.diverged_at)


@pytest.mark.numba
def test_default_solve_reaches_the_matrix_target():
    tr = refbilevel.solve("quadratic", "vrbo", backend="numba", noise=0.0, seed=0)
    g = tr.grad_phi_norm
    assert not tr.diverged.any()
    assert np.median(g[-1] / g[0]) <= 1e-2
