"""Matrices with spectra chosen by construction (docs/design.rst: orthogonal matrix × chosen
eigenvalues, never rejection sampling)."""

from __future__ import annotations

import numpy as np


def orthogonal_matrix(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian matrix with sign correction)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spd_matrix(eigenvalues: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Q diag(eigenvalues) Qᵀ, symmetrized exactly."""
    M = (Q * np.asarray(eigenvalues, dtype=np.float64)) @ Q.T
    return 0.5 * (M + M.T)
