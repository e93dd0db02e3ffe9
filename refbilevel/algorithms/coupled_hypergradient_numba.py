"""Coupled hypergradient estimates in Numba (docs/baselines.rst §11, "Coupled pair"): the twin
of :func:`refbilevel.algorithms.coupled_hypergradient.coupled_hypergradients`, with the same
sample bundle, the same draw order (outer sample, [p], one HVP sample per Neumann step, JVP
sample) and the same arithmetic, operation by operation, so that on the same Generator the
estimates agree to rounding (claim X4).

Each sample is drawn once with :func:`~refbilevel.algorithms._baselines_numba.draw_sample`
and evaluated at both points with :func:`~refbilevel.algorithms._baselines_numba.
call_on_sample`; a caller counts one call per point and one sample per draw. ``full`` (a
finite-sum record only) evaluates on the whole data set instead (``full_inner``/``full_outer``:
(R, n) index arrays 0..n−1; nothing drawn), VRBO's checkpoint refresh (docs/baselines.rst
§13); callers without it pass False and dummy index arrays.
"""

from __future__ import annotations

import numpy as np

from refbilevel.algorithms._baselines_numba import (
    GRAD_X_F,
    GRAD_Y_F,
    GRAD_Y_G,
    HVP,
    JVP,
    call_on_sample,
    draw_sample,
    hia_law,
    is_finite_sum,
)
from refbilevel.backends.numba_jit import njit

_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _sample(kind, P, noise, rng, R, dim, full, full_idx):
    """A fresh sample of kind, or the whole data set (``full``: the level's index array)."""
    if full:
        return full_idx, np.zeros((R, dim))
    return draw_sample(kind, P, noise, rng, R, dim)


@njit(**_JIT)
def coupled_lower_gradients(P, noise, rng, X0, Y0, X1, Y1, two, G0, G1, act, full,
                            full_inner):
    """∇_y G at (X0, Y0) into G0 and, when ``two``, at (X1, Y1) into G1, on one fresh inner
    sample (:func:`refbilevel.algorithms.coupled_hypergradient.coupled_lower_gradients`)."""
    idx, Z = _sample(GRAD_Y_G, P, noise, rng, X0.shape[0], Y0.shape[1], full, full_inner)
    call_on_sample(GRAD_Y_G, P, noise, idx, Z, X0, Y0, Y0, G0, act)
    if two:
        call_on_sample(GRAD_Y_G, P, noise, idx, Z, X1, Y1, Y1, G1, act)


@njit(**_JIT)
def _neumann_step(P, noise, idx, Z, X, Y, U, HU, eta, mask):
    call_on_sample(HVP, P, noise, idx, Z, X, Y, U, HU, mask)
    for r in range(X.shape[0]):
        if mask[r]:
            for i in range(U.shape[1]):
                U[r, i] = U[r, i] - eta * HU[r, i]


@njit(**_JIT)
def coupled_hypergradients(P, noise, rng, X0, Y0, X1, Y1, two, randomized, length, eta,
                           H0, H1, p, act, full, full_inner, full_outer, n_draws):
    """ĥ at (X0, Y0) into H0 and, when ``two``, at (X1, Y1) into H1 on one sample bundle;
    Neumann series truncated (NS_Q, Q = ``length``) or ``randomized`` (RN_N, N = ``length``,
    averaged over ``n_draws`` lengths; each replica's chain length written into ``p``).
    Returns the HVP calls made at each point (Q, or max_r p_r)."""
    R, dx = X0.shape
    dy = Y0.shape[1]
    idx_f, Z_fy = _sample(GRAD_Y_F, P, noise, rng, R, dy, full, full_outer)
    if is_finite_sum(P):
        Z_fx = np.zeros((R, 0))
    else:
        Z_fx = _sample(GRAD_X_F, P, noise, rng, R, dx, full, full_outer)[1]
    npts = 2 if two else 1
    U = np.empty((npts, R, dy))
    S = np.empty((npts, R, dy))
    FX = np.empty((npts, R, dx))
    HU = np.empty((R, dy))
    for k in range(npts):
        Xk = X1 if k == 1 else X0
        Yk = Y1 if k == 1 else Y0
        call_on_sample(GRAD_X_F, P, noise, idx_f, Z_fx, Xk, Yk, Yk, FX[k], act)
        call_on_sample(GRAD_Y_F, P, noise, idx_f, Z_fy, Xk, Yk, Yk, U[k], act)
        S[k] = U[k]
    mask = np.empty(R, dtype=np.bool_)
    if randomized:
        # the reference's _baselines.hia_draws / hia_weights / hia_lengths
        W, pr, steps = hia_law(rng, length, n_draws, R)
        p[:] = pr
        for k in range(npts):
            for r in range(R):
                for i in range(dy):
                    S[k, r, i] = W[r, 0] * U[k, r, i]
        for j in range(1, steps + 1):
            for r in range(R):
                mask[r] = act[r] and p[r] >= j
            idx, Z = _sample(HVP, P, noise, rng, R, dy, full, full_inner)
            for k in range(npts):
                Xk = X1 if k == 1 else X0
                Yk = Y1 if k == 1 else Y0
                _neumann_step(P, noise, idx, Z, Xk, Yk, U[k], HU, eta, mask)
                for r in range(R):
                    for i in range(dy):
                        S[k, r, i] = S[k, r, i] + W[r, j] * U[k, r, i]
        scale = length * eta  # the reference computes N * eta * acc left to right
        for k in range(npts):
            for r in range(R):
                for i in range(dy):
                    S[k, r, i] = scale * S[k, r, i]
    else:
        steps = length
        for r in range(R):
            mask[r] = act[r]
        for _ in range(steps):
            idx, Z = _sample(HVP, P, noise, rng, R, dy, full, full_inner)
            for k in range(npts):
                Xk = X1 if k == 1 else X0
                Yk = Y1 if k == 1 else Y0
                _neumann_step(P, noise, idx, Z, Xk, Yk, U[k], HU, eta, mask)
                for r in range(R):
                    for i in range(dy):
                        S[k, r, i] = S[k, r, i] + U[k, r, i]
        for k in range(npts):
            for r in range(R):
                for i in range(dy):
                    S[k, r, i] = eta * S[k, r, i]
    idx_c, Z_c = _sample(JVP, P, noise, rng, R, dx, full, full_inner)
    CZ = np.empty((R, dx))
    for k in range(npts):
        Xk = X1 if k == 1 else X0
        Yk = Y1 if k == 1 else Y0
        Hk = H1 if k == 1 else H0
        call_on_sample(JVP, P, noise, idx_c, Z_c, Xk, Yk, S[k], CZ, act)
        for r in range(R):
            if act[r]:
                for i in range(dx):
                    Hk[r, i] = FX[k, r, i] - CZ[r, i]
    return steps
