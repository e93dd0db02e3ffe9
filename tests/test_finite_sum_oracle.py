"""FiniteSumOracle (docs/baselines.rst §0.2, §10.2): X2 unbiasedness of minibatch means, the
documented random-number order, the shuffled sampler's passes, counters.

Statistical tests: fixed seeds; each compares a Monte-Carlo mean with the exact full mean
coordinate by coordinate and asserts |mean - truth| <= 4.5 standard errors (sample standard
deviation / sqrt(M), M = 20000 i.i.d. minibatches, so the normal approximation is accurate).
Under it P(|Z| > 4.5) = 6.8e-6 per comparison; the file makes 30 such comparisons, so its
family-wise false-positive rate is <= 30 × 6.8e-6 = 2.0e-4 <= 1e-3.
"""

import numpy as np
import pytest

from refbilevel.oracles.finite_sum import FiniteSumOracle, Minibatch
from refbilevel.oracles.gaussian import GaussianOracle
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.quadratic import StronglyConvexQuadratic

Z = 4.5
M = 20000
P = FiniteSumQuadratic(n_inner=64, n_outer=48, d_inner=3, d_outer=2, seed=3)
X = np.array([0.3, -0.7])
Y = np.array([0.5, -0.2, 1.1])
V = np.array([1.0, -2.0, 0.5])

CALLS = {
    "grad_x_f": (lambda o, x, y, v, s: o.grad_x_f(x, y, sample=s), P.grad_x_f),
    "grad_y_f": (lambda o, x, y, v, s: o.grad_y_f(x, y, sample=s), P.grad_y_f),
    "grad_x_g": (lambda o, x, y, v, s: o.grad_x_g(x, y, sample=s), P.grad_x_g),
    "grad_y_g": (lambda o, x, y, v, s: o.grad_y_g(x, y, sample=s), P.grad_y_g),
    "hvp": (lambda o, x, y, v, s: o.hvp_yy_g(x, y, v, sample=s),
            lambda x, y: P.hvp_yy_g(x, y, V)),
    "jvp": (lambda o, x, y, v, s: o.jvp_xy_g(x, y, v, sample=s),
            lambda x, y: P.jvp_xy_g(x, y, V)),
}
LEVEL = {"grad_x_f": "outer", "grad_y_f": "outer", "grad_x_g": "inner", "grad_y_g": "inner",
         "hvp": "inner", "jvp": "inner"}


def _batched():
    return np.tile(X, (M, 1)), np.tile(Y, (M, 1)), np.tile(V, (M, 1))


def _assert_unbiased(est, exact):
    se = est.std(axis=0, ddof=1) / np.sqrt(M)
    assert np.all(np.abs(est.mean(axis=0) - exact) <= Z * se), (est.mean(axis=0), exact, se)


@pytest.mark.parametrize("kind", list(CALLS))
def test_x2_uniform_minibatch_mean_is_unbiased(kind):
    """M i.i.d. minibatches of B = 8 indices drawn with replacement (one per replica)."""
    o = FiniteSumOracle(P, 8, np.random.default_rng(101), sampler="uniform")
    x, y, v = _batched()
    call, exact = CALLS[kind]
    est = call(o, x, y, v, None)
    _assert_unbiased(est, exact(X, Y))
    assert getattr(o.counts, kind) == 1 and o.counts.samples == 1


@pytest.mark.parametrize("kind", list(CALLS))
def test_x2_uniform_unit_sampler_is_unbiased(kind):
    """draw_batch (SABA's units): one contiguous batch of 8 per replica, uniform ids."""
    o = FiniteSumOracle(P, 8, np.random.default_rng(202), sampler="uniform")
    x, y, v = _batched()
    mb = o.draw_batch(LEVEL[kind], (M,))
    assert isinstance(mb, Minibatch) and mb.level == LEVEL[kind]
    np.testing.assert_allclose(mb.weight, 8 / o.n[LEVEL[kind]])
    call, exact = CALLS[kind]
    _assert_unbiased(call(o, x, y, v, mb), exact(X, Y))


