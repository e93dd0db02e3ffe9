"""Scalar Numba kernels of Epoch-SGD with shrinking balls (UniBiO Algorithm 1; spec
docs/unibio.rst §4.1) for lower levels of the form |w|^p/p - s w, used by the UniBiO Example 3
kernel and by the U7 check. Mathematics and draw order as :mod:`refbilevel.algorithms.epoch_sgd`.
"""

from __future__ import annotations

import numpy as np

from refbilevel.backends.numba_jit import njit


@njit(cache=True, error_model="numpy")
def ipow(a, n):
    """a**n for a small non-negative integer n by repeated multiplication (Example 3's p is
    even, so the powers are integers; this is what makes the scalar kernel fast)."""
    out = 1.0
    for _ in range(n):
        out *= a
    return out


@njit(cache=True, error_model="numpy")
def scalar_power_epoch_sgd(rng, sinx, W, active, lengths, radii, steps, pre_avg, s_gy, q):
    """Epoch-SGD on g(w) = |w|^p/p - s w (∇g = [w]^{q} - s, q = p - 1), scalar per replica,
    in place on W: UniBiO Example 3's lower level with s = sin x (docs/unibio.rst §6.1) and
    the 1-D separable family. Same draw order as the NumPy reference (one draw per replica
    per step, replicas in order)."""
    qi = int(q)
    integral = qi == q
    R = W.shape[0]
    Cs = np.empty(R)
    A = np.empty(R)
    for k in range(lengths.shape[0]):
        L, rad, gam = lengths[k], radii[k], steps[k]
        for r in range(R):
            Cs[r] = W[r]
            A[r] = 0.0
        for _ in range(L):
            for r in range(R):
                # one draw per replica per step, in replica order: the (R, 1) block the
                # NumPy oracle draws for this call
                z = rng.standard_normal() if s_gy != 0.0 else 0.0
                if not active[r]:
                    continue
                w = W[r]
                if pre_avg:
                    A[r] += w
                wq = ipow(abs(w), qi) if integral else abs(w) ** q
                g = np.sign(w) * wq - sinx[r]
                if s_gy != 0.0:
                    g = g + s_gy * z
                diff = (w - gam * g) - Cs[r]
                scale = min(1.0, rad / max(abs(diff), 2.2250738585072014e-308))
                w = Cs[r] + scale * diff
                W[r] = w
                if not pre_avg:
                    A[r] += w
        for r in range(R):
            if active[r]:
                W[r] = A[r] / L
