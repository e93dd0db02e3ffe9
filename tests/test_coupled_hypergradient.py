"""Coupled hypergradient pairs ĥ(z; B), ĥ(z'; B) on one sample bundle (docs/baselines.rst §11):
identical estimates at z = z', the expected value of each series, the counts of a pair, and
NumPy ↔ Numba parity on both oracles (Gaussian noise blocks, finite-sum minibatches with both
samplers)."""

from __future__ import annotations

import numpy as np
import pytest

from refbilevel.algorithms.coupled_hypergradient import (
    NeumannSeries,
    coupled_hypergradients,
    coupled_lower_gradients,
)
from refbilevel.oracles import GaussianOracle
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.quadratic import StronglyConvexQuadratic

QUAD = StronglyConvexQuadratic(d_x=4, d_y=3, mu=1.0, L=4.0, rho=2.0, seed=3)
FSQ = FiniteSumQuadratic(n_inner=128, n_outer=128, d_inner=3, d_outer=3, mu=1.0, L=4.0,
                         L_cross=1.0, seed=16, bases="householder")
SERIES = (NeumannSeries("truncated", 5, 0.2), NeumannSeries("randomized", 6, 0.2))


def _points(P, R, seed=1):
    g = np.random.default_rng(seed)
    return [(g.standard_normal((R, P.d_x)), g.standard_normal((R, P.d_y))) for _ in range(2)]


def _oracle(kind, seed, sampler="uniform"):
    if kind == "gaussian":
        return GaussianOracle(QUAD, 0.3, np.random.default_rng(seed))
    return FiniteSumOracle(FSQ, 16, np.random.default_rng(seed), sampler=sampler)


@pytest.mark.parametrize("series", SERIES, ids=lambda s: s.kind)
@pytest.mark.parametrize("kind", ["gaussian", "finite_sum"])
def test_pair_at_one_point_is_identical(kind, series):
    o = _oracle(kind, 0)
    P = o.problem
    (x, y), _ = _points(P, 3)
    est = coupled_hypergradients(o, [(x, y), (x.copy(), y.copy())], series,
                                 np.zeros(3, dtype=bool))
    np.testing.assert_array_equal(est.h[0], est.h[1])  # same sample: bit-identical
    g0, g1 = coupled_lower_gradients(o, [(x, y), (x, y)])
    np.testing.assert_array_equal(g0, g1)


def test_pair_shares_the_sample_and_counts_per_point():
    """A pair draws one bundle: the second point's estimate equals a one-point estimate on
    the same Generator state, and every call is counted once per point."""
    P = QUAD
    (x, y), (x2, y2) = _points(P, 2)
    series = SERIES[0]
    o = _oracle("gaussian", 5)
    pair = coupled_hypergradients(o, [(x, y), (x2, y2)], series, np.zeros(2, dtype=bool))
    single = coupled_hypergradients(_oracle("gaussian", 5), [(x2, y2)], series,
                                    np.zeros(2, dtype=bool))
    np.testing.assert_array_equal(pair.h[1], single.h[0])
    c = o.counts
    Q = series.length
    assert (c.grad_y_f, c.grad_x_f, c.hvp, c.jvp) == (2, 2, 2 * Q, 2)
    assert c.samples == Q + 3  # ∇_y F, ∇_x F noise blocks, Q HVP blocks, one JVP block


