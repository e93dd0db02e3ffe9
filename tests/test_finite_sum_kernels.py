"""The Numba finite-sum primitives (refbilevel/algorithms/_baselines_numba.py): their sample
blocks reorder no sum, so each result is bit for bit that of the plain one-sample-at-a-time
loop of SampleQuadratics' arithmetic (below, written out as the reference); the rows version
for rows sharing one minibatch (PZOBO's paths) equals the one-row version row by row. Also
that both agree with the NumPy SampleQuadratics to rounding.

Minibatch sizes cover an empty last block (8, 64), partial blocks (1, 7, 13) and the full
batch of a small instance (96 of 96 samples).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.numba

BATCHES = (1, 7, 8, 13, 64, 96)


def _reference_kernels():
    from refbilevel.backends.numba_jit import njit

    @njit(cache=False, error_model="numpy")
    def dot(A, i, v):
        acc = 0.0
        for j in range(v.shape[0]):
            acc += A[i, j] * v[j]
        return acc

    @njit(cache=False, error_model="numpy")
    def grad(Pa, Pb, Pc, Pd, lin, reg, idx, u, w, out):
        # mean_b [Pa_b<Pa_b, u> + Pd_b<Pc_b, w> + lin_b] + reg u (grad_y: Pa = Pyy, Pc = Cx,
        # Pd = Cy; grad_x: Pa = Pxx, Pc = Cy, Pd = Cx, reg = 0); Pb unused (same signature)
        nb, d = idx.shape[0], out.shape[0]
        t1, t2, t3 = np.zeros(d), np.zeros(d), np.zeros(d)
        for b in range(nb):
            i = idx[b]
            c1, c2 = dot(Pa, i, u), dot(Pc, i, w)
            for j in range(d):
                t1[j] += c1 * Pa[i, j]
                t2[j] += c2 * Pd[i, j]
                t3[j] += lin[i, j]
        for j in range(d):
            out[j] = ((t1[j] / nb + t2[j] / nb) + t3[j] / nb) + reg * u[j]

    @njit(cache=False, error_model="numpy")
    def product(Pin, Pout, reg, idx, v, out):
        nb, d = idx.shape[0], out.shape[0]
        t1 = np.zeros(d)
        for b in range(nb):
            i = idx[b]
            c = dot(Pin, i, v)
            for j in range(d):
                t1[j] += c * Pout[i, j]
        for j in range(d):
            out[j] = t1[j] / nb + reg * v[j]

    return grad, product


@pytest.fixture(scope="module")
def level():
    from refbilevel.algorithms._baselines_numba import FiniteSumLevel
    from refbilevel.problems.finite_sum_quadratic import FiniteSumQuadratic

    prob = FiniteSumQuadratic(n_inner=96, n_outer=96, d_inner=9, d_outer=9, mu=0.5, L=3.0,
                              seed=3)
    q = prob.inner
    return prob, FiniteSumLevel(q.Pyy, q.Pxx, q.Cx, q.Cy, q.ly, q.lx), float(q.reg) + 0.25


@pytest.mark.parametrize("B", BATCHES)
def test_blocked_primitives_equal_the_plain_loop_bit_for_bit(level, B):
    from refbilevel.algorithms._baselines_numba import fs_grad_x, fs_grad_y, fs_hvp, fs_jvp

    prob, L, reg = level
    grad, product = _reference_kernels()
    rng = np.random.default_rng(B)
    idx = rng.integers(0, 96, B) if B < 96 else rng.permutation(96)
    x, y, v = (rng.standard_normal(9) for _ in range(3))
    got, want = np.empty(9), np.empty(9)
    fs_grad_y(L, reg, idx, x, y, got)
    grad(L.Pyy, L.Pxx, L.Cx, L.Cy, L.ly, reg, idx, y, x, want)
    np.testing.assert_array_equal(got, want)
    fs_grad_x(L, idx, x, y, got)
    grad(L.Pxx, L.Pyy, L.Cy, L.Cx, L.lx, 0.0, idx, x, y, want)
    np.testing.assert_array_equal(got, want)
    fs_hvp(L, reg, idx, v, got)
    product(L.Pyy, L.Pyy, reg, idx, v, want)
    np.testing.assert_array_equal(got, want)
    fs_jvp(L, idx, v, got)
    product(L.Cy, L.Cx, 0.0, idx, v, want)
    np.testing.assert_array_equal(got, want)
    # and the NumPy oracle's arithmetic (BLAS sums in another order): to rounding
    q = prob.inner
    want_np = q.grad_y(x, y, idx) + 0.25 * y
    fs_grad_y(L, reg, idx, x, y, got)
    assert np.max(np.abs(got - want_np)) <= 1e-13 * max(1.0, np.max(np.abs(want_np)))


@pytest.mark.parametrize("B", (7, 96))
def test_shared_rows_equal_the_one_row_primitive(level, B):
    """fs_grad_y_shared: every active row bit for bit fs_grad_y on the shared minibatch,
    also when its kept y-independent sums are reused (same x, same minibatch, new y) and
    after they are invalidated by a new x or refreshed by a new minibatch; an inactive row
    is left untouched."""
    from refbilevel.algorithms._baselines_numba import (
        fixed_x_sums,
        fs_grad_y,
        fs_grad_y_shared,
        replica_sums,
    )

    _, L, reg = level
    rng = np.random.default_rng(10 + B)

    def batch():
        return rng.integers(0, 96, B) if B < 96 else rng.permutation(96)

    idx = batch()
    X, Y = rng.standard_normal((5, 9)), rng.standard_normal((5, 9))
    act = np.array([True, True, False, True, True])
    S = fixed_x_sums(2, 5, 9, B)
    row = np.empty(9)

    def check(idx, X, Y):
        out = np.full((5, 9), 7.0)
        fs_grad_y_shared(L, reg, idx, X, Y, out, act, replica_sums(S, 1))
        for m in range(5):
            if act[m]:
                fs_grad_y(L, reg, idx, X[m], Y[m], row)
                np.testing.assert_array_equal(out[m], row)
            else:
                np.testing.assert_array_equal(out[m], 7.0)

    check(idx, X, Y)
    assert S.valid[1] and not S.valid[0]
    check(idx, X, rng.standard_normal((5, 9)))  # reused sums
    X = rng.standard_normal((5, 9))
    S.valid[1] = False  # the caller's duty when x moves
    check(idx, X, Y)
    check(batch(), X, Y)  # another minibatch: recomputed, not reused
