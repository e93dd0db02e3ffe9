"""The sign-preserving power map of UniBiO and its Jacobian.

UniBiO (Wu, Gong, Hao, Liu, ICLR 2026) differentiates with respect to the change of variable
u = [y]^{∘(p-1)} = sign(y) |y|^{p-1} (docs/unibio.rst §1.2, Lemma B.6). Its Jacobian is the
diagonal D(y) = (p-1) diag(|y|^{p-2}) (docs/unibio.rst §1.5), which vanishes at y_i = 0 for
p > 2: generalized derivatives there are limits and problems supply them analytically.
"""

from __future__ import annotations

import numpy as np

from refbilevel.array_module import array_module


def signed_power(y: np.ndarray, a: float) -> np.ndarray:
    """[y]^{∘a} = sign(y) |y|^a, coordinatewise (docs/unibio.rst §1.2); NumPy or CuPy."""
    xp = array_module(y)
    y = xp.asarray(y, dtype=xp.float64)
    return xp.sign(y) * xp.abs(y) ** a


def power_map(y: np.ndarray, p: float) -> np.ndarray:
    """P(y) = [y]^{∘(p-1)} (docs/unibio.rst §1.2, Lemma B.6)."""
    return signed_power(y, p - 1.0)


def inverse_power_map(u: np.ndarray, p: float) -> np.ndarray:
    """P^{-1}(u) = [u]^{∘1/(p-1)} (real odd root for even p)."""
    return signed_power(u, 1.0 / (p - 1.0))


def power_map_jacobian_diag(y: np.ndarray, p: float) -> np.ndarray:
    """Diagonal of D(y) = dP/dy = (p-1) |y|^{p-2} (docs/unibio.rst §1.5).

    For p = 2 this is exactly 1 (0**0 == 1 in NumPy), so p = 2 problems reduce to the
    classical derivatives with no special case.
    """
    xp = array_module(y)
    y = xp.asarray(y, dtype=xp.float64)
    return (p - 1.0) * xp.abs(y) ** (p - 2.0)