@pytest.mark.parametrize("kind", list(CALLS))
def test_shuffled_pass_average_is_the_full_mean(kind):
    """One pass of the shuffled sampler visits every contiguous batch once, so the average of
    the n/B minibatch means equals the full mean (exact, up to rounding)."""
    o = FiniteSumOracle(P, 16, np.random.default_rng(7), sampler="shuffled")
    call, exact = CALLS[kind]
    R = 5
    x, y, v = np.tile(X, (R, 1)), np.tile(Y, (R, 1)), np.tile(V, (R, 1))
    nu = o.n_units(LEVEL[kind])
    units = []
    total = 0.0
    for _ in range(nu):
        mb = o.draw_batch(LEVEL[kind], (R,))
        units.append(mb.unit)
        total = total + call(o, x, y, v, mb)
    np.testing.assert_allclose(total / nu, np.tile(exact(X, Y), (R, 1)), rtol=1e-12, atol=1e-12)
    units = np.array(units)  # (nu, R): each replica a permutation of the batch ids
    assert np.all(np.sort(units, axis=0) == np.arange(nu)[:, None])


def test_documented_random_number_order():
    """uniform: draw = one rng.integers(0, n, batch + (B,)); draw_batch = one
    rng.integers(0, n/B, batch); shuffled: one rng.random(batch + (n/B,)) per pass,
    stable argsort."""
    o = FiniteSumOracle(P, 8, np.random.default_rng(5))
    ref = np.random.default_rng(5)
    np.testing.assert_array_equal(o.draw("grad_y_g", (3,)), ref.integers(0, 64, size=(3, 8)))
    np.testing.assert_array_equal(o.draw("grad_x_f", (2,)), ref.integers(0, 48, size=(2, 8)))
    units = ref.integers(0, 8, size=(4,))
    np.testing.assert_array_equal(o.draw_batch("inner", (4,)).unit, units)
    o = FiniteSumOracle(P, 16, np.random.default_rng(9), sampler="shuffled")
    ref = np.random.default_rng(9)
    perm = np.argsort(ref.random((2, 4)), axis=-1, kind="stable")
    got = np.array([o.draw_batch("inner", (2,)).unit for _ in range(4)]).T
    np.testing.assert_array_equal(got, perm)
    # the next call starts a new pass (a fresh permutation)
    perm2 = np.argsort(ref.random((2, 4)), axis=-1, kind="stable")
    np.testing.assert_array_equal(o.draw("hvp", (2,)), perm2[:, 0:1] * 16 + np.arange(16))


def test_counts_and_shared_samples():
    o = FiniteSumOracle(P, 8, np.random.default_rng(0))
    x, y = np.tile(X, (4, 1)), np.tile(Y, (4, 1))
    b = o.draw("grad_y_g", (4,))
    a1 = o.grad_y_g(x, y, sample=b)
    o.hvp_yy_g(x, y, y, sample=b)
    o.jvp_xy_g(x, y, y, sample=b)
    assert (o.counts.grad_y_g, o.counts.hvp, o.counts.jvp, o.counts.samples) == (1, 1, 1, 1)
    np.testing.assert_array_equal(a1, P.grad_y_g_batch(x, y, b))
    o.grad_x_f(x, y)
    o.grad_y_f(x, y)
    assert (o.counts.grad_x_f, o.counts.grad_y_f, o.counts.samples) == (1, 1, 3)
    o.f_u(x, y)
    o.gen_hvp(x, y, y)
    assert (o.counts.f_u, o.counts.gen_hvp, o.counts.samples) == (1, 1, 5)
    mb = o.unit_batch("inner", np.arange(4))
    o.grad_y_g(x, y, sample=mb)
    assert o.counts.samples == 5  # a given minibatch is no new sample