@pytest.mark.parametrize("series", SERIES, ids=lambda s: s.kind)
def test_exact_oracle_gives_the_series_value(series):
    """With exact oracles ĥ is fx − J S fy with S = η Σ_{q≤Q}(I − ηH)^q (truncated) or, on
    average over p, η Σ_{q<N}(I − ηH)^q (randomized; docs/baselines.rst §14 "Checks": p takes
    N values, so the average is enumerated, not sampled)."""
    P = QUAD
    (x, y), _ = _points(P, 1)
    H = np.stack([P.hvp_yy_g(x, y, e[None])[0] for e in np.eye(P.d_y)], axis=1)
    M = np.eye(P.d_y) - series.eta * H
    n_terms = series.length + 1 if series.kind == "truncated" else series.length
    S = series.eta * sum(np.linalg.matrix_power(M, q) for q in range(n_terms))
    fy = P.grad_y_f(x, y)
    want = P.grad_x_f(x, y) - P.jvp_xy_g(x, y, (S @ fy[0])[None])
    o = GaussianOracle(P, 0.0, np.random.default_rng(0))
    if series.kind == "truncated":
        got = coupled_hypergradients(o, [(x, y)], series, np.zeros(1, dtype=bool)).h[0]
    else:
        # R copies of the point: p covers every value of U{0..N−1} after enough replicas
        R = 400
        xs, ys = np.repeat(x, R, 0), np.repeat(y, R, 0)
        est = coupled_hypergradients(o, [(xs, ys)], series, np.zeros(R, dtype=bool))
        assert set(est.p.tolist()) == set(range(series.length))
        got = np.mean([est.h[0][est.p == k].mean(0) for k in range(series.length)], 0)[None]
    # rounding of a few dozen float64 operations on O(1) numbers
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_series_validation():
    with pytest.raises(ValueError, match="n_hia_steps"):
        NeumannSeries("randomized", 0, 0.1)
    with pytest.raises(ValueError, match="neumann_step"):
        NeumannSeries("truncated", 3, -1.0)
    with pytest.raises(ValueError, match="kind"):
        NeumannSeries("exact", 3, 0.1)


@pytest.mark.numba
@pytest.mark.parametrize("series", SERIES, ids=lambda s: s.kind)
@pytest.mark.parametrize("kind,sampler", [("gaussian", None), ("finite_sum", "uniform"),
                                          ("finite_sum", "shuffled")])
def test_numba_parity(kind, sampler, series):
    """Same Generator → same bundle → same estimates (≤ 1e-12 relative: the project's float64
    parity contract; the sums run in another order than BLAS) and the same stream after."""
    from refbilevel.algorithms._baselines_numba import kernel_inputs
    from refbilevel.algorithms.coupled_hypergradient_numba import (
        coupled_hypergradients as nb_pair,
    )
    from refbilevel.algorithms.coupled_hypergradient_numba import (
        coupled_lower_gradients as nb_lower,
    )

    R = 3
    o_np = _oracle(kind, 7, sampler or "uniform")
    o_nb = _oracle(kind, 7, sampler or "uniform")
    P = o_np.problem
    (x, y), (x2, y2) = _points(P, R)
    ref = coupled_hypergradients(o_np, [(x, y), (x2, y2)], series, np.zeros(R, dtype=bool))
    g_ref = coupled_lower_gradients(o_np, [(x, y), (x2, y2)])
    k = kernel_inputs(o_nb, "test", R)
    H0, H1 = np.empty((R, P.d_x)), np.empty((R, P.d_x))
    G0, G1 = np.empty((R, P.d_y)), np.empty((R, P.d_y))
    p = np.zeros(R, dtype=np.int64)
    act = np.ones(R, dtype=np.bool_)
    no_idx = np.zeros((R, 1), dtype=np.int64)
    steps = nb_pair(k.P, k.noise, o_nb.rng, x, y, x2, y2, True, series.randomized,
                    series.length, series.eta, H0, H1, p, act, False, no_idx, no_idx,
                    series.draws)
    nb_lower(k.P, k.noise, o_nb.rng, x, y, x2, y2, True, G0, G1, act, False, no_idx)
    assert steps == ref.hvp_steps
    if series.randomized:
        np.testing.assert_array_equal(p, ref.p)
    for a, b in ((H0, ref.h[0]), (H1, ref.h[1]), (G0, g_ref[0]), (G1, g_ref[1])):
        assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b))
    assert o_np.rng.random() == o_nb.rng.random()
