"""X2: every stochastic oracle is unbiased with the configured variance; counters; seeds.

Statistical tests: fixed seeds; each asserts |estimate - truth| <= 4.5 standard errors.
Under the normal approximation P(|Z| > 4.5) = 6.8e-6 per comparison; with at most ~100
comparisons per test the family-wise false-positive rate is <= 6.8e-4 <= 1e-3.
"""

import numpy as np
import pytest

from refbilevel.oracles import ORACLE_KINDS, GaussianOracle, NoiseConfig
from refbilevel.problems.unibio_example3 import UniBiOExample3
from refbilevel.problems.uniformly_convex import (
    NonSeparableUniformlyConvex,
    SeparableUniformlyConvex,
)
from refbilevel.randomness import named_stream

Z = 4.5
R = 20000

PROBLEMS = [UniBiOExample3(4), SeparableUniformlyConvex(d=10, p=2.5),
            NonSeparableUniformlyConvex(d_y=3, d_x=2, p=4.0)]

CALLS = {
    "grad_x_f": lambda o, x, y, v: o.grad_x_f(x, y),
    "grad_y_f": lambda o, x, y, v: o.grad_y_f(x, y),
    "grad_x_g": lambda o, x, y, v: o.grad_x_g(x, y),
    "grad_y_g": lambda o, x, y, v: o.grad_y_g(x, y),
    "hvp": lambda o, x, y, v: o.hvp_yy_g(x, y, v),
    "jvp": lambda o, x, y, v: o.jvp_xy_g(x, y, v),
    "gen_hvp": lambda o, x, y, v: o.gen_hvp(x, y, v),
    "f_u": lambda o, x, y, v: o.f_u(x, y),
}


@pytest.mark.parametrize("P", PROBLEMS, ids=lambda P: type(P).__name__)
@pytest.mark.parametrize("kind", ORACLE_KINDS)
def test_x2_unbiased_with_configured_variance(P, kind):
    std = 0.7
    oracle = GaussianOracle(P, NoiseConfig(**{kind: std}), named_stream(11, f"X2/{kind}"))
    x = np.full((R, P.d_x), 0.6)
    y = np.full((R, P.d_y), -0.4)
    v = np.tile(np.linspace(-1, 1, P.d_y), (R, 1))
    noisy = CALLS[kind](oracle, x, y, v)
    exact = CALLS[kind](GaussianOracle(P, 0.0, np.random.default_rng(0)), x[:1], y[:1], v[:1])
    err = noisy - exact
    # mean: each coordinate has sd std / sqrt(R)
    assert np.all(np.abs(err.mean(axis=0)) <= Z * std / np.sqrt(R))
    # E||noise||² = std² dim; ||noise||²/std² ~ chi²_dim has variance 2 dim
    dim = err.shape[-1]
    sq = np.sum(err**2, axis=-1)
    assert abs(sq.mean() - std**2 * dim) <= Z * std**2 * np.sqrt(2 * dim / R)
    assert getattr(oracle.counts, kind) == 1 and oracle.counts.samples == 1


def test_counters_same_sample_and_reproducibility():
    P = SeparableUniformlyConvex(d=4, p=3.0)
    x, y, v = np.ones((5, 4)), np.full((5, 4), 0.5), np.ones((5, 4))
    o = GaussianOracle(P, NoiseConfig.uniform(0.3), named_stream(3, "oracle"))
    s = o.draw("grad_y_g", (5,))
    a = o.grad_y_g(x, y + 1e-3 * v, sample=s)
    b = o.grad_y_g(x, y - 1e-3 * v, sample=s)
    # same sample: additive noise cancels in the central difference
    np.testing.assert_allclose((a - b) / 2e-3, P.hvp_yy_g(x, y, v), rtol=1e-5)
    o.hvp_yy_g(x, y, v)
    assert o.counts.grad_y_g == 2 and o.counts.hvp == 1 and o.counts.samples == 2
    o1 = GaussianOracle(P, NoiseConfig.uniform(0.3), named_stream(3, "oracle"))
    o2 = GaussianOracle(P, NoiseConfig.uniform(0.3), named_stream(3, "oracle"))
    np.testing.assert_array_equal(o1.grad_x_f(x, y), o2.grad_x_f(x, y))
    o3 = GaussianOracle(P, NoiseConfig.uniform(0.3), named_stream(3, "other"))
    assert not np.array_equal(o1.grad_x_f(x, y), o3.grad_x_f(x, y))


def test_exact_oracle_draws_nothing():
    P = UniBiOExample3(2)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    o = GaussianOracle(P, 0.0, rng)
    np.testing.assert_array_equal(o.grad_y_g([[1.0]], [[0.5]]), P.grad_y_g([[1.0]], [[0.5]]))
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("bad, match", [
    (lambda: GaussianOracle(UniBiOExample3(2), 0.1, 5), "rng must be a numpy.random.Generator"),
    (lambda: NoiseConfig(hvp=-1.0), r"noise std hvp must lie in \[0"),
    (lambda: GaussianOracle(UniBiOExample3(2), 0.1, np.random.default_rng()).draw("x", (1,)),
     "unknown oracle kind 'x'"),
    (lambda: named_stream(-1, "a"), "seed must be a non-negative int"),
])
def test_bad_oracle_input(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()
