"""Borrowed rows (refbilevel/backends/numba_rows.py) and the refilled draw buffers of the
baseline kernels (draw_noise_into, draw_idx_into): the same values and the same random
stream as the allocating forms they replace."""

import numpy as np
import pytest
from numba import njit

from refbilevel.algorithms._baselines_numba import (
    GRAD_Y_G,
    OracleNoise,
    draw_idx,
    draw_idx_into,
    draw_noise,
    draw_noise_into,
    kernel_inputs,
)
from refbilevel.backends.numba_rows import borrowed_row, borrowed_subrow
from refbilevel.oracles.finite_sum import FiniteSumOracle
from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3


@njit
def _scale_rows(A, f):
    for r in range(A.shape[0]):
        row = borrowed_row(A, r)
        for i in range(row.shape[0]):
            row[i] = row[i] * f


@njit
def _row_sums(A):
    out = np.empty(A.shape[0])
    for r in range(A.shape[0]):
        row = borrowed_row(A, r)
        out[r] = row.sum()
    return out


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_borrowed_row_reads_and_writes_the_parent(layout):
    base = np.arange(24.0).reshape(4, 6)
    A = {"C": base.copy(), "F": np.asfortranarray(base), "strided": base.copy()[:, ::2]}[layout]
    expect = A.copy()
    np.testing.assert_array_equal(_row_sums(A), expect.sum(axis=1))
    _scale_rows(A, 2.0)
    np.testing.assert_array_equal(A, 2.0 * expect)


@njit
def _scale_subrows(A, f):
    for j in range(A.shape[0]):
        for r in range(A.shape[1]):
            row = borrowed_subrow(A, j, r)
            for i in range(row.shape[0]):
                row[i] = row[i] * f + j


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_borrowed_subrow_is_the_row_j_r_of_a_3d_array(layout):
    base = np.arange(60.0).reshape(3, 4, 5)
    A = {"C": base.copy(), "F": np.asfortranarray(base), "strided": base.copy()[:, :, ::2]}[layout]
    expect = 2.0 * A + np.arange(3.0)[:, None, None]
    _scale_subrows(A, 2.0)
    np.testing.assert_array_equal(A, expect)


@njit
def _blocks(rng, P, noise, R, dim):
    return draw_noise(rng, P, noise, GRAD_Y_G, R, dim), draw_idx(rng, P, False, R)


@njit
def _refill(rng, P, noise, z, idx):
    draw_noise_into(rng, P, noise, GRAD_Y_G, z)
    draw_idx_into(rng, P, False, idx)


@pytest.mark.parametrize("std", [0.3, 0.0])
def test_draw_into_is_the_block_draw_gaussian(std):
    """Refilling a buffer draws the block's normals, in its order, and leaves the Generator
    where the block draw leaves it (nothing drawn at std 0)."""
    P = UniBiOExample3(4)
    k = kernel_inputs(GaussianOracle(P, NoiseConfig.uniform(std), np.random.default_rng(0)),
                      "soba", 5)
    noise = OracleNoise(*([std] * 6))
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    z_block, _ = _blocks(ra, k.P, noise, 5, 3)
    z, idx = np.full((5, 3), -1.0), np.zeros((5, 1), dtype=np.int64)
    _refill(rb, k.P, noise, z, idx)
    if std:
        np.testing.assert_array_equal(z, z_block)
    else:
        np.testing.assert_array_equal(z, -1.0)  # not read at std 0, and not written
    assert ra.random() == rb.random()


def test_draw_into_is_the_block_draw_finite_sum():
    prob = FiniteSumQuadratic(n_inner=32, n_outer=16, d_inner=4, d_outer=3, seed=0)
    oracle = FiniteSumOracle(prob, batch_size=4, rng=np.random.default_rng(0))
    k = kernel_inputs(oracle, "soba", 5)
    ra, rb = np.random.default_rng(11), np.random.default_rng(11)
    _, idx_block = _blocks(ra, k.P, k.noise, 5, 4)
    z, idx = np.zeros((5, 0)), np.full((5, 4), -1, dtype=np.int64)
    _refill(rb, k.P, k.noise, z, idx)
    np.testing.assert_array_equal(idx, idx_block)
    assert ra.random() == rb.random()