@pytest.mark.parametrize("bad, match", [
    (lambda: FiniteSumOracle(P, 8, 5), "rng must be a numpy.random.Generator"),
    (lambda: FiniteSumOracle(P, 0, np.random.default_rng()), r"batch_size must be an integer"),
    (lambda: FiniteSumOracle(P, 8, np.random.default_rng(), sampler="cyclic"),
     "sampler must be one of"),
    (lambda: FiniteSumOracle(P, 10, np.random.default_rng(), sampler="shuffled"),
     "batch_size must divide n_inner = 64 and n_outer = 48"),
    (lambda: FiniteSumOracle(StronglyConvexQuadratic(2), 8, np.random.default_rng()),
     "must be a finite-sum problem"),
    (lambda: FiniteSumOracle(P, 8, np.random.default_rng()).draw("nope", (1,)),
     "unknown oracle kind 'nope'"),
    (lambda: FiniteSumOracle(P, 8, np.random.default_rng()).draw_batch("middle", (1,)),
     "level must be one of"),
    (lambda: (lambda o: o.grad_x_f(X, Y, sample=o.draw_batch("inner", ())))(
        FiniteSumOracle(P, 8, np.random.default_rng())), "inner-level minibatch"),
    (lambda: FiniteSumOracle(P, 8, np.random.default_rng()).grad_y_g(X, Y, sample=[64]),
     r"idx entries must lie in \[0, 63\]"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_same_method_names_as_gaussian_oracle():
    names = ("grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp_yy_g", "jvp_xy_g", "f_u",
             "gen_hvp", "gen_hvp_T", "draw", "problem", "rng", "counts")
    o = FiniteSumOracle(P, 8, np.random.default_rng())
    for n in names:
        assert hasattr(o, n) and hasattr(GaussianOracle, n) or n in ("problem", "rng",
                                                                     "counts")


@pytest.mark.parametrize("bad, match", [
    (3, r"batch_shape must be a tuple of ints, got 3"),
    ((2, -1), r"batch_shape entries \(replica counts\) must be >= 1, got \(2, -1\)"),
    ((2, 0), r"batch_shape entries \(replica counts\) must be >= 1, got \(2, 0\)"),
])
def test_bad_batch_shape_is_named(bad, match):
    """The shared validator (refbilevel.validation.require_batch_shape) on both draw paths of
    the finite-sum oracle and on MatrixNoiseOracle.draw."""
    from refbilevel.oracles import MatrixNoiseOracle

    o = FiniteSumOracle(FiniteSumQuadratic(), 8, np.random.default_rng(0), sampler="uniform")
    m = MatrixNoiseOracle(StronglyConvexQuadratic(d_x=2, d_y=2), 0.1, 0.1,
                          np.random.default_rng(0))
    for call in (lambda: o.draw("grad_y_g", bad), lambda: o.draw_batch("inner", bad),
                 lambda: m.draw("grad_y_g", bad)):
        with pytest.raises(ValueError, match=match):
            call()


def test_the_full_batch_uses_the_data_in_place_with_the_gathered_means():
    """Rows that are all arange(n) (the deterministic full batch) take the in-place path; its
    means equal the gathered ones to rounding, for every primitive, and an idx with more
    leading axes than the points keeps them."""
    q = P.inner
    rng = np.random.default_rng(0)
    R, n = 4, q.n
    x, y = rng.standard_normal((R, P.d_x)), rng.standard_normal((R, P.d_y))
    full = np.broadcast_to(np.arange(n), (R, n)).copy()
    assert q._selection(full, x, y) is None
    gathered = full.copy()
    gathered[0, [0, 1]] = gathered[0, [1, 0]]  # same samples, another order: not the full batch
    assert q._selection(gathered, x, y) is gathered
    for name, args in (("grad_y", (x, y)), ("grad_x", (x, y)), ("value", (x, y)),
                       ("hvp_yy", (y,)), ("hvp_xx", (x,)), ("jvp_xy", (y,)), ("jvp_yx", (x,))):
        got, ref = getattr(q, name)(*args, idx=full), getattr(q, name)(*args, idx=gathered)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12, err_msg=name)
    wide = np.broadcast_to(np.arange(n), (3, R, n))  # idx adds a leading axis to y's
    assert q._selection(wide, y) is wide
    assert q.hvp_yy(y, idx=wide).shape == (3, R, P.d_y)
