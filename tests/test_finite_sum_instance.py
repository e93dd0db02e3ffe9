"""The benchmark_bilevel kind of finite-sum quadratic: random orthogonal bases, exact spectra,
phi convex by construction; the previous Householder instance for contrast; instances from
user-given per-sample factors (refbilevel/problems/finite_sum_quadratic.py)."""

import numpy as np
import pytest

from refbilevel.problems import make_problem
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic, SampleFactors
from refbilevel.problems.quadratic import RandomizedDCTBasis

# eigvalsh of a 100 × 100 matrix with entries O(1): rounding ~ 1e-14; the bounds below are
# exact spectra or a margin mu (1 - coupling) = 0.05 above 0
EIG_ATOL = 1e-12


def _largest_component_of_extreme_eigenvectors(M):
    _, V = np.linalg.eigh(M)
    return max(np.abs(V[:, 0]).max(), np.abs(V[:, -1]).max())


def test_phi_is_strongly_convex_on_20_of_20_seeds():
    """λ_min(∇²φ) >= mu (1 − coupling) = 0.05 by construction (module docstring); measured
    0.118 to 0.131 on seeds 0-19."""
    lam = [FiniteSumQuadratic(seed=s).constants.extra["lambda_min_hessian_phi"]
           for s in range(20)]
    assert min(lam) >= 0.1 * (1 - 0.5) - EIG_ATOL, lam


def test_the_householder_instance_is_non_convex_for_contrast():
    """The previous instance (registered as finite-sum-quadratic-householder): λ_min(∇²φ)
    from -0.108 to -0.062 on seeds 0-19; the extreme eigenvectors of the mean blocks have a
    largest entry 0.50-1.00 (0.93-1.00 for the x–x blocks' bottom one) against 0.21-0.35 for
    the default instance."""
    for s in range(3):
        P = make_problem("finite-sum-quadratic-householder", seed=s)
        assert P.constants.extra["lambda_min_hessian_phi"] < 0
        assert not P.constants.extra["phi_convex_by_construction"]
        assert _largest_component_of_extreme_eigenvectors(P.outer.mean_xx()) > 0.9


def test_mean_blocks_have_exactly_the_chosen_spectra_and_no_coordinate_alignment():
    P = FiniteSumQuadratic(seed=3)
    chosen = np.geomspace(0.1, 1.0, 100)
    for M in (P.inner.mean_yy(), P.outer.mean_yy(), P.outer.mean_xx(), P.inner.mean_xx()):
        np.testing.assert_allclose(np.linalg.eigvalsh(M), chosen, rtol=0, atol=EIG_ATOL)
        # a Haar eigenvector's largest entry is ~ sqrt(2 ln(2d)/d) = 0.33 at d = 100; above
        # 0.6 has probability ~ 200 P(|N(0,1)| > 6) ~ 4e-7 (measured 0.23-0.32)
        assert _largest_component_of_extreme_eigenvectors(M) < 0.6
    np.testing.assert_allclose(np.linalg.svd(P.outer.mean_cross(), compute_uv=False),
                               0.05, rtol=0, atol=EIG_ATOL)  # coupling · mu
    np.testing.assert_allclose(np.linalg.svd(P.inner.mean_cross(), compute_uv=False),
                               0.1, rtol=0, atol=EIG_ATOL)  # geomspace(mu, L_cross) = 0.1
    assert P.constants.extra["phi_convex_by_construction"]


def test_randomized_dct_basis_is_orthogonal_and_delocalized():
    rng = np.random.default_rng(0)
    Q = RandomizedDCTBasis(64, rng)
    D = Q.dense()
    np.testing.assert_allclose(D.T @ D, np.eye(64), rtol=0, atol=1e-13)
    v = rng.standard_normal((3, 64))
    np.testing.assert_allclose(Q.apply_T(Q.apply(v)), v, rtol=0, atol=1e-13)
    np.testing.assert_allclose(Q.apply(v), v @ D.T, rtol=0, atol=1e-13)
    big = RandomizedDCTBasis(4096, rng).apply(np.eye(4096)[:20])
    # entries of a delocalized column are O(1/√d) = 0.016; a coordinate-aligned one is ~1
    assert np.abs(big).max() < 0.15


def test_large_d_uses_the_structured_basis():
    P = FiniteSumQuadratic(n_inner=16, n_outer=16, d_inner=3000, d_outer=4, reg=0.1)
    assert P.inner.Pyy.shape == (16, 3000)
    assert not P.constants.extra["phi_convex_by_construction"]  # n_outer < d: no whitening


def test_from_factors_round_trips_an_instance():
    P = FiniteSumQuadratic(n_inner=40, n_outer=30, d_inner=6, d_outer=4, seed=5, reg=0.01)
    inner, outer = P.factors()
    Q = FiniteSumQuadratic.from_factors(inner, outer, reg=0.01)
    x = np.random.default_rng(0).standard_normal((3, 4))
    for method in ("y_star", "phi", "grad_phi"):
        np.testing.assert_array_equal(getattr(Q, method)(x), getattr(P, method)(x))
    np.testing.assert_array_equal(Q.hessian_phi(), P.hessian_phi())
    assert Q.constants.mu == P.constants.mu and Q.constants.L_phi2 == P.constants.L_phi2
    idx = np.array([[0, 3, 3], [39, 1, 2], [5, 5, 5]])
    np.testing.assert_array_equal(Q.grad_y_g_batch(x, P.y_star(x), idx),
                                  P.grad_y_g_batch(x, P.y_star(x), idx))


def test_an_exported_benchmark_instance_loads_from_its_per_sample_matrices():
    """benchmark_bilevel stores per-sample (n, d, d) matrices: factoring them recovers the
    instance (to rounding: the factors are recovered up to sign, the matrices exactly)."""
    P = FiniteSumQuadratic(n_inner=32, n_outer=24, d_inner=5, d_outer=3, seed=2)
    exported = [f.rank_one_matrices() for f in P.factors()]
    loaded = FiniteSumQuadratic.from_factors(
        *(SampleFactors.from_rank_one_matrices(*m) for m in exported))
    x = np.random.default_rng(1).standard_normal((4, 3))
    for method in ("y_star", "phi", "grad_phi"):
        np.testing.assert_allclose(getattr(loaded, method)(x), getattr(P, method)(x),
                                   rtol=1e-12, atol=1e-12)
    for got, want in zip(loaded.factors()[0].rank_one_matrices(), exported[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-14)


def test_user_factors_are_validated():
    P = FiniteSumQuadratic(n_inner=8, n_outer=8, d_inner=3, d_outer=2, seed=0)
    inner, outer = P.factors()
    bad = SampleFactors(inner.yy, inner.xx, inner.cross_x, inner.cross_y[:, :2],
                        inner.linear_y, inner.linear_x)
    with pytest.raises(ValueError, match=r"inner.cross_y must have shape \(8, 3\)"):
        FiniteSumQuadratic.from_factors(bad, outer)
    hy, hx, c, ly, lx = inner.rank_one_matrices()
    with pytest.raises(ValueError, match=r"hess_y\[\d+\] is not a rank-one PSD matrix"):
        SampleFactors.from_rank_one_matrices(hy + np.eye(3), hx, c, ly, lx)
    with pytest.raises(ValueError, match="n_inner must lie in"):
        FiniteSumQuadratic.from_factors(*FiniteSumQuadratic(
            n_inner=2, n_outer=8, d_inner=3, d_outer=2, reg=0.1).factors())
